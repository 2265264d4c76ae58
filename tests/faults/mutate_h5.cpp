// Test-only tool for the fault campaign (tests/faults/fault_campaign.sh):
// writes a corpus of damaged copies of one HDF5 file (a checkpoint or a
// dataset), each in its own directory, and prints one manifest line per copy.
//
//   mutate_h5 corpus IN OUTDIR NAME SEED FLIPS TRUNCS EXTRA
//
// Every copy is OUTDIR/<id>/NAME. The manifest line is
//   <id> TAB <family> TAB <what was done> TAB <region>
// with the families
//   attr   every attribute of every object, replaced by a 4096-element array
//          of its kind (text: 15 strings of 4 KiB) and by a value of the
//          other kind (a number as text, text as a number); and EXTRA more,
//          drawn with SEED from: no value (null dataspace), a compound, the
//          other numeric class or variable-length text with the same value,
//          variable-length text of 16 MiB + 1 bytes, the attribute deleted;
//   dset   every dataset reshaped and stored as the wider type of its class
//          (same values); EXTRA/2 more drawn from: scalar, text, deleted, a
//          group in its place, 2^20 times the rows in unwritten chunks;
//   flip   FLIPS bytes at SEED-drawn offsets, each XORed with a drawn non-zero
//          byte; region is "data:<dataset>" when the byte holds a dataset's
//          raw values, else "meta";
//   trunc  TRUNCS truncations: fixed small offsets and SEED-drawn ones.
// Everything is a pure function of the arguments (a fixed mt19937_64; the
// offsets are drawn by modulo, not a library distribution).
#include <hdf5.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

void check(herr_t rc, const std::string& what) {
  if (rc < 0) throw std::runtime_error(what + " failed");
}
hid_t check_id(hid_t id, const std::string& what) {
  if (id < 0) throw std::runtime_error(what + " failed");
  return id;
}

// Owns one hid_t (the tool's own; the library's h5::Handle is not needed here).
struct Id {
  hid_t id = H5I_INVALID_HID;
  herr_t (*close)(hid_t) = nullptr;
  Id(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() {
    if (id >= 0) close(id);
  }
  operator hid_t() const { return id; }
};

struct AttrInfo {
  std::string object, name;
  H5T_class_t cls;
};
struct DsetInfo {
  std::string path;
  H5T_class_t cls;
};
struct Range {
  std::string dataset;
  haddr_t offset;
  hsize_t size;
};
struct Contents {
  std::vector<AttrInfo> attrs;
  std::vector<DsetInfo> dsets;
  std::vector<Range> raw;  // where datasets keep their values
};

herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* data) {
  auto* out = static_cast<std::pair<hid_t, std::vector<std::pair<std::string, H5T_class_t>>*>*>(data);
  Id a(H5Aopen(out->first, name, H5P_DEFAULT), H5Aclose);
  Id t(H5Aget_type(a), H5Tclose);
  out->second->emplace_back(name, H5Tget_class(t));
  return 0;
}

herr_t visit(hid_t root, const char* name, const H5O_info_t* info, void* data) {
  auto* c = static_cast<Contents*>(data);
  const std::string path = std::strcmp(name, ".") == 0 ? "/" : "/" + std::string(name);
  Id obj(check_id(H5Oopen(root, name, H5P_DEFAULT), "H5Oopen " + path), H5Oclose);
  std::vector<std::pair<std::string, H5T_class_t>> attrs;
  std::pair<hid_t, decltype(attrs)*> arg{obj, &attrs};
  check(H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attr, &arg), "H5Aiterate2 " + path);
  for (const auto& [n, cls] : attrs) c->attrs.push_back({path, n, cls});
  if (info->type != H5O_TYPE_DATASET) return 0;
  Id type(H5Dget_type(obj), H5Tclose);
  c->dsets.push_back({path, H5Tget_class(type)});
  Id dcpl(H5Dget_create_plist(obj), H5Pclose);
  Id space(H5Dget_space(obj), H5Sclose);
  if (H5Pget_layout(dcpl) == H5D_CONTIGUOUS) {
    const haddr_t off = H5Dget_offset(obj);
    if (off != HADDR_UNDEF) c->raw.push_back({path, off, H5Dget_storage_size(obj)});
  } else if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
    hsize_t n = 0;
    check(H5Dget_num_chunks(obj, space, &n), "H5Dget_num_chunks " + path);
    for (hsize_t i = 0; i < n; ++i) {
      hsize_t coords[H5S_MAX_RANK];
      unsigned mask = 0;
      haddr_t off = 0;
      hsize_t size = 0;
      check(H5Dget_chunk_info(obj, space, i, coords, &mask, &off, &size), "H5Dget_chunk_info " + path);
      c->raw.push_back({path, off, size});
    }
  }
  return 0;
}

