// Writing an HDF5 file from a fuzz recipe (encoding in h5_recipe.hpp). Every
// extent is bounded before anything is allocated: at most kMaxWriteBytes of
// values are written, so a recipe that declares 2^40 rows makes a file that
// declares them without holding them (what a crafted file does).
#include "h5_recipe.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

namespace mpitrain::fuzz {
namespace {

constexpr double kMaxWriteElems = 1 << 16;
constexpr double kMaxAttrElems = 4096;
constexpr size_t kMaxWriteBytes = 32u << 20;  // the huge string attribute and no more
constexpr size_t kHugeString = (16u << 20) + 1;

// Closes an id at scope end (the fuzz code is not mpitrain's h5::Handle on
// purpose: it must make files mpitrain's own writer never would).
struct Id {
  hid_t id = H5I_INVALID_HID;
  herr_t (*close)(hid_t) = nullptr;
  Id(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() { if (id >= 0 && close) close(id); }
  bool ok() const { return id >= 0; }
};

std::string name(FuzzInput& in, const std::vector<std::string>& dict) {
  const unsigned b = in.u8();
  if (b < 0xf0 && !dict.empty()) return dict[b % dict.size()];
  return in.blob();
}

// The file type for a code; the caller closes it.
hid_t make_type(FuzzInput& in, unsigned code) {
  switch (code % kTypeCount) {
    case kU8: return H5Tcopy(H5T_STD_U8LE);
    case kI8: return H5Tcopy(H5T_STD_I8LE);
    case kI16: return H5Tcopy(H5T_STD_I16LE);
    case kU16: return H5Tcopy(H5T_STD_U16LE);
    case kI32: return H5Tcopy(H5T_STD_I32LE);
    case kU32: return H5Tcopy(H5T_STD_U32LE);
    case kI64: return H5Tcopy(H5T_STD_I64LE);
    case kU64: return H5Tcopy(H5T_STD_U64LE);
    case kF32: return H5Tcopy(H5T_IEEE_F32LE);
    case kF64: return H5Tcopy(H5T_IEEE_F64LE);
    case kF32BE: return H5Tcopy(H5T_IEEE_F32BE);
    case kI32BE: return H5Tcopy(H5T_STD_I32BE);
    case kU8BE: return H5Tcopy(H5T_STD_U8BE);
    case kF64BE: return H5Tcopy(H5T_IEEE_F64BE);
    case kFixedString: {
      const unsigned code_size = in.u16();
      const unsigned pad = in.u8();
      const size_t size = code_size == kHugeStringCode ? kHugeString : std::max(code_size, 1u);
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, size);
      H5Tset_strpad(t, pad % 3 == 0 ? H5T_STR_NULLTERM : pad % 3 == 1 ? H5T_STR_NULLPAD : H5T_STR_SPACEPAD);
      if (pad & 4) H5Tset_cset(t, H5T_CSET_UTF8);
      return t;
    }
    case kVarString: {
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      return t;
    }
    case kCompound: {
      hid_t t = H5Tcreate(H5T_COMPOUND, 8);
      H5Tinsert(t, "a", 0, H5T_STD_I32LE);
      H5Tinsert(t, "b", 4, H5T_IEEE_F32LE);
      return t;
    }
    case kOpaque: {
      hid_t t = H5Tcreate(H5T_OPAQUE, 8);
      H5Tset_tag(t, "fuzz");
      return t;
    }
    case kEnum: {
      hid_t t = H5Tenum_create(H5T_STD_I32LE);
      int v = 0;
      H5Tenum_insert(t, "zero", &v);
      v = 1;
      H5Tenum_insert(t, "one", &v);
      return t;
    }
    case kArrayF32: {
      const hsize_t n = 2;
      return H5Tarray_create2(H5T_IEEE_F32LE, 1, &n);
    }
    case kVlenI32: return H5Tvlen_create(H5T_STD_I32LE);
    default: return H5Tcopy(H5T_STD_B8LE);
  }
}

// Decodes a dataspace: rank -1 for null, 0 for scalar.
int read_space(FuzzInput& in, hsize_t* dims) {
  const unsigned kind = in.u8() % 8;
  if (kind == 0) return 0;
  if (kind == 1) return -1;
  const int rank = kind <= 5 ? static_cast<int>(kind) - 1 : static_cast<int>(kind) - 5;
  for (int d = 0; d < rank; ++d) {
    const unsigned b = in.u8();
    dims[d] = b < 0x80 ? b : in.u32();
  }
  return rank;
}

double element_count(int rank, const hsize_t* dims) {
  double n = 1;
  for (int d = 0; d < rank; ++d) n *= static_cast<double>(dims[d]);
  return rank < 0 ? 0 : n;
}

constexpr double kMaxChunks = 1 << 16;  // chunks of a dataset the writer allocates or indexes

double chunk_count(int rank, const hsize_t* dims, const hsize_t* chunk) {
  double n = 1;
  for (int d = 0; d < rank; ++d) n *= std::ceil(static_cast<double>(dims[d]) / static_cast<double>(std::max<hsize_t>(chunk[d], 1)));
  return n;
}

struct ValueSpec {
  unsigned mode = kZeros;
  std::uint64_t number = 0;
  std::string bytes;
};

ValueSpec read_values(FuzzInput& in, const std::vector<std::string>& dict) {
  ValueSpec v;
  v.mode = in.u8() % kModeCount;
  if (v.mode == kDoubleBits || v.mode == kInteger) v.number = in.u64();
  else if (v.mode == kRamp) v.number = in.u8();
  else if (v.mode == kRawBytes) v.bytes = in.blob();
  else if (v.mode == kDictText) v.bytes = name(in, dict);
  return v;
}

// Writes `n` elements of `type` with `v` through `write(mem_type, buffer)`.
template <class Write>
void write_values(hid_t type, size_t n, const ValueSpec& v, Write&& write) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (n == 0 || size == 0) return;
  if (cls == H5T_STRING && H5Tis_variable_str(type) > 0) {
    std::string text = v.mode == kRawBytes || v.mode == kDictText ? v.bytes
                       : v.mode == kZeros ? std::string() : std::to_string(v.number);
    std::vector<const char*> ptrs(n, text.c_str());
    Id mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.id, H5T_VARIABLE);
    write(mem.id, ptrs.data());
    return;
  }
  if (cls == H5T_VLEN) {
    std::vector<int> ints(v.bytes.size() / 4 + 1, static_cast<int>(v.number));
    std::vector<hvl_t> elems(n, hvl_t{v.bytes.size() / 4, ints.data()});
    Id mem(H5Tvlen_create(H5T_NATIVE_INT), H5Tclose);
    write(mem.id, elems.data());
    return;
  }
  if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && (v.mode == kDoubleBits || v.mode == kInteger || v.mode == kRamp)) {
    if (v.mode == kDoubleBits) {
      double d = 0;
      std::memcpy(&d, &v.number, sizeof d);
      std::vector<double> buf(n, d);
      write(H5T_NATIVE_DOUBLE, buf.data());
    } else {
      std::vector<long long> buf(n);
      for (size_t i = 0; i < n; ++i)
        buf[i] = v.mode == kInteger ? static_cast<long long>(v.number) : static_cast<long long>(i % (v.number + 1));
      write(H5T_NATIVE_LLONG, buf.data());
    }
    return;
  }
  // Raw bytes in the file type's own layout (any bit pattern), or text.
  if (static_cast<double>(n) * static_cast<double>(size) > kMaxWriteBytes) return;
  std::string pattern = v.mode == kRawBytes || v.mode == kDictText ? v.bytes
                        : v.mode == kZeros ? std::string() : std::to_string(v.number);
  std::vector<char> buf(n * size, '\0');
  if (cls == H5T_STRING) {
    for (size_t i = 0; i < n; ++i) std::memcpy(buf.data() + i * size, pattern.data(), std::min(size, pattern.size()));
    if (size > pattern.size() && !pattern.empty() && size == kHugeString)  // a huge text, not a short one padded
      for (size_t k = pattern.size(); k < size; ++k) buf[k] = pattern[k % pattern.size()];
  } else if (!pattern.empty()) {
    for (size_t k = 0; k < buf.size(); ++k) buf[k] = pattern[k % pattern.size()];
  }
  write(type, buf.data());
}

