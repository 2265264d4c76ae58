// Writes a dataset file in the layout of DESIGN.md ("Files on disk"):
//   /train/x [N, d...] uint8 (attr scale, optional mean/std) or float32
//   /train/y [N] int32 class ids, or [N, k] float32 regression targets
//   /test/... the same; root attrs num_classes, source, description.
// The file is written under a temporary name beside the target and renamed
// only when complete, so a failed conversion never leaves a half file.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mpitrain {

struct SplitArrays {
  std::vector<std::uint64_t> x_dims;  // [N, d...]
  std::vector<std::uint8_t> x_u8;     // filled when x is stored as uint8
  std::vector<float> x_f32;           // filled when x is stored as float32
  double scale = 1.0;                 // stored x * scale = feature value
  std::optional<double> mean, std;    // optional normalisation after scaling
  std::vector<std::int32_t> y_class;  // [N] class ids (classification)
  std::vector<float> y_target;        // [N, target_width] (regression)
  int target_width = 0;
  std::uint64_t rows() const { return x_dims.empty() ? 0 : x_dims[0]; }
};

struct DatasetArrays {
  SplitArrays train, test;
  int num_classes = 0;  // 0 means regression
  std::string source, description;
};

// Throws UserError on inconsistent arrays, SystemError on I/O failure.
void write_dataset_file(const DatasetArrays& data, const std::string& path);

}  // namespace mpitrain
