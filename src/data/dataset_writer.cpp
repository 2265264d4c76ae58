#include "mpitrain/data/dataset_writer.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/h5.hpp"

namespace mpitrain {
namespace {

constexpr hsize_t kChunkRows = 64;  // small chunks: ranks read scattered rows

void validate_split(const SplitArrays& s, const char* name, int num_classes) {
  const std::string n = name;
  if (s.x_dims.size() < 2) throw UserError(n + "/x must have at least 2 dimensions [N, d]");
  std::uint64_t per_row = 1;
  for (size_t i = 1; i < s.x_dims.size(); ++i) per_row *= s.x_dims[i];
  const std::uint64_t want = s.rows() * per_row;
  const std::uint64_t have = s.x_u8.empty() ? s.x_f32.size() : s.x_u8.size();
  if (have != want) throw UserError(n + "/x holds " + std::to_string(have) + " values, shape needs " + std::to_string(want));
  if (num_classes > 0) {
    if (s.y_class.size() != s.rows()) throw UserError(n + "/y must have one label per row");
    for (auto y : s.y_class)
      if (y < 0 || y >= num_classes) throw UserError(n + "/y has label " + std::to_string(y) + " outside [0, num_classes)");
  } else {
    if (s.target_width <= 0 || s.y_target.size() != s.rows() * static_cast<std::uint64_t>(s.target_width))
      throw UserError(n + "/y must have target_width values per row");
  }
}

// x_u8 selects the stored type for both splits (an empty split has no values
// to tell it, and readers require train and test to agree).
void write_split(hid_t file, const SplitArrays& s, const char* name, int num_classes, bool x_u8,
                 const std::string& path) {
  h5::Handle group = h5::create_group(file, name, path);
  std::vector<hsize_t> dims(s.x_dims.begin(), s.x_dims.end());
  const bool u8 = x_u8;
  h5::write_dataset(group.get(), "x", u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, dims,
                    u8 ? static_cast<const void*>(s.x_u8.data()) : static_cast<const void*>(s.x_f32.data()),
                    kChunkRows, path);
  {
    h5::Handle x = h5::open_dataset(group.get(), "x", path);
    h5::write_attr_double(x.get(), "scale", s.scale);
    if (s.mean) h5::write_attr_double(x.get(), "mean", *s.mean);
    if (s.std) h5::write_attr_double(x.get(), "std", *s.std);
  }
  if (num_classes > 0) {
    h5::write_dataset(group.get(), "y", H5T_NATIVE_INT32, {s.rows()}, s.y_class.data(), 4096, path);
  } else {
    h5::write_dataset(group.get(), "y", H5T_NATIVE_FLOAT, {s.rows(), static_cast<hsize_t>(s.target_width)},
                      s.y_target.data(), 4096, path);
  }
}

}  // namespace

void write_dataset_file(const DatasetArrays& data, const std::string& path) {
  validate_split(data.train, "train", data.num_classes);
  validate_split(data.test, "test", data.num_classes);
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw UserError("output directory '" + dir.string() + "' does not exist: create it or choose another --output");
  const std::string tmp = (dir / ("." + target.filename().string() + ".tmp." + std::to_string(getpid()))).string();
  h5::silence_errors();
  try {
    {
      h5::Handle file = h5::create_file_truncate(tmp);
      const bool x_u8 = !data.train.x_u8.empty();
      write_split(file.get(), data.train, "train", data.num_classes, x_u8, path);
      write_split(file.get(), data.test, "test", data.num_classes, x_u8, path);
      h5::write_attr_int(file.get(), "num_classes", data.num_classes);
      h5::write_attr_string(file.get(), "source", data.source);
      h5::write_attr_string(file.get(), "description", data.description);
      h5::check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "H5Fflush", tmp);
    }
    // fsync the closed file so the rename never exposes unwritten data.
    if (FILE* f = std::fopen(tmp.c_str(), "rb")) { fsync(fileno(f)); std::fclose(f); }
    fs::rename(tmp, target);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

}  // namespace mpitrain