void build_dataset(FuzzInput& in, hid_t file, const std::vector<std::string>& dict, hid_t lcpl) {
  const std::string path = name(in, dict);
  Id type(make_type(in, in.u8()), H5Tclose);
  hsize_t dims[4] = {}, maxdims[4] = {}, chunk[4] = {};
  const int rank = read_space(in, dims);
  const unsigned layout = in.u8();
  const bool chunked = (layout & 3) == kChunked || (layout & 3) == 3;
  if (chunked)
    for (int d = 0; d < std::max(rank, 0); ++d) chunk[d] = std::max<hsize_t>(in.u8(), 1);
  const unsigned filters = chunked ? in.u8() : 0;
  const ValueSpec values = read_values(in, dict);
  if (!type.ok() || path.empty()) return;

  Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  for (int d = 0; d < rank; ++d) {
    maxdims[d] = dims[d];
    if (chunked && ((d == 0 && (layout & kUnlimited)) || dims[d] == 0)) maxdims[d] = H5S_UNLIMITED;
    if (chunked && maxdims[d] != H5S_UNLIMITED) chunk[d] = std::min(chunk[d], dims[d]);
  }
  const double elems = element_count(rank, dims);
  const double bytes = elems * static_cast<double>(H5Tget_size(type.id));
  if (chunked && rank > 0) {
    if (H5Pset_chunk(dcpl.id, rank, chunk) < 0) return;
    if (filters & kShuffle) H5Pset_shuffle(dcpl.id);
    if (filters & kScaleOffset) H5Pset_scaleoffset(dcpl.id, H5Z_SO_INT, H5Z_SO_INT_MINBITS_DEFAULT);
    if (filters & kDeflate) H5Pset_deflate(dcpl.id, 1);
    if (filters & kFletcher32) H5Pset_fletcher32(dcpl.id);
  } else if ((layout & 3) == kCompact) {
    H5Pset_layout(dcpl.id, H5D_COMPACT);
  }
  if ((layout & kEarlyAlloc) && bytes <= 64.0 * (1 << 20) && chunk_count(rank, dims, chunked ? chunk : dims) <= kMaxChunks)
    H5Pset_alloc_time(dcpl.id, H5D_ALLOC_TIME_EARLY);
  if (layout & kFillValue) {
    const double seven = 7;
    H5Pset_fill_value(dcpl.id, H5T_NATIVE_DOUBLE, &seven);
  }
  Id space(rank < 0 ? H5Screate(H5S_NULL) : rank == 0 ? H5Screate(H5S_SCALAR)
                                                      : H5Screate_simple(rank, dims, maxdims), H5Sclose);
  if (!space.ok()) return;
  Id dset(H5Dcreate2(file, path.c_str(), type.id, space.id, lcpl, dcpl.id, H5P_DEFAULT), H5Dclose);
  if (!dset.ok() || (layout & kUnwritten) || elems > kMaxWriteElems) return;
  write_values(type.id, static_cast<size_t>(elems), values, [&](hid_t mem, const void* buf) {
    H5Dwrite(dset.id, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  });
}

void build_attribute(FuzzInput& in, hid_t file, const std::vector<std::string>& dict) {
  const std::string owner = name(in, dict);
  const std::string attr = name(in, dict);
  Id type(make_type(in, in.u8()), H5Tclose);
  hsize_t dims[4] = {};
  const int rank = read_space(in, dims);
  const ValueSpec values = read_values(in, dict);
  const double elems = element_count(rank, dims);
  if (!type.ok() || owner.empty() || attr.empty() || elems > kMaxAttrElems) return;
  if (static_cast<double>(H5Tget_size(type.id)) * std::max(elems, 1.0) > kMaxWriteBytes) return;
  Id obj(H5Oopen(file, owner.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.ok()) return;
  if (H5Aexists(obj.id, attr.c_str()) > 0) H5Adelete(obj.id, attr.c_str());
  Id space(rank < 0 ? H5Screate(H5S_NULL) : rank == 0 ? H5Screate(H5S_SCALAR)
                                                      : H5Screate_simple(rank, dims, nullptr), H5Sclose);
  if (!space.ok()) return;
  Id a(H5Acreate2(obj.id, attr.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.ok()) return;
  write_values(type.id, static_cast<size_t>(rank == 0 ? 1 : elems), values,
               [&](hid_t mem, const void* buf) { H5Awrite(a.id, mem, buf); });
}

// Writes the bytes of one chunk as they are stored (after the filters),
// so a chunk can fail its checksum or decompression.
void build_raw_chunk(FuzzInput& in, hid_t file, const std::vector<std::string>& dict) {
  const std::string path = name(in, dict);
  const unsigned index = in.u16();
  const unsigned mask = in.u8();
  const unsigned size_mode = in.u8();
  std::string bytes = in.blob();
  if (path.empty() || H5Lexists(file, path.c_str(), H5P_DEFAULT) <= 0) return;
  Id dset(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dset.ok()) return;
  Id dcpl(H5Dget_create_plist(dset.id), H5Pclose);
  Id space(H5Dget_space(dset.id), H5Sclose);
  Id type(H5Dget_type(dset.id), H5Tclose);
  if (!dcpl.ok() || !space.ok() || !type.ok() || H5Pget_layout(dcpl.id) != H5D_CHUNKED) return;
  const int rank = H5Sget_simple_extent_ndims(space.id);
  hsize_t chunk[H5S_MAX_RANK] = {}, offset[H5S_MAX_RANK] = {};
  if (rank <= 0 || rank > H5S_MAX_RANK || H5Pget_chunk(dcpl.id, rank, chunk) != rank) return;
  hsize_t extent[H5S_MAX_RANK] = {};
  H5Sget_simple_extent_dims(space.id, extent, nullptr);
  // The latest format's fixed-array chunk index is allocated whole on the
  // first write (61 GB for a crafted extent): the writer's limit, not the reader's.
  if (chunk_count(rank, extent, chunk) > kMaxChunks) return;
  offset[0] = static_cast<hsize_t>(index) * chunk[0];
  // HDF5 1.10.8's H5Dwrite_chunk does not check the offset against the
  // extent: a chunk outside it crashes inside libhdf5 (H5B_find, a NULL read;
  // docs/fuzzing.md). The writer's bug, not the reader's: stay inside.
  for (int d = 0; d < rank; ++d)
    if (offset[d] >= extent[d]) return;  // also a chunk of a dataset with an extent of 0
  if (size_mode & 1) {  // exactly a chunk's bytes, the blob repeated
    double n = static_cast<double>(H5Tget_size(type.id));
    for (int d = 0; d < rank; ++d) n *= static_cast<double>(chunk[d]);
    if (n > (1 << 20)) return;
    std::string full(static_cast<size_t>(n), '\0');
    for (size_t k = 0; k < full.size() && !bytes.empty(); ++k) full[k] = bytes[k % bytes.size()];
    bytes = full;
  }
  if (bytes.empty()) return;
  H5Dwrite_chunk(dset.id, H5P_DEFAULT, mask, offset, bytes.size(), bytes.data());
}

}  // namespace

std::uint8_t build_h5_file(FuzzInput& in, const std::string& path, const std::vector<std::string>& dict) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const std::uint8_t flags = in.u8();
  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.id, (flags & 1) ? H5F_LIBVER_LATEST : H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST);
  Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id), H5Fclose);
  if (!file.ok()) std::abort();  // the scratch file must be writable: not a finding, a broken setup
  Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.id, 1);
  for (int ops = 0; !in.empty() && ops < 256; ++ops) {
    switch (in.u8() % 4) {
      case 0: {
        const std::string g = name(in, dict);
        if (!g.empty()) Id(H5Gcreate2(file.id, g.c_str(), lcpl.id, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
        break;
      }
      case 1: build_dataset(in, file.id, dict, lcpl.id); break;
      case 2: build_attribute(in, file.id, dict); break;
      default: build_raw_chunk(in, file.id, dict); break;
    }
  }
  return flags;
}

const std::string& scratch_path(const std::string& stem) {
  static const std::string path = [&] {
    std::error_code ec;
    const std::string dir = std::filesystem::is_directory("/dev/shm", ec) && access("/dev/shm", W_OK) == 0
                                ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    return dir + "/mpitrain-fuzz-" + stem + "-" + std::to_string(getpid()) + ".h5";
  }();
  static const bool registered = [] {
    std::atexit([] { std::remove(path.c_str()); });
    return true;
  }();
  (void)registered;
  return path;
}

// ---- The encoder (seeds) ----

RecipeWriter::Values RecipeWriter::doubles(double v) {
  Values out{kDoubleBits, 0, {}};
  std::memcpy(&out.number, &v, sizeof v);
  return out;
}

RecipeWriter::Values RecipeWriter::integer(long long v) { return {kInteger, static_cast<std::uint64_t>(v), {}}; }

void RecipeWriter::name(const std::string& n) {
  const auto it = std::find(dict_.begin(), dict_.end(), n);
  if (it != dict_.end()) {
    out_.u8(static_cast<unsigned>(it - dict_.begin()));
  } else {
    out_.u8(0xf0).blob(n);
  }
}

void RecipeWriter::type(TypeCode t, unsigned string_size) {
  out_.u8(t);
  if (t == kFixedString) out_.u16(string_size).u8(0);
}

void RecipeWriter::space(const Space& s) {
  const size_t rank = s.dims.size();
  out_.u8(rank == 0 ? 0 : static_cast<unsigned>(rank) + 1);
  for (auto d : s.dims) {
    if (d < 0x80) out_.u8(d);
    else out_.u8(0x80).u32(d);
  }
}

void RecipeWriter::values(const Values& v) {
  out_.u8(v.mode);
  if (v.mode == kDoubleBits || v.mode == kInteger) out_.u64(v.number);
  else if (v.mode == kRamp) out_.u8(static_cast<unsigned>(v.number));
  else if (v.mode == kRawBytes) out_.blob(v.text);
  else if (v.mode == kDictText) name(v.text);
}

void RecipeWriter::group(const std::string& path) {
  out_.u8(0);
  name(path);
}

void RecipeWriter::dataset(const std::string& path, TypeCode t, const Space& s, unsigned layout,
                           const std::vector<unsigned>& chunk, unsigned filters, const Values& v) {
  out_.u8(1);
  name(path);
  type(t, 0);
  space(s);
  out_.u8(layout);
  const bool chunked = (layout & 3) == kChunked || (layout & 3) == 3;
  if (chunked) {
    for (size_t d = 0; d < s.dims.size(); ++d) out_.u8(d < chunk.size() ? chunk[d] : 1);
    out_.u8(filters);
  }
  values(v);
}

void RecipeWriter::attribute(const std::string& owner, const std::string& n, TypeCode t, const Space& s,
                             const Values& v, unsigned string_size) {
  out_.u8(2);
  name(owner);
  name(n);
  type(t, string_size);
  space(s);
  values(v);
}

void RecipeWriter::raw_chunk(const std::string& path, unsigned index, unsigned filter_mask, bool whole_chunk,
                             const std::string& bytes) {
  out_.u8(3);
  name(path);
  out_.u16(index).u8(filter_mask).u8(whole_chunk ? 1 : 0).blob(bytes);
}

}  // namespace mpitrain::fuzz
