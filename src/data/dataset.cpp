#include "mpitrain/data/dataset.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

#include <fcntl.h>
#include <unistd.h>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/number_text.hpp"

namespace mpitrain {
namespace {

// A dataset must hold what it declares: every chunk written (a file that
// declares 2^40 rows in unwritten chunks kept the trainer scanning "labels"
// of fill values for minutes), or contiguous storage of the declared size.
// Checked before anything reads the rows.
void check_fully_written(hid_t dset, const std::string& name, const std::string& where) {
  h5::Handle dcpl(h5::check_id(H5Dget_create_plist(dset), "H5Dget_create_plist", name), H5Pclose);
  h5::Handle space(h5::check_id(H5Dget_space(dset), "H5Dget_space", name), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank <= 0 || rank > H5S_MAX_RANK) return;
  hsize_t dims[H5S_MAX_RANK] = {};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout == H5D_CHUNKED) {
    hsize_t chunk[H5S_MAX_RANK] = {};
    if (H5Pget_chunk(dcpl.get(), rank, chunk) != rank) return;
    double expected = 1;  // a double: a crafted shape must not overflow on its way to the message
    for (int d = 0; d < rank; ++d) expected *= std::ceil(static_cast<double>(dims[d]) / static_cast<double>(std::max<hsize_t>(chunk[d], 1)));
    hsize_t stored = 0;
    if (H5Dget_num_chunks(dset, space.get(), &stored) < 0) return;
    if (static_cast<double>(stored) < expected)
      throw UserError(where + name + " declares " + std::to_string(dims[0]) + " rows, but the file holds data for only " +
                      std::to_string(stored) + " of its " + format_number("%.0f", expected) +
                      " chunks: the file is truncated or was never fully written; convert it again");
  } else if (layout == H5D_CONTIGUOUS) {
    h5::Handle type(h5::check_id(H5Dget_type(dset), "H5Dget_type", name), H5Tclose);
    double expected = static_cast<double>(H5Tget_size(type.get()));
    for (int d = 0; d < rank; ++d) expected *= static_cast<double>(dims[d]);
    if (static_cast<double>(H5Dget_storage_size(dset)) < expected)
      throw UserError(where + name + " declares " + std::to_string(dims[0]) + " rows, but the file holds only " +
                      std::to_string(H5Dget_storage_size(dset)) + " of their " + format_number("%.0f", expected) +
                      " bytes: the file is truncated or was never fully written; convert it again");
  }
}

constexpr hsize_t kLabelBlock = 1 << 16;
// No chunk cache for x: a shard is scattered rows, so a cached 64-row chunk is
// rarely hit again before it is evicted; without a cache HDF5 reads just the
// selected rows of each chunk (faster: docs/performance.md).
constexpr size_t kChunkCacheBytes = 0;

}  // namespace

DatasetFile::DatasetFile(const std::string& path, long long scan_rows) : path_(path), scan_rows_(scan_rows) {
  h5::silence_errors();
  file_ = h5::open_file_readonly(path);
  if (!h5::path_exists(file_.get(), "/train/x") || !h5::path_exists(file_.get(), "/train/y"))
    throw UserError("'" + path + "' has no /train/x and /train/y: a dataset file needs both "
                    "(see datasets/README.md; 'mpitrain convert' writes them)");
  num_classes_ = static_cast<int>(h5::read_attr_int(file_.get(), "num_classes").value_or(0));
  if (num_classes_ < 0)
    throw UserError("'" + path + "': root attribute num_classes is negative");
  for (const char* name : {"train", "test", "val"})
    if (std::string n = name; n == "train" || h5::path_exists(file_.get(), "/" + n))
      splits_.push_back(load_split(n));
  if (splits_.front().rows == 0) throw UserError("'" + path + "': /train has no rows");
  for (const auto& s : splits_) {
    if (s.x_width != splits_.front().x_width || s.y_width != splits_.front().y_width)
      throw UserError("'" + path + "': /" + s.name + " has " + std::to_string(s.x_width) + " features and target width " +
                      std::to_string(s.y_width) + ", /train has " + std::to_string(splits_.front().x_width) + " and " +
                      std::to_string(splits_.front().y_width) + ": every split needs the same widths");
  }
}

