#include "mpitrain/io/h5.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "mpitrain/core/errors.hpp"

namespace mpitrain::h5 {

void silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_) closer_(id_);  // never throws: a failed close is not recoverable here
  id_ = H5I_INVALID_HID;
}

hid_t check_id(hid_t id, const char* call, const std::string& context) {
  if (id < 0) throw SystemError(std::string(call) + " failed on " + context);
  return id;
}

void check(herr_t rc, const char* call, const std::string& context) {
  if (rc < 0) throw SystemError(std::string(call) + " failed on " + context);
}

Handle open_file_readonly(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw UserError("data file '" + path + "' does not exist: pass an existing HDF5 file with --data");
  if (fs::is_directory(path, ec))
    throw UserError("'" + path + "' is a directory, not an HDF5 file: pass the dataset file itself");
  // Stat only: H5Fis_hdf5 would open a FIFO and wait for a writer forever.
  if (!fs::is_regular_file(path, ec))
    throw UserError("'" + path + "' is not a regular file (a FIFO, socket or device): pass the dataset file itself");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw UserError("'" + path + "' is not an HDF5 file (convert it with 'mpitrain convert')");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw UserError("cannot open HDF5 file '" + path + "' for reading");
  return Handle(id, H5Fclose);
}

Handle create_file_truncate(const std::string& path) {
  return Handle(check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                         "H5Fcreate", path),
                H5Fclose);
}

Handle open_dataset(hid_t loc, const std::string& name, const std::string& file) {
  if (!path_exists(loc, name))
    throw UserError("'" + file + "' has no dataset '" + name + "'");
  hid_t id = H5Dopen2(loc, name.c_str(), H5P_DEFAULT);
  if (id < 0) throw UserError("'" + name + "' in '" + file + "' is not a dataset");
  return Handle(id, H5Dclose);
}

Handle create_group(hid_t loc, const std::string& name, const std::string& file) {
  return Handle(check_id(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         "H5Gcreate2", file + ":" + name),
                H5Gclose);
}

bool path_exists(hid_t loc, const std::string& path) {
  // H5Lexists fails (rather than returning false) when an intermediate link is
  // missing, so walk the path one component at a time.
  std::string prefix = path.starts_with("/") ? "/" : "";
  size_t pos = prefix.size();
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    prefix += path.substr(pos, next - pos);
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    prefix += "/";
    pos = next + 1;
  }
  return true;
}

std::vector<hsize_t> dataset_dims(hid_t dset, const std::string& context) {
  Handle space(check_id(H5Dget_space(dset), "H5Dget_space", context), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) throw SystemError("H5Sget_simple_extent_ndims failed on " + context);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr),
                      "H5Sget_simple_extent_dims", context);
  return dims;
}

bool has_fletcher32(hid_t dset) {
  Handle dcpl(H5Dget_create_plist(dset), H5Pclose);
  if (!dcpl.valid() || H5Pget_layout(dcpl.get()) != H5D_CHUNKED) return false;
  unsigned flags = 0;
  size_t n = 0;
  return H5Pget_filter_by_id2(dcpl.get(), H5Z_FILTER_FLETCHER32, &flags, &n, nullptr, 0, nullptr, nullptr) >= 0;
}

bool fletcher32_chunks_intact(hid_t dset, hsize_t first_row, hsize_t rows) {
  Handle dcpl(H5Dget_create_plist(dset), H5Pclose);
  Handle space(H5Dget_space(dset), H5Sclose);
  if (!dcpl.valid() || !space.valid()) return false;
  const int rank = H5Sget_simple_extent_ndims(space.get());
  hsize_t dims[H5S_MAX_RANK] = {}, chunk[H5S_MAX_RANK] = {}, at[H5S_MAX_RANK] = {};
  if (rank <= 0 || rank > H5S_MAX_RANK || H5Sget_simple_extent_dims(space.get(), dims, nullptr) < 0 ||
      H5Pget_chunk(dcpl.get(), rank, chunk) != rank)
    return false;
  for (int d = 0; d < rank; ++d)
    if (chunk[d] == 0 || dims[d] == 0) return true;  // nothing stored to read
  const hsize_t end_row = std::min(dims[0], first_row + rows);
  // Every chunk the rows overlap: along the rows, and across all other dimensions.
  for (at[0] = first_row / chunk[0] * chunk[0]; at[0] < end_row;) {
    hsize_t bytes = 0;
    if (H5Dget_chunk_storage_size(dset, at, &bytes) < 0) return false;
    if (bytes > 0 && bytes < 4) return false;  // 0: never written (the fill value, not filtered)
    int d = rank - 1;
    for (; d > 0; --d) {
      at[d] += chunk[d];
      if (at[d] < dims[d]) break;
      at[d] = 0;
    }
    if (d == 0) at[0] += chunk[0];
  }
  return true;
}

