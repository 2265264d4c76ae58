// Thin RAII layer over the HDF5 C API: every hid_t is owned by a move-only
// H5Handle whose destructor closes it, and every call is checked, turning a
// failure into an exception that names the call and the file (HighFive style).
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mpitrain::h5 {

// Silences HDF5's automatic error-stack printing: we report errors ourselves.
void silence_errors();

class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  ~Handle() { reset(); }
  void reset();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Throws SystemError("<call> failed on <context>") when id < 0.
hid_t check_id(hid_t id, const char* call, const std::string& context);
void check(herr_t rc, const char* call, const std::string& context);

Handle open_file_readonly(const std::string& path);          // UserError if absent/not HDF5
Handle create_file_truncate(const std::string& path);
Handle open_dataset(hid_t loc, const std::string& name, const std::string& file);
Handle create_group(hid_t loc, const std::string& name, const std::string& file);

// True if every component of the absolute or relative path exists.
bool path_exists(hid_t loc, const std::string& path);

std::vector<hsize_t> dataset_dims(hid_t dset, const std::string& context);

// Names of the links in a group, in HDF5's name order (what h5py shows).
std::vector<std::string> child_names(hid_t group, const std::string& context);

// HDF5 1.10's Fletcher-32 filter reads far past a stored chunk shorter than
// its 4-byte checksum: a crafted file crashed the process inside H5Dread
// (docs/fuzzing.md). True if `dset` has that filter; then, before a read,
// fletcher32_chunks_intact() checks the chunks overlapping rows
// [first_row, first_row + rows) (false: one is too short to hold a checksum).
bool has_fletcher32(hid_t dset);
bool fletcher32_chunks_intact(hid_t dset, hsize_t first_row, hsize_t rows);

enum class ElemType { kUint8, kInt32, kFloat32, kOther };
ElemType dataset_elem_type(hid_t dset, const std::string& context);
const char* elem_type_name(ElemType t);
std::string describe_type(hid_t dset);  // e.g. "float64", for error messages

// Attributes (on a group, dataset or file). read_* return nullopt when absent.
std::optional<double> read_attr_double(hid_t obj, const std::string& name);
std::optional<long long> read_attr_int(hid_t obj, const std::string& name);
std::optional<std::string> read_attr_string(hid_t obj, const std::string& name);
void write_attr_double(hid_t obj, const std::string& name, double value);
void write_attr_int(hid_t obj, const std::string& name, long long value);
void write_attr_string(hid_t obj, const std::string& name, const std::string& value);

// Creates a chunked dataset of the given memory type (H5T_NATIVE_*), chunked
// along rows, and writes all of data (row-major, dims[0] rows).
void write_dataset(hid_t loc, const std::string& name, hid_t mem_type,
                   const std::vector<hsize_t>& dims, const void* data,
                   hsize_t chunk_rows, const std::string& file);

}  // namespace mpitrain::h5