bool DatasetFile::has_split(const std::string& name) const {
  return std::any_of(splits_.begin(), splits_.end(), [&](const SplitInfo& s) { return s.name == name; });
}

const SplitInfo& DatasetFile::split(const std::string& name) const {
  for (const auto& s : splits_)
    if (s.name == name) return s;
  throw UserError("'" + path_ + "' has no /" + name + " split");
}

SplitInfo DatasetFile::load_split(const std::string& name) {
  SplitInfo info;
  info.name = name;
  const std::string xname = "/" + name + "/x", yname = "/" + name + "/y";
  const std::string where = "'" + path_ + "': ";
  h5::Handle x = h5::open_dataset(file_.get(), xname, path_);
  h5::Handle y = h5::open_dataset(file_.get(), yname, path_);
  const auto xd = h5::dataset_dims(x.get(), path_ + ":" + xname);
  const auto yd = h5::dataset_dims(y.get(), path_ + ":" + yname);
  if (xd.size() < 2) throw UserError(where + xname + " must have shape [N, d...] (at least 2 dimensions)");
  info.rows = static_cast<long long>(xd[0]);
  // A double: crafted dims must not overflow on their way to the check (a
  // product within INT_MAX is exact, and so is every partial product).
  double width = 1;
  for (size_t i = 1; i < xd.size(); ++i) width *= static_cast<double>(xd[i]);
  if (width <= 0 || width > INT_MAX)
    throw UserError(where + xname + " has rows of " + format_number("%.0f", width) +
                    " values (the product of its dimensions after the first): a row must hold 1 to " +
                    std::to_string(INT_MAX) + " values; convert the data again");
  info.x_width = static_cast<int>(width);
  if (xd.size() == 3) info.shape = Shape{1, static_cast<int>(xd[1]), static_cast<int>(xd[2])};
  else if (xd.size() == 4) info.shape = Shape{static_cast<int>(xd[3]), static_cast<int>(xd[1]), static_cast<int>(xd[2])};
  else info.shape = Shape{info.x_width, 1, 1};
  info.x_type = h5::dataset_elem_type(x.get(), path_ + ":" + xname);
  if (info.x_type != h5::ElemType::kUint8 && info.x_type != h5::ElemType::kFloat32)
    throw UserError(where + xname + " is " + h5::describe_type(x.get()) + ": store it as uint8 or float32");
  info.scale = h5::read_attr_double(x.get(), "scale").value_or(1.0);
  info.mean = h5::read_attr_double(x.get(), "mean").value_or(0.0);
  info.std = h5::read_attr_double(x.get(), "std").value_or(1.0);
  if (!(info.scale > 0.0) || !std::isfinite(info.scale))  // 0 would turn every input into the same value
    throw UserError(where + xname + " attribute scale is " + std::to_string(info.scale) + ": it must be finite and > 0");
  if (!std::isfinite(info.mean))
    throw UserError(where + xname + " attribute mean is " + std::to_string(info.mean) + ": it must be finite");
  if (!(info.std > 0.0) || !std::isfinite(info.std))
    throw UserError(where + xname + " attribute std is " + std::to_string(info.std) + ": it must be finite and > 0");

  check_fully_written(x.get(), xname, where);
  check_fully_written(y.get(), yname, where);
  if (yd.empty() || static_cast<long long>(yd[0]) != info.rows)
    throw UserError(where + xname + " has " + std::to_string(info.rows) + " rows but " + yname + " has " +
                    std::to_string(yd.empty() ? 0 : yd[0]) + ": every sample needs exactly one label");
  const auto ytype = h5::dataset_elem_type(y.get(), path_ + ":" + yname);
  if (yd.size() == 1) {
    if (ytype != h5::ElemType::kInt32) throw UserError(where + yname + " of shape [N] must hold int32 class ids");
    if (num_classes_ <= 0)
      throw UserError(where + "class labels need a root attribute num_classes > 0");
    // Validate every label once, in blocks (labels are small; x is never loaded
    // whole); a split too large for that is checked as its rows are read.
    info.labels_checked = info.rows <= scan_rows_;
    if (!info.labels_checked) return info;
    if (h5::has_fletcher32(y.get()) && !h5::fletcher32_chunks_intact(y.get(), 0, yd[0]))
      throw UserError(where + yname + " has a chunk too short to hold its Fletcher-32 checksum: the file is damaged; "
                      "re-create it with 'mpitrain convert' or restore a copy");
    std::vector<int> block(kLabelBlock);
    h5::Handle fspace(h5::check_id(H5Dget_space(y.get()), "H5Dget_space", path_), H5Sclose);
    for (hsize_t start = 0; start < yd[0]; start += kLabelBlock) {
      hsize_t count = std::min<hsize_t>(kLabelBlock, yd[0] - start);
      h5::check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr),
                "H5Sselect_hyperslab", path_);
      h5::Handle mspace(h5::check_id(H5Screate_simple(1, &count, nullptr), "H5Screate_simple", path_), H5Sclose);
      h5::check(H5Dread(y.get(), H5T_NATIVE_INT, mspace.get(), fspace.get(), H5P_DEFAULT, block.data()),
                "H5Dread", path_ + ":" + yname);
      for (hsize_t i = 0; i < count; ++i)
        if (block[i] < 0 || block[i] >= num_classes_)
          throw UserError(where + yname + " row " + std::to_string(start + i) + " has label " +
                          std::to_string(block[i]) + ", outside [0, num_classes=" + std::to_string(num_classes_) +
                          "): fix the labels or the num_classes attribute");
    }
  } else if (yd.size() == 2) {
    if (ytype != h5::ElemType::kFloat32) throw UserError(where + yname + " of shape [N, k] must be float32 targets");
    info.y_width = static_cast<int>(yd[1]);
    if (info.y_width <= 0) throw UserError(where + yname + " has zero target width");
  } else {
    throw UserError(where + yname + " must have shape [N] (class ids) or [N, k] (targets)");
  }
  return info;
}