ElemType dataset_elem_type(hid_t dset, const std::string& context) {
  Handle type(check_id(H5Dget_type(dset), "H5Dget_type", context), H5Tclose);
  H5T_class_t cls = H5Tget_class(type.get());
  size_t size = H5Tget_size(type.get());
  if (cls == H5T_INTEGER) {
    H5T_sign_t sign = H5Tget_sign(type.get());
    if (size == 1 && sign == H5T_SGN_NONE) return ElemType::kUint8;
    if (size == 4 && sign == H5T_SGN_2) return ElemType::kInt32;
  } else if (cls == H5T_FLOAT && size == 4) {
    return ElemType::kFloat32;
  }
  return ElemType::kOther;
}

std::string describe_type(hid_t dset) {
  Handle type(H5Dget_type(dset), H5Tclose);
  if (!type.valid()) return "unknown type";
  const size_t bits = H5Tget_size(type.get()) * 8;
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER:
      return (H5Tget_sign(type.get()) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT: return "float" + std::to_string(bits);
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    default: return "a non-numeric type";
  }
}

const char* elem_type_name(ElemType t) {
  switch (t) {
    case ElemType::kUint8: return "uint8";
    case ElemType::kInt32: return "int32";
    case ElemType::kFloat32: return "float32";
    default: return "other";
  }
}

namespace {
Handle open_attr(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) return {};
  return Handle(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
}
Handle scalar_space() { return Handle(check_id(H5Screate(H5S_SCALAR), "H5Screate", "attribute"), H5Sclose); }
void replace_attr(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) > 0) check(H5Adelete(obj, name.c_str()), "H5Adelete", name);
}
}  // namespace

namespace {

// Text longer than this in one attribute is refused before it is allocated
// (the longest mpitrain writes, a run's config, is a few KB).
constexpr size_t kMaxAttrTextBytes = 16u << 20;

// The file an object lives in, for messages.
std::string file_of(hid_t obj) {
  const ssize_t n = H5Fget_name(obj, nullptr, 0);
  if (n <= 0) return "?";
  std::string name(static_cast<size_t>(n) + 1, '\0');
  H5Fget_name(obj, name.data(), name.size());
  name.resize(static_cast<size_t>(n));
  return name;
}

// Opens attribute `name` after checking it holds exactly one value of the
// expected type class (a scalar, or an array of one element): anything else
// is a file mpitrain did not write that way, refused before any copy.
Handle open_single_attr(hid_t obj, const std::string& name, bool want_string) {
  Handle a = open_attr(obj, name);
  if (!a.valid()) return a;
  const std::string where = "attribute '" + name + "' of '" + file_of(obj) + "'";
  const std::string fix = ": the file was not written by mpitrain or was altered; re-create it or restore a copy";
  const std::string expected = want_string ? "one text" : "one number";
  Handle space(check_id(H5Aget_space(a.get()), "H5Aget_space", where), H5Sclose);
  const hssize_t points = H5Sget_simple_extent_npoints(space.get());
  if (points != 1)
    throw UserError(where + " holds " + std::to_string(points) + " values, expected " + expected + fix);
  Handle type(check_id(H5Aget_type(a.get()), "H5Aget_type", where), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  const bool is_string = cls == H5T_STRING, is_number = cls == H5T_INTEGER || cls == H5T_FLOAT;
  if (want_string ? !is_string : !is_number)
    throw UserError(where + " is " + (is_string ? "text" : is_number ? "a number" : "of another type") +
                    ", expected " + expected + fix);
  if (want_string && H5Tis_variable_str(type.get()) <= 0 && H5Tget_size(type.get()) > kMaxAttrTextBytes)
    throw UserError(where + " declares " + std::to_string(H5Tget_size(type.get())) + " bytes of text, more than " +
                    std::to_string(kMaxAttrTextBytes) + fix);
  return a;
}

}  // namespace

std::optional<double> read_attr_double(hid_t obj, const std::string& name) {
  Handle a = open_single_attr(obj, name, false);
  if (!a.valid()) return std::nullopt;
  double v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v), "H5Aread", "attribute " + name);
  return v;
}