Contents contents_of(const std::string& file) {
  Id f(check_id(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "H5Fopen " + file), H5Fclose);
  Contents c;
  check(H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, visit, &c), "H5Ovisit " + file);
  return c;
}

// Opens a copy for writing in the format it was written in.
hid_t open_rw(const std::string& file) {
  return check_id(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "H5Fopen (rw) " + file);
}

hid_t string_type(size_t size) {
  hid_t t = check_id(H5Tcopy(H5T_C_S1), "H5Tcopy");
  check(H5Tset_size(t, size), "H5Tset_size");
  return t;
}

void create_attr(hid_t obj, const std::string& name, hid_t type, hid_t space, const void* data) {
  Id a(check_id(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2 " + name),
       H5Aclose);
  if (data) check(H5Awrite(a, type, data), "H5Awrite " + name);
}

// The attribute's value as a number (0 if it is not one) and as text.
struct Value {
  double number = 0;
  std::string text;
};
Value read_value(hid_t obj, const AttrInfo& ai) {
  Value v;
  Id a(check_id(H5Aopen(obj, ai.name.c_str(), H5P_DEFAULT), "H5Aopen " + ai.name), H5Aclose);
  Id space(H5Aget_space(a), H5Sclose);
  if (H5Sget_simple_extent_npoints(space) != 1) return v;
  if (ai.cls == H5T_INTEGER || ai.cls == H5T_FLOAT) {
    check(H5Aread(a, H5T_NATIVE_DOUBLE, &v.number), "H5Aread " + ai.name);
    char buf[64];
    std::snprintf(buf, sizeof buf, ai.cls == H5T_INTEGER ? "%.0f" : "%.17g", v.number);
    v.text = buf;
  } else if (ai.cls == H5T_STRING) {
    Id ft(H5Aget_type(a), H5Tclose);
    if (H5Tis_variable_str(ft) > 0) return v;
    std::string s(H5Tget_size(ft), '\0');
    Id mt(string_type(s.size()), H5Tclose);
    check(H5Aread(a, mt, s.data()), "H5Aread " + ai.name);
    v.text = s.substr(0, s.find('\0'));
  }
  return v;
}

// Replaces attribute `ai` of the copy `file` according to `kind`.
void mutate_attr(const std::string& file, const AttrInfo& ai, const std::string& kind) {
  Id f(open_rw(file), H5Fclose);
  Id obj(check_id(H5Oopen(f, ai.object.c_str(), H5P_DEFAULT), "H5Oopen " + ai.object), H5Oclose);
  const Value v = read_value(obj, ai);
  const bool is_text = ai.cls == H5T_STRING;
  check(H5Adelete(obj, ai.name.c_str()), "H5Adelete " + ai.name);
  if (kind == "delete") return;
  Id scalar(H5Screate(H5S_SCALAR), H5Sclose);
  if (kind == "array") {
    if (is_text) {
      const hsize_t n = 15;  // 60 KiB: an attribute of an existing object stays under 64 KiB
      const size_t len = 4096;
      Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
      Id t(string_type(len), H5Tclose);
      std::string data(n * len, 'A');
      create_attr(obj, ai.name, t, space, data.data());
    } else {
      const hsize_t n = 4096;
      Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
      std::vector<double> data(n, v.number);
      Id t(H5Tcopy(ai.cls == H5T_INTEGER ? H5T_STD_I64LE : H5T_IEEE_F64LE), H5Tclose);
      if (ai.cls == H5T_INTEGER) {
        std::vector<long long> ints(n, static_cast<long long>(v.number));
        create_attr(obj, ai.name, H5T_NATIVE_LLONG, space, ints.data());
      } else {
        create_attr(obj, ai.name, H5T_NATIVE_DOUBLE, space, data.data());
      }
    }
  } else if (kind == "retype") {
    if (is_text) {
      const long long seven = 7;
      create_attr(obj, ai.name, H5T_NATIVE_LLONG, scalar, &seven);
    } else {
      const std::string s = v.text.empty() ? "0" : v.text;
      Id t(string_type(s.size()), H5Tclose);
      create_attr(obj, ai.name, t, scalar, s.data());
    }
  } else if (kind == "null") {
    Id space(H5Screate(H5S_NULL), H5Sclose);
    Id t(is_text ? string_type(8) : H5Tcopy(H5T_NATIVE_LLONG), H5Tclose);
    create_attr(obj, ai.name, t, space, nullptr);
  } else if (kind == "compound") {
    struct Pair {
      long long a;
      double b;
    } p{1, 2.0};
    Id t(H5Tcreate(H5T_COMPOUND, sizeof(Pair)), H5Tclose);
    check(H5Tinsert(t, "a", HOFFSET(Pair, a), H5T_NATIVE_LLONG), "H5Tinsert");
    check(H5Tinsert(t, "b", HOFFSET(Pair, b), H5T_NATIVE_DOUBLE), "H5Tinsert");
    create_attr(obj, ai.name, t, scalar, &p);
  } else if (kind == "swap") {  // the same value in the other representation
    if (is_text) {
      Id t(string_type(H5T_VARIABLE), H5Tclose);
      const char* s = v.text.c_str();
      create_attr(obj, ai.name, t, scalar, &s);
    } else if (ai.cls == H5T_INTEGER) {
      create_attr(obj, ai.name, H5T_NATIVE_DOUBLE, scalar, &v.number);
    } else {
      const auto i = static_cast<long long>(v.number);
      create_attr(obj, ai.name, H5T_NATIVE_LLONG, scalar, &i);
    }
  } else if (kind == "oversized") {  // text only: 16 MiB + 1 bytes, variable-length (in the global heap:
    // an existing object's header cannot hold a fixed-length one over 64 KiB)
    const std::string data((size_t{16} << 20) + 1, 'B');
    Id t(string_type(H5T_VARIABLE), H5Tclose);
    const char* s = data.c_str();
    create_attr(obj, ai.name, t, scalar, &s);
  } else {
    throw std::runtime_error("unknown attribute mutation " + kind);
  }
}

// Replaces dataset `d` of the copy `file` according to `kind`.
void mutate_dset(const std::string& file, const DsetInfo& d, const std::string& kind) {
  Id f(open_rw(file), H5Fclose);
  std::vector<hsize_t> dims;
  std::vector<double> values;  // as double: every value of these small files fits
  {
    Id ds(check_id(H5Dopen2(f, d.path.c_str(), H5P_DEFAULT), "H5Dopen2 " + d.path), H5Dclose);
    Id space(H5Dget_space(ds), H5Sclose);
    dims.resize(static_cast<size_t>(H5Sget_simple_extent_ndims(space)));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    values.resize(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
    if ((d.cls == H5T_INTEGER || d.cls == H5T_FLOAT) && !values.empty())
      check(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "H5Dread " + d.path);
  }
  check(H5Ldelete(f, d.path.c_str(), H5P_DEFAULT), "H5Ldelete " + d.path);
  if (kind == "delete") return;
  if (kind == "group") {
    Id g(check_id(H5Gcreate2(f, d.path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2"), H5Gclose);
    return;
  }
  const auto create = [&](hid_t type, const std::vector<hsize_t>& shape, hid_t dcpl, const void* data, hid_t mtype) {
    Id space(shape.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr),
             H5Sclose);
    Id ds(check_id(H5Dcreate2(f, d.path.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), "H5Dcreate2 " + d.path),
          H5Dclose);
    if (data) check(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "H5Dwrite " + d.path);
  };
  const hid_t wide = d.cls == H5T_INTEGER ? H5T_STD_I64LE : H5T_IEEE_F64LE;
  if (kind == "widen") {  // same values, the widest type of the class
    create(wide, dims, H5P_DEFAULT, values.data(), H5T_NATIVE_DOUBLE);
  } else if (kind == "reshape") {  // dims reversed, or a 1-D one as a column
    std::vector<hsize_t> shape(dims.rbegin(), dims.rend());
    if (dims.size() == 1) shape = {dims[0], 1};
    if (dims.size() == 2 && dims[0] == dims[1]) shape = {dims[0] * dims[1]};
    create(wide, shape, H5P_DEFAULT, values.data(), H5T_NATIVE_DOUBLE);
  } else if (kind == "scalar") {
    const double one = values.empty() ? 0.0 : values[0];
    create(wide, {}, H5P_DEFAULT, &one, H5T_NATIVE_DOUBLE);
  } else if (kind == "text") {
    Id t(string_type(4), H5Tclose);
    std::vector<char> data(values.size() * 4, 'x');
    create(t, dims, H5P_DEFAULT, data.empty() ? nullptr : data.data(), t);
  } else if (kind == "huge") {  // 2^20 times the rows, chunked, nothing written
    std::vector<hsize_t> shape = dims.empty() ? std::vector<hsize_t>{1} : dims;
    std::vector<hsize_t> chunk = shape;
    chunk[0] = std::max<hsize_t>(shape[0], 1);
    shape[0] = chunk[0] << 20;
    Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    check(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk");
    create(wide, shape, dcpl, nullptr, H5T_NATIVE_DOUBLE);
  } else {
    throw std::runtime_error("unknown dataset mutation " + kind);
  }
}

std::string id_of(std::string path) {
  if (path == "/") return "root";
  path.erase(0, 1);
  for (char& ch : path)
    if (ch == '/') ch = '.';
  return path;
}

struct Corpus {
  std::string in, outdir, name;
  std::vector<char> bytes;
  int count = 0;

  // A fresh directory OUTDIR/<id> holding a copy of the input; returns the copy's path.
  std::string copy(const std::string& id) {
    const fs::path dir = fs::path(outdir) / id;
    fs::create_directories(dir);
    const fs::path out = dir / name;
    fs::copy_file(in, out, fs::copy_options::overwrite_existing);
    return out.string();
  }
  void write(const std::string& id, const std::vector<char>& data) {
    const fs::path dir = fs::path(outdir) / id;
    fs::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  void emit(const std::string& id, const char* family, const std::string& what, const std::string& region) {
    std::printf("%s\t%s\t%s\t%s\n", id.c_str(), family, what.c_str(), region.c_str());
    ++count;
  }
};

int corpus(int argc, char** argv) {
  if (argc != 9) throw std::runtime_error("corpus takes IN OUTDIR NAME SEED FLIPS TRUNCS EXTRA");
  Corpus c{argv[2], argv[3], argv[4], {}, 0};
  std::mt19937_64 rng(std::stoull(argv[5]));
  const int flips = std::stoi(argv[6]), truncs = std::stoi(argv[7]), extra = std::stoi(argv[8]);
  {
    std::ifstream f(c.in, std::ios::binary);
    c.bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  const Contents contents = contents_of(c.in);
  const auto draw = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };

  // Attributes: every one as an array and as the other kind; EXTRA drawn others.
  const auto attr_case = [&](const AttrInfo& ai, const std::string& kind) {
    const std::string id = "attr-" + kind + "-" + id_of(ai.object) + "@" + ai.name;
    mutate_attr(c.copy(id), ai, kind);
    c.emit(id, "attr", kind + " " + ai.object + " " + ai.name, "meta");
  };
  for (const AttrInfo& ai : contents.attrs)
    for (const char* kind : {"array", "retype"}) attr_case(ai, kind);
  const char* const attr_extra[] = {"null", "compound", "swap", "oversized", "delete"};
  for (int i = 0; i < extra && !contents.attrs.empty(); ++i) {
    const AttrInfo& ai = contents.attrs[draw(contents.attrs.size())];
    std::string kind = attr_extra[draw(std::size(attr_extra))];
    if (kind == "oversized" && ai.cls != H5T_STRING) kind = "swap";
    const std::string id = "attr-" + kind + "-" + id_of(ai.object) + "@" + ai.name;
    if (fs::exists(fs::path(c.outdir) / id)) continue;  // drawn twice
    attr_case(ai, kind);
  }

  // Datasets: every one reshaped and widened; EXTRA/2 drawn others.
  const auto dset_case = [&](const DsetInfo& d, const std::string& kind) {
    const std::string id = "dset-" + kind + "-" + id_of(d.path);
    mutate_dset(c.copy(id), d, kind);
    c.emit(id, "dset", kind + " " + d.path, "meta");
  };
  for (const DsetInfo& d : contents.dsets)
    for (const char* kind : {"reshape", "widen"}) dset_case(d, kind);
  const char* const dset_extra[] = {"scalar", "text", "delete", "group", "huge"};
  for (int i = 0; i < extra / 2 && !contents.dsets.empty(); ++i) {
    const DsetInfo& d = contents.dsets[draw(contents.dsets.size())];
    const std::string kind = dset_extra[draw(std::size(dset_extra))];
    if (fs::exists(fs::path(c.outdir) / ("dset-" + kind + "-" + id_of(d.path)))) continue;
    dset_case(d, kind);
  }

  // Flipped bytes.
  const std::uint64_t size = c.bytes.size();
  for (int i = 0; i < flips; ++i) {
    const std::uint64_t off = draw(size);
    const auto mask = static_cast<char>(1 + draw(255));
    std::vector<char> b = c.bytes;
    b[off] = static_cast<char>(b[off] ^ mask);
    std::string region = "meta";
    for (const Range& r : contents.raw)
      if (off >= r.offset && off < r.offset + r.size) region = "data:" + r.dataset;
    char id[64];
    std::snprintf(id, sizeof id, "flip-%02d-at%llu", i, static_cast<unsigned long long>(off));
    c.write(id, b);
    char what[96];
    std::snprintf(what, sizeof what, "byte %llu of %llu xor 0x%02x", static_cast<unsigned long long>(off),
                  static_cast<unsigned long long>(size), static_cast<unsigned>(static_cast<unsigned char>(mask)));
    c.emit(id, "flip", what, region);
  }

  // Truncations: the empty file, inside the superblock, then drawn lengths.
  std::vector<std::uint64_t> lengths = {0, 8, 96, size - 1};
  while (static_cast<int>(lengths.size()) < truncs) lengths.push_back(1 + draw(size - 1));
  lengths.resize(static_cast<size_t>(std::min<int>(truncs, static_cast<int>(lengths.size()))));
  for (const std::uint64_t len : lengths) {
    const std::string id = "trunc-" + std::to_string(len);
    if (fs::exists(fs::path(c.outdir) / id)) continue;
    c.write(id, std::vector<char>(c.bytes.begin(), c.bytes.begin() + static_cast<long>(len)));
    c.emit(id, "trunc", "first " + std::to_string(len) + " of " + std::to_string(size) + " bytes", "meta");
  }
  std::fprintf(stderr, "mutate_h5: %d files from %s (%zu attributes, %zu datasets, %zu raw ranges)\n", c.count,
               c.in.c_str(), contents.attrs.size(), contents.dsets.size(), contents.raw.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  try {
    if (argc >= 2 && std::string(argv[1]) == "corpus") return corpus(argc, argv);
    std::fputs("usage: mutate_h5 corpus IN OUTDIR NAME SEED FLIPS TRUNCS EXTRA\n", stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mutate_h5: %s\n", e.what());
    return 1;
  }
}