SplitReader::SplitReader(const DatasetFile& file, const std::string& split, int capacity_rows)
    : context_(file.path() + ":/" + split),
      x_context_(context_ + "/x"),
      y_context_(context_ + "/y"),
      info_(file.split(split)),
      num_classes_(file.num_classes()),
      capacity_(std::max(capacity_rows, 1)) {
  h5::Handle dapl(h5::check_id(H5Pcreate(H5P_DATASET_ACCESS), "H5Pcreate", context_), H5Pclose);
  h5::check(H5Pset_chunk_cache(dapl.get(), 521, kChunkCacheBytes, 0.75), "H5Pset_chunk_cache", context_);
  x_ = h5::Handle(h5::check_id(H5Dopen2(file.handle(), ("/" + split + "/x").c_str(), dapl.get()), "H5Dopen2", context_),
                  H5Dclose);
  y_ = h5::open_dataset(file.handle(), "/" + split + "/y", file.path());
  x_space_ = h5::Handle(h5::check_id(H5Dget_space(x_.get()), "H5Dget_space", context_), H5Sclose);
  y_space_ = h5::Handle(h5::check_id(H5Dget_space(y_.get()), "H5Dget_space", context_), H5Sclose);
  x_rank_ = H5Sget_simple_extent_ndims(x_space_.get());
  y_rank_ = H5Sget_simple_extent_ndims(y_space_.get());
  H5Sget_simple_extent_dims(x_space_.get(), x_dims_, nullptr);
  H5Sget_simple_extent_dims(y_space_.get(), y_dims_, nullptr);
  // Staging buffers in memory are (capacity, width): x of any rank [N, a, b..]
  // is read as rows of a*b*.. values.
  const hsize_t xm[2] = {static_cast<hsize_t>(capacity_), static_cast<hsize_t>(info_.x_width)};
  const hsize_t ym[2] = {static_cast<hsize_t>(capacity_), static_cast<hsize_t>(std::max(info_.y_width, 1))};
  x_mem_ = h5::Handle(h5::check_id(H5Screate_simple(2, xm, nullptr), "H5Screate_simple", context_), H5Sclose);
  y_mem_ = h5::Handle(h5::check_id(H5Screate_simple(info_.y_width == 0 ? 1 : 2, ym, nullptr), "H5Screate_simple",
                                   context_), H5Sclose);
  const size_t cap = static_cast<size_t>(capacity_);
  order_.reserve(cap);
  if (info_.x_type == h5::ElemType::kUint8) stage_u8_.resize(cap * info_.x_width);
  else stage_f32_.resize(cap * info_.x_width);
  if (info_.y_width > 0) stage_y_f32_.resize(cap * info_.y_width);
  else stage_labels_.resize(cap);
  x_fletcher32_ = h5::has_fletcher32(x_.get());
  y_fletcher32_ = h5::has_fletcher32(y_.get());
  setup_direct(file.path());
}