std::optional<long long> read_attr_int(hid_t obj, const std::string& name) {
  Handle a = open_single_attr(obj, name, false);
  if (!a.valid()) return std::nullopt;
  long long v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_LLONG, &v), "H5Aread", "attribute " + name);
  return v;
}

std::optional<std::string> read_attr_string(hid_t obj, const std::string& name) {
  Handle a = open_single_attr(obj, name, true);
  if (!a.valid()) return std::nullopt;
  Handle ftype(check_id(H5Aget_type(a.get()), "H5Aget_type", name), H5Tclose);
  if (H5Tis_variable_str(ftype.get()) > 0) {
    Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mtype.get(), H5T_VARIABLE);
    char* s = nullptr;
    check(H5Aread(a.get(), mtype.get(), &s), "H5Aread", "attribute " + name);
    std::string out = s ? std::string(s, strnlen(s, kMaxAttrTextBytes)) : "";
    H5free_memory(s);
    return out;
  }
  size_t n = H5Tget_size(ftype.get());
  std::string out(n, '\0');
  Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mtype.get(), n);
  check(H5Aread(a.get(), mtype.get(), out.data()), "H5Aread", "attribute " + name);
  out.resize(out.find('\0') == std::string::npos ? n : out.find('\0'));
  return out;
}

void write_attr_double(hid_t obj, const std::string& name, double value) {
  replace_attr(obj, name);
  Handle space = scalar_space();
  Handle a(check_id(H5Acreate2(obj, name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                    "H5Acreate2", name), H5Aclose);
  check(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &value), "H5Awrite", name);
}

void write_attr_int(hid_t obj, const std::string& name, long long value) {
  replace_attr(obj, name);
  Handle space = scalar_space();
  Handle a(check_id(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                    "H5Acreate2", name), H5Aclose);
  check(H5Awrite(a.get(), H5T_NATIVE_LLONG, &value), "H5Awrite", name);
}

void write_attr_string(hid_t obj, const std::string& name, const std::string& value) {
  replace_attr(obj, name);
  Handle space = scalar_space();
  Handle type(check_id(H5Tcopy(H5T_C_S1), "H5Tcopy", name), H5Tclose);
  check(H5Tset_size(type.get(), value.empty() ? 1 : value.size()), "H5Tset_size", name);
  check(H5Tset_strpad(type.get(), H5T_STR_NULLTERM), "H5Tset_strpad", name);
  Handle a(check_id(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                    "H5Acreate2", name), H5Aclose);
  std::string buf = value.empty() ? std::string(1, '\0') : value;
  check(H5Awrite(a.get(), type.get(), buf.data()), "H5Awrite", name);
}

void write_dataset(hid_t loc, const std::string& name, hid_t mem_type,
                   const std::vector<hsize_t>& dims, const void* data,
                   hsize_t chunk_rows, const std::string& file) {
  const std::string ctx = file + ":" + name;
  Handle space(check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        "H5Screate_simple", ctx), H5Sclose);
  Handle dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", ctx), H5Pclose);
  if (!dims.empty() && dims[0] > 0) {
    std::vector<hsize_t> chunk = dims;
    chunk[0] = std::min<hsize_t>(std::max<hsize_t>(chunk_rows, 1), dims[0]);
    check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk", ctx);
  }
  hid_t file_type = mem_type;
  if (H5Tequal(mem_type, H5T_NATIVE_UINT8) > 0) file_type = H5T_STD_U8LE;
  else if (H5Tequal(mem_type, H5T_NATIVE_INT32) > 0) file_type = H5T_STD_I32LE;
  else if (H5Tequal(mem_type, H5T_NATIVE_FLOAT) > 0) file_type = H5T_IEEE_F32LE;
  Handle dset(check_id(H5Dcreate2(loc, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                       "H5Dcreate2", ctx), H5Dclose);
  if (!dims.empty() && dims[0] > 0)
    check(H5Dwrite(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "H5Dwrite", ctx);
}

// Names of the links in a group, in HDF5's name order (what h5py shows).
std::vector<std::string> child_names(hid_t group, const std::string& context) {
  H5G_info_t info;
  h5::check(H5Gget_info(group, &info), "H5Gget_info", context);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) throw SystemError("H5Lget_name_by_idx failed on " + context);
    std::string name(static_cast<size_t>(n) + 1, '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<size_t>(n));
    names.push_back(name);
  }
  return names;
}

}  // namespace mpitrain::h5
