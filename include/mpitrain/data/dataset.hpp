// Reading a dataset file (layout in DESIGN.md / datasets/README.md). Each
// rank opens the file itself and reads only the rows of its own shard, every
// step, converting stored uint8 to float with the stored scale (and the
// optional mean/std). Reading sits behind SplitReader so a prefetching reader
// can replace it without touching the trainer.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mpitrain/core/tensor.hpp"
#include "mpitrain/io/h5.hpp"
#include "mpitrain/core/shape.hpp"

namespace mpitrain {

struct SplitInfo {
  std::string name;          // "train", "test", "val"
  long long rows = 0;
  int x_width = 0;           // product of x's dims after the first
  // The sample shape x's dims give: [N, d] a flat vector d x 1 x 1, [N, H, W]
  // a 1 x H x W image, [N, H, W, C] a C x H x W image stored channels last.
  Shape shape;
  h5::ElemType x_type = h5::ElemType::kOther;
  int y_width = 0;           // 0: int32 class ids [N]; k: float32 targets [N, k]
  double scale = 1.0, mean = 0.0, std = 1.0;
  // Class ids were all checked when the file was opened; false for a split
  // too large to scan up front (its readers check each label they read).
  bool labels_checked = true;
  // The feature value a stored value becomes: (v * scale - mean) / std.
  double normalized(double stored) const { return (stored * scale - mean) / std; }
};

class DatasetFile {
 public:
  // Opens and validates the file: /train must exist; every split present has
  // x [N, d...] uint8/float32 and y of N rows; labels lie in [0, num_classes)
  // (scanned up front in splits of at most scan_rows rows, so a huge dataset
  // still starts promptly; larger splits are checked as rows are read).
  // Throws UserError with a message that says what to fix.
  static constexpr long long kLabelScanRows = 1LL << 24;
  explicit DatasetFile(const std::string& path, long long scan_rows = kLabelScanRows);
  const std::string& path() const { return path_; }
  int num_classes() const { return num_classes_; }  // 0: regression
  bool has_split(const std::string& name) const;
  const SplitInfo& split(const std::string& name) const;
  hid_t handle() const { return file_.get(); }

 private:
  SplitInfo load_split(const std::string& name);
  std::string path_;
  long long scan_rows_;
  h5::Handle file_;
  int num_classes_ = 0;
  std::vector<SplitInfo> splits_;
};

// Reads rows of one split into caller buffers: x (R, x_width) float, and
// labels (R) int or targets (R, y_width) float. Staging buffers are sized
// once for capacity_rows; no allocation per read.
//
// Fast path ("direct"): when x is stored without filters, contiguous or in
// chunks of whole rows, in a little-endian type equal to the native one,
// its rows sit at known file offsets (H5Dget_offset / H5Dget_chunk_info),
// and a run of rows within one chunk is one pread() of the file, about a
// tenth of a per-row H5Dread call (docs/performance.md). The
// labels/targets (y) are read whole once, when they are at most 64 MB.
// Other layouts (compressed, partial-row chunks) go through H5Dread.
class SplitReader {
 public:
  SplitReader(const DatasetFile& file, const std::string& split, int capacity_rows);
  ~SplitReader();
  SplitReader(const SplitReader&) = delete;
  SplitReader& operator=(const SplitReader&) = delete;
  bool direct() const { return direct_; }  // rows are read with pread, not H5Dread
  const SplitInfo& info() const { return info_; }
  // Arbitrary rows (any order, no duplicates required), written in the given order.
  void read_rows(std::span<const std::int64_t> rows, float* x, int* labels, float* targets);
  // Consecutive rows [begin, begin + count).
  void read_range(long long begin, int count, float* x, int* labels, float* targets);

 private:
  // Reads file rows [file_row, file_row + rows) into staging rows from stage_row.
  void read_run(long long file_row, int stage_row, int rows);
  // Converts staged rows into the caller's buffers, in request order.
  void scatter_staged(int count, float* x, int* labels, float* targets);
  // The direct path (see above); false: every read goes through H5Dread.
  void setup_direct(const std::string& path);
  void read_run_direct(long long file_row, int stage_row, int rows);
  bool direct_ = false;
  bool x_fletcher32_ = false, y_fletcher32_ = false;  // checked before each H5Dread (h5::fletcher32_chunks_intact)
  int fd_ = -1;
  long long row_bytes_ = 0, chunk_rows_ = 0;   // chunk_rows_ 0: contiguous
  std::vector<std::int64_t> chunk_offsets_;    // file offset of chunk k (rows [k*chunk_rows_, ...)), or of the data
  std::vector<int> all_labels_;                // y read whole (direct path)
  std::vector<float> all_targets_;

  std::string context_, x_context_, y_context_;  // built once: no string is made per read
  SplitInfo info_;
  int num_classes_ = 0;
  int capacity_;
  h5::Handle x_, y_, x_space_, y_space_, x_mem_, y_mem_;
  int x_rank_ = 0, y_rank_ = 0;
  hsize_t x_dims_[H5S_MAX_RANK] = {}, y_dims_[H5S_MAX_RANK] = {};
  std::vector<std::pair<std::int64_t, int>> order_;  // (row, position in request)
  AlignedBuffer<std::uint8_t> stage_u8_;
  AlignedBuffer<float> stage_f32_, stage_y_f32_;
  std::vector<int> stage_labels_;
};

}  // namespace mpitrain