SplitReader::~SplitReader() {
  if (fd_ >= 0) close(fd_);
}

void SplitReader::setup_direct(const std::string& path) {
  constexpr long long kMaxWholeYBytes = 64LL << 20;
  const bool u8 = info_.x_type == h5::ElemType::kUint8;
  h5::Handle type(H5Dget_type(x_.get()), H5Tclose);
  h5::Handle dcpl(H5Dget_create_plist(x_.get()), H5Pclose);
  if (type.get() < 0 || dcpl.get() < 0) return;
  // The stored bytes must be the native values: uint8, or little-endian
  // float32 on a little-endian host.
  const bool native = u8 ? H5Tequal(type.get(), H5T_STD_U8LE) > 0 || H5Tequal(type.get(), H5T_STD_U8BE) > 0
                         : H5Tequal(type.get(), H5T_NATIVE_FLOAT) > 0 && H5Tequal(type.get(), H5T_IEEE_F32LE) > 0;
  if (!native || H5Pget_nfilters(dcpl.get()) != 0) return;
  const long long y_bytes = info_.rows * std::max(info_.y_width, 1) * 4;
  if (y_bytes > kMaxWholeYBytes) return;
  row_bytes_ = static_cast<long long>(info_.x_width) * (u8 ? 1 : 4);
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout == H5D_CONTIGUOUS) {
    const haddr_t addr = H5Dget_offset(x_.get());
    if (addr == HADDR_UNDEF) return;
    chunk_rows_ = 0;
    chunk_offsets_.assign(1, static_cast<std::int64_t>(addr));
  } else if (layout == H5D_CHUNKED) {
    hsize_t chunk[H5S_MAX_RANK] = {};
    if (H5Pget_chunk(dcpl.get(), x_rank_, chunk) != x_rank_) return;
    for (int d = 1; d < x_rank_; ++d)
      if (chunk[d] != x_dims_[d]) return;  // chunks must hold whole rows
    chunk_rows_ = static_cast<long long>(chunk[0]);
    const long long n_chunks = (info_.rows + chunk_rows_ - 1) / chunk_rows_;
    chunk_offsets_.assign(static_cast<size_t>(n_chunks), -1);
    hsize_t stored = 0;
    if (H5Dget_num_chunks(x_.get(), x_space_.get(), &stored) < 0) return;
    for (hsize_t i = 0; i < stored; ++i) {
      hsize_t offset[H5S_MAX_RANK] = {};
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t size = 0;
      if (H5Dget_chunk_info(x_.get(), x_space_.get(), i, offset, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF ||
          mask != 0)
        return;
      const long long k = static_cast<long long>(offset[0]) / chunk_rows_;
      if (k < 0 || k >= n_chunks) return;
      chunk_offsets_[static_cast<size_t>(k)] = static_cast<std::int64_t>(addr);
    }
    for (auto o : chunk_offsets_)
      if (o < 0) return;  // a chunk never written: let HDF5 supply the fill value
  } else {
    return;
  }
  // y whole, through HDF5, once (if it is small enough to hold and intact).
  if (static_cast<double>(info_.rows) * std::max(info_.y_width, 1) > static_cast<double>(DatasetFile::kLabelScanRows))
    return;
  if (y_fletcher32_ && !h5::fletcher32_chunks_intact(y_.get(), 0, static_cast<hsize_t>(info_.rows))) return;
  if (info_.y_width == 0) {
    all_labels_.resize(static_cast<size_t>(info_.rows));
    if (info_.rows > 0 &&
        H5Dread(y_.get(), H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all_labels_.data()) < 0)
      return;
  } else {
    all_targets_.resize(static_cast<size_t>(info_.rows * info_.y_width));
    if (info_.rows > 0 &&
        H5Dread(y_.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all_targets_.data()) < 0)
      return;
  }
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  direct_ = fd_ >= 0;
}

