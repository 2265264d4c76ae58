// `mpitrain convert idx`: MNIST-style IDX files (MNIST, Fashion-MNIST, ...)
// to the HDF5 dataset layout. Images are stored as uint8 [N, rows*cols],
// flattened row-major, so an MLP reads one row per sample without reshaping;
// scale 1/255 and the train pixel mean/std go into the attributes of x.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/data/convert.hpp"
#include "mpitrain/data/dataset_writer.hpp"

namespace mpitrain {
namespace {

constexpr std::uint32_t kImagesMagic = 0x00000803;  // ubyte, 3 dims
constexpr std::uint32_t kLabelsMagic = 0x00000801;  // ubyte, 1 dim

// Owns a zlib file handle; gzread reads gzip and plain files alike, so one
// code path serves both `name` and `name.gz`.
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (!f_) throw UserError("cannot open '" + path + "' for reading: check the file permissions");
    gzbuffer(f_, 1u << 20);  // default 8 KiB buffer makes inflating 47 MB noticeably slower
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
  ~GzFile() { gzclose(f_); }

  // Reads up to n bytes; returns how many were read (short at end of data).
  // A corrupt or cut-off gzip stream is reported as a truncated file.
  size_t read(std::uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      const auto want = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
      const int got = gzread(f_, dst + done, want);
      if (got < 0) {
        int errnum = 0;
        const char* msg = gzerror(f_, &errnum);
        throw UserError("'" + path_ + "' is truncated or corrupt (" + (msg ? msg : "zlib error") +
                        "): download it again");
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

  std::uint32_t read_be32() {
    std::array<std::uint8_t, 4> b{};
    if (read(b.data(), b.size()) != b.size())
      throw UserError("'" + path_ + "' is truncated: it ends inside the IDX header");
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
           std::uint32_t{b[3]};
  }

  // Reads exactly n payload bytes and checks nothing follows them. The
  // buffer grows as data arrives, so a corrupt header claiming billions of
  // items fails as "truncated" instead of allocating memory it never fills.
  std::vector<std::uint8_t> read_payload(std::uint64_t n) {
    constexpr std::uint64_t kStep = 16u << 20;
    std::vector<std::uint8_t> out;
    while (out.size() < n) {
      const size_t old = out.size();
      out.resize(old + static_cast<size_t>(std::min<std::uint64_t>(kStep, n - old)));
      const size_t got = read(out.data() + old, out.size() - old);
      if (got < out.size() - old)
        throw UserError("'" + path_ + "' is truncated: the header promises " + std::to_string(n) +
                        " data bytes but the file has " + std::to_string(old + got) + ": download it again");
    }
    std::uint8_t extra = 0;
    if (read(&extra, 1) != 0)
      throw UserError("'" + path_ + "' is longer than its header says (" + std::to_string(n) +
                      " data bytes): it is not a valid IDX file");
    return out;
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile f_;
};

// Finds `<dir>/<name>` or `<dir>/<name>.gz`.
std::string find_idx_file(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const fs::path& p : {fs::path(dir) / name, fs::path(dir) / (name + ".gz")})
    if (fs::is_regular_file(p, ec)) return p.string();
  throw UserError("'" + dir + "' has no " + name + " or " + name +
                  ".gz: point --input at a directory with the four MNIST-style IDX files");
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

void check_magic(GzFile& f, std::uint32_t want, const char* kind) {
  const std::uint32_t magic = f.read_be32();
  if (magic != want)
    throw UserError("'" + f.path() + "' is not an IDX " + kind + " file (magic number " + hex32(magic) +
                    ", expected " + hex32(want) + ")");
}

struct Images {
  std::uint64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // (count, rows*cols)
};

Images read_images(const std::string& path) {
  GzFile f(path);
  check_magic(f, kImagesMagic, "image");
  Images im;
  im.count = f.read_be32();
  im.rows = f.read_be32();
  im.cols = f.read_be32();
  if (im.rows == 0 || im.cols == 0)
    throw UserError("'" + path + "' declares images of " + std::to_string(im.rows) + "x" +
                    std::to_string(im.cols) + " pixels: it is not a valid IDX image file");
  im.pixels = f.read_payload(im.count * im.rows * im.cols);  // each dim < 2^32: no overflow
  return im;
}

std::vector<std::int32_t> read_labels(const std::string& path) {
  GzFile f(path);
  check_magic(f, kLabelsMagic, "label");
  const std::uint32_t count = f.read_be32();
  const std::vector<std::uint8_t> raw = f.read_payload(count);
  return {raw.begin(), raw.end()};
}

// rows/cols receive the image size, which the flattened x no longer shows.
SplitArrays load_split(const std::string& dir, const char* prefix, std::uint64_t& rows, std::uint64_t& cols) {
  const std::string images_path = find_idx_file(dir, std::string(prefix) + "-images-idx3-ubyte");
  const std::string labels_path = find_idx_file(dir, std::string(prefix) + "-labels-idx1-ubyte");
  Images im = read_images(images_path);
  SplitArrays s;
  s.y_class = read_labels(labels_path);
  if (s.y_class.size() != im.count)
    throw UserError("'" + images_path + "' has " + std::to_string(im.count) + " images but '" + labels_path +
                    "' has " + std::to_string(s.y_class.size()) + " labels: the files do not belong together");
  rows = im.rows;
  cols = im.cols;
  s.x_dims = {im.count, im.rows, im.cols};  // the image shape stays in the file (a 1xHxW map per row)
  s.x_u8 = std::move(im.pixels);
  s.scale = 1.0 / 255.0;
  return s;
}

// Population mean and std of the scaled pixels. A 256-bin histogram makes
// the sums exact; the variance is then taken around the mean (two-pass), so
// it does not lose digits the way E[x^2] - E[x]^2 would.
void set_pixel_stats(const SplitArrays& train, double& mean, double& stddev) {
  std::array<std::uint64_t, 256> hist{};
  for (std::uint8_t v : train.x_u8) ++hist[v];
  const auto n = static_cast<double>(train.x_u8.size());
  double sum = 0.0;
  for (int v = 0; v < 256; ++v) sum += static_cast<double>(hist[v]) * (v / 255.0);
  mean = sum / n;
  double ss = 0.0;
  for (int v = 0; v < 256; ++v) {
    const double d = v / 255.0 - mean;
    ss += static_cast<double>(hist[v]) * d * d;
  }
  stddev = std::sqrt(ss / n);
}

}  // namespace

void convert_idx(const std::string& input_dir, const std::string& output) {
  std::error_code ec;
  if (!std::filesystem::is_directory(input_dir, ec))
    throw UserError("input '" + input_dir + "' is not a directory: pass the directory holding the IDX files");

  DatasetArrays data;
  std::uint64_t image_rows = 0, image_cols = 0, test_rows = 0, test_cols = 0;
  data.train = load_split(input_dir, "train", image_rows, image_cols);
  data.test = load_split(input_dir, "t10k", test_rows, test_cols);
  if (data.train.rows() == 0)
    throw UserError("the training IDX files in '" + input_dir + "' hold no images");
  if (test_rows != image_rows || test_cols != image_cols)
    throw UserError("train images are " + std::to_string(image_rows) + "x" + std::to_string(image_cols) +
                    " but t10k images are " + std::to_string(test_rows) + "x" + std::to_string(test_cols) +
                    ": the files come from different datasets");

  double mean = 0.0, stddev = 0.0;
  set_pixel_stats(data.train, mean, stddev);
  // A constant image set has std 0; storing it would make readers divide by zero.
  if (stddev > 0.0) {
    data.train.mean = data.test.mean = mean;
    data.train.std = data.test.std = stddev;
  }

  std::int32_t max_label = 0;
  for (const auto* s : {&data.train, &data.test})
    for (std::int32_t y : s->y_class) max_label = std::max(max_label, y);
  data.num_classes = max_label + 1;
  data.source = input_dir;
  data.description = "MNIST-style IDX images of " + std::to_string(image_rows) + "x" + std::to_string(image_cols) +
                     " pixels, converted by mpitrain convert idx; x is uint8 [N, " +
                     std::to_string(image_rows) + ", " + std::to_string(image_cols) +
                     "] (images row-major), scale 1/255, mean/std of the scaled train pixels; "
                     "y is int32 class ids";
  write_dataset_file(data, output);
}

}  // namespace mpitrain