void SplitReader::read_run_direct(long long file_row, int stage_row, int rows) {
  const bool u8 = info_.x_type == h5::ElemType::kUint8;
  auto* stage = u8 ? static_cast<char*>(static_cast<void*>(stage_u8_.data()))
                   : static_cast<char*>(static_cast<void*>(stage_f32_.data()));
  long long row = file_row;
  const long long end = file_row + rows;
  while (row < end) {
    // The rows of this run that lie in one chunk (or all of them, contiguous) are adjacent in the file.
    long long n = end - row;
    std::int64_t offset = 0;
    if (chunk_rows_ > 0) {
      const long long k = row / chunk_rows_;
      n = std::min(n, (k + 1) * chunk_rows_ - row);
      offset = chunk_offsets_[static_cast<size_t>(k)] + (row - k * chunk_rows_) * row_bytes_;
    } else {
      offset = chunk_offsets_[0] + row * row_bytes_;
    }
    char* dst = stage + (stage_row + (row - file_row)) * row_bytes_;
    size_t want = static_cast<size_t>(n * row_bytes_);
    while (want > 0) {
      const ssize_t got = pread(fd_, dst, want, offset);
      if (got <= 0) throw SystemError(context_ + "/x: pread failed at offset " + std::to_string(offset));
      dst += got;
      offset += got;
      want -= static_cast<size_t>(got);
    }
    row += n;
  }
  const int at = stage_row;
  if (info_.y_width == 0) {
    std::copy_n(all_labels_.data() + file_row, rows, stage_labels_.data() + at);
  } else {
    const auto yw = static_cast<size_t>(info_.y_width);
    std::copy_n(all_targets_.data() + static_cast<size_t>(file_row) * yw, static_cast<size_t>(rows) * yw,
                stage_y_f32_.data() + static_cast<size_t>(at) * yw);
  }
}

void SplitReader::read_run(long long file_row, int stage_row, int rows) {
  if (direct_) return read_run_direct(file_row, stage_row, rows);
  // One regular hyperslab per run of consecutive rows: HDF5 maps a regular
  // selection to chunks cheaply, while an irregular union of rows makes it
  // visit every element (docs/performance.md).
  hsize_t start[H5S_MAX_RANK] = {static_cast<hsize_t>(file_row)}, count[H5S_MAX_RANK];
  count[0] = static_cast<hsize_t>(rows);
  for (int d = 1; d < x_rank_; ++d) count[d] = x_dims_[d];
  h5::check(H5Sselect_hyperslab(x_space_.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
            "H5Sselect_hyperslab", context_);
  hsize_t mstart[2] = {static_cast<hsize_t>(stage_row), 0};
  hsize_t mcount[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(info_.x_width)};
  h5::check(H5Sselect_hyperslab(x_mem_.get(), H5S_SELECT_SET, mstart, nullptr, mcount, nullptr),
            "H5Sselect_hyperslab", context_);
  const bool u8 = info_.x_type == h5::ElemType::kUint8;
  // A chunk that fails its checksum or filter (or a truncated file) is damaged
  // data, not a bug: say which rows and what to do.
  const auto damaged = [&](const std::string& what) {
    const std::string which = rows == 1 ? "row " + std::to_string(file_row)
                                        : "rows " + std::to_string(file_row) + "-" + std::to_string(file_row + rows - 1);
    return SystemError("reading " + which + " of " + what + " failed: the data is damaged (a chunk fails its checksum or filter, or the file is "
                       "truncated); re-create the file with 'mpitrain convert' or restore a copy");
  };
  if (x_fletcher32_ && !h5::fletcher32_chunks_intact(x_.get(), start[0], count[0])) throw damaged(x_context_);
  if (H5Dread(x_.get(), u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, x_mem_.get(), x_space_.get(), H5P_DEFAULT,
              u8 ? static_cast<void*>(stage_u8_.data()) : static_cast<void*>(stage_f32_.data())) < 0)
    throw damaged(x_context_);

  for (int d = 1; d < y_rank_; ++d) count[d] = y_dims_[d];
  h5::check(H5Sselect_hyperslab(y_space_.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
            "H5Sselect_hyperslab", context_);
  mcount[1] = static_cast<hsize_t>(info_.y_width);
  h5::check(H5Sselect_hyperslab(y_mem_.get(), H5S_SELECT_SET, mstart, nullptr, mcount, nullptr),
            "H5Sselect_hyperslab", context_);
  if (y_fletcher32_ && !h5::fletcher32_chunks_intact(y_.get(), start[0], count[0])) throw damaged(y_context_);
  const herr_t y_read =
      info_.y_width == 0
          ? H5Dread(y_.get(), H5T_NATIVE_INT, y_mem_.get(), y_space_.get(), H5P_DEFAULT, stage_labels_.data())
          : H5Dread(y_.get(), H5T_NATIVE_FLOAT, y_mem_.get(), y_space_.get(), H5P_DEFAULT, stage_y_f32_.data());
  if (y_read < 0) throw damaged(y_context_);
}

void SplitReader::read_rows(std::span<const std::int64_t> rows, float* x, int* labels, float* targets) {
  const int count = static_cast<int>(rows.size());
  if (count > capacity_) throw SystemError("SplitReader: " + std::to_string(count) + " rows exceed capacity");
  if (count == 0) return;
  order_.clear();
  for (int p = 0; p < count; ++p) {
    const auto row = rows[static_cast<size_t>(p)];
    if (row < 0 || row >= info_.rows) throw SystemError(context_ + ": row " + std::to_string(row) + " out of range");
    order_.emplace_back(row, p);
  }
  // Sorted rows read front to back, consecutive rows merged into one read.
  std::sort(order_.begin(), order_.end());
  int i = 0;
  while (i < count) {
    int j = i + 1;
    while (j < count && order_[static_cast<size_t>(j)].first == order_[static_cast<size_t>(j - 1)].first + 1) ++j;
    read_run(order_[static_cast<size_t>(i)].first, i, j - i);
    i = j;
  }
  scatter_staged(count, x, labels, targets);
}

void SplitReader::read_range(long long begin, int count, float* x, int* labels, float* targets) {
  if (count > capacity_) throw SystemError("SplitReader: " + std::to_string(count) + " rows exceed capacity");
  if (count == 0) return;
  order_.clear();
  for (int p = 0; p < count; ++p) order_.emplace_back(begin + p, p);
  read_run(begin, 0, count);
  scatter_staged(count, x, labels, targets);
}

void SplitReader::scatter_staged(int count, float* x, int* labels, float* targets) {
  const bool u8 = info_.x_type == h5::ElemType::kUint8;
  // Stored value v becomes SplitInfo::normalized(v) = (v * scale - mean) / std = v * a + c.
  const auto a = static_cast<float>(info_.scale / info_.std);
  const auto c = static_cast<float>(info_.normalized(0.0));
  const size_t w = static_cast<size_t>(info_.x_width);
  for (int i = 0; i < count; ++i) {
    float* dst = x + static_cast<size_t>(order_[static_cast<size_t>(i)].second) * w;
    if (u8) {
      const std::uint8_t* src = stage_u8_.data() + static_cast<size_t>(i) * w;
      for (size_t k = 0; k < w; ++k) dst[k] = static_cast<float>(src[k]) * a + c;
    } else {
      const float* src = stage_f32_.data() + static_cast<size_t>(i) * w;
      for (size_t k = 0; k < w; ++k) dst[k] = src[k] * a + c;
    }
  }
  if (info_.y_width == 0) {
    for (int i = 0; i < count; ++i) labels[order_[static_cast<size_t>(i)].second] = stage_labels_[static_cast<size_t>(i)];
    if (!info_.labels_checked)  // a split too large to scan when the file was opened
      for (int i = 0; i < count; ++i)
        if (const int l = stage_labels_[static_cast<size_t>(i)]; l < 0 || l >= num_classes_)
          throw UserError(y_context_ + " row " + std::to_string(order_[static_cast<size_t>(i)].first) + " has label " +
                          std::to_string(l) + ", outside [0, num_classes=" + std::to_string(num_classes_) +
                          "): fix the labels or the num_classes attribute");
  } else {
    const size_t yw = static_cast<size_t>(info_.y_width);
    for (int i = 0; i < count; ++i)
      std::copy_n(stage_y_f32_.data() + static_cast<size_t>(i) * yw, yw,
                  targets + static_cast<size_t>(order_[static_cast<size_t>(i)].second) * yw);
  }
}

}  // namespace mpitrain
