// Test-only tool for the end-to-end tests: writes a small dataset file, either
// a valid one (through the same writer `mpitrain convert` uses) or one broken
// in exactly one way (valid file first, then one edit with the raw HDF5 C API,
// since the writer refuses to produce broken files).
//
//   make_test_dataset KIND OUT.h5 [rows] [features]
//
// rows is the train row count (default 512; the test split has rows/4),
// features the row width (default 16). Output is a pure function of the
// arguments: every random number comes from mpitrain::Rng with a fixed seed.
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpitrain/core/rng.hpp"
#include "mpitrain/data/dataset_writer.hpp"
#include "mpitrain/io/h5.hpp"

namespace {

using mpitrain::DatasetArrays;
using mpitrain::SplitArrays;
namespace h5 = mpitrain::h5;

constexpr int kClasses = 4;
constexpr std::uint64_t kSeed = 20240611;

const char* const kUsage =
    "usage: make_test_dataset KIND OUT.h5 [rows] [features]\n"
    "valid kinds:\n"
    "  good            4 Gaussian blobs, uint8 x with scale 1/255 and mean/std, int32 y, /test split\n"
    "  good-f32        the same blobs stored as float32 (scale 1)\n"
    "  regression      float32 x, float32 y [N,1] = linear function of x + small noise, num_classes 0\n"
    "  random-labels   the good blobs with /train labels drawn at random (a gradient of almost pure noise)\n"
    "broken kinds (a good file with one defect):\n"
    "  no-train-x      /train/x removed\n"
    "  row-mismatch    /train/y has one row fewer than /train/x\n"
    "  bad-label       last /train/y label is num_classes (outside [0, num_classes))\n"
    "  negative-label  first /train/y label is -1\n"
    "  no-num-classes  root attribute num_classes removed (class ids without a class count)\n"
    "  x-float64       /train/x stored as float64 (only uint8 and float32 are accepted)\n"
    "  test-width      /test/x has one feature more than /train/x\n"
    "  unwritten-rows  /train/x and /train/y declare 2^40 rows, only their first chunk written\n"
    "  empty-train     /train has 0 rows\n"
    "  zero-std        /train/x attribute std = 0 (would divide by zero)\n";

// Blob centres live in the middle of the uint8 range so that noise rarely
// clips; the same centres serve train and test so the test split is learnable.
std::vector<double> blob_centres(int features, mpitrain::Rng& rng) {
  std::vector<double> c(static_cast<size_t>(kClasses) * features);
  for (double& v : c) v = 64.0 + 128.0 * rng.uniform01();
  return c;
}

// Noise std 24 against centres drawn from U(64, 192) per feature: with 16
// features two centres are ~200 apart (about 8 noise sigmas), so the classes
// are nearly separable and an MLP learns them in a couple of epochs.
SplitArrays blob_split(std::uint64_t rows, int features, const std::vector<double>& centres, bool as_u8,
                       mpitrain::Rng& rng) {
  SplitArrays s;
  s.x_dims = {rows, static_cast<std::uint64_t>(features)};
  for (std::uint64_t r = 0; r < rows; ++r) {
    const int label = static_cast<int>(rng.uniform_below(kClasses));
    s.y_class.push_back(label);
    for (int f = 0; f < features; ++f) {
      const double v = std::clamp(centres[static_cast<size_t>(label) * features + f] + 24.0 * rng.normal(), 0.0, 255.0);
      if (as_u8) s.x_u8.push_back(static_cast<std::uint8_t>(std::lround(v)));
      else s.x_f32.push_back(static_cast<float>(v / 255.0));
    }
  }
  if (as_u8) {
    s.scale = 1.0 / 255.0;
    s.mean = 0.5;  // roughly the mean and std of the scaled values: inputs of order 1
    s.std = 0.25;
  }
  return s;
}

DatasetArrays blobs(std::uint64_t rows, int features, bool as_u8) {
  mpitrain::Rng rng(kSeed);
  const auto centres = blob_centres(features, rng);
  DatasetArrays d;
  d.num_classes = kClasses;
  d.train = blob_split(rows, features, centres, as_u8, rng);
  d.test = blob_split(rows / 4, features, centres, as_u8, rng);
  d.source = "make_test_dataset";
  d.description = "Gaussian blobs for the end-to-end tests";
  return d;
}

SplitArrays regression_split(std::uint64_t rows, int features, const std::vector<double>& w, mpitrain::Rng& rng) {
  SplitArrays s;
  s.x_dims = {rows, static_cast<std::uint64_t>(features)};
  s.target_width = 1;
  for (std::uint64_t r = 0; r < rows; ++r) {
    double y = 0.5;
    for (int f = 0; f < features; ++f) {
      const double x = rng.normal();
      s.x_f32.push_back(static_cast<float>(x));
      y += w[static_cast<size_t>(f)] * x;
    }
    s.y_target.push_back(static_cast<float>(y + 0.05 * rng.normal()));
  }
  return s;
}

// y = 0.5 + w.x + noise(0.05), x ~ N(0, I), w_f ~ N(0, 1/d): Var(y) is about 1,
// so predicting the mean has MSE ~1 and the best linear fit MSE 0.0025.
DatasetArrays regression(std::uint64_t rows, int features) {
  mpitrain::Rng rng(kSeed + 1);
  std::vector<double> w(static_cast<size_t>(features));
  for (double& v : w) v = rng.normal() / std::sqrt(static_cast<double>(features));
  DatasetArrays d;
  d.num_classes = 0;
  d.train = regression_split(rows, features, w, rng);
  d.test = regression_split(rows / 4, features, w, rng);
  d.source = "make_test_dataset";
  d.description = "linear regression data for the end-to-end tests";
  return d;
}

void check(herr_t rc, const char* call) {
  if (rc < 0) throw std::runtime_error(std::string(call) + " failed");
}

h5::Handle open_rw(const std::string& path) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error("H5Fopen(" + path + ") failed");
  return h5::Handle(f, H5Fclose);
}

void remove_link(hid_t file, const char* name) { check(H5Ldelete(file, name, H5P_DEFAULT), "H5Ldelete"); }

// Overwrites one element of the int32 dataset /train/y.
void set_label(hid_t file, hsize_t row, int value) {
  h5::Handle y(H5Dopen2(file, "/train/y", H5P_DEFAULT), H5Dclose);
  h5::Handle fspace(H5Dget_space(y.get()), H5Sclose);
  const hsize_t count = 1;
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &row, nullptr, &count, nullptr), "H5Sselect_hyperslab");
  h5::Handle mspace(H5Screate_simple(1, &count, nullptr), H5Sclose);
  check(H5Dwrite(y.get(), H5T_NATIVE_INT, mspace.get(), fspace.get(), H5P_DEFAULT, &value), "H5Dwrite");
}

int usage() {
  std::fputs(kUsage, stderr);
  return 2;
}

// /train/x again, chunked by 64 rows with a Fletcher-32 checksum per chunk.
void rewrite_x_with_checksums(hid_t f, hsize_t rows, hsize_t features) {
  remove_link(f, "/train/x");
  const hsize_t dims[2] = {rows, features}, chunk[2] = {64, features};
  h5::Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
  h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  check(H5Pset_chunk(dcpl.get(), 2, chunk), "H5Pset_chunk");
  check(H5Pset_fletcher32(dcpl.get()), "H5Pset_fletcher32");
  h5::Handle d(H5Dcreate2(f, "/train/x", H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
               H5Dclose);
  if (!d.valid()) throw std::runtime_error("H5Dcreate2 failed");
  const std::vector<std::uint8_t> x(rows * features, 128);
  check(H5Dwrite(d.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.data()), "H5Dwrite");
  h5::write_attr_double(d.get(), "scale", 1.0 / 255.0);
}

// Flips one byte inside the stored second chunk of /train/x (rows 64-127).
void damage_second_chunk(const std::string& path) {
  haddr_t offset = 0;
  hsize_t size = 0;
  {
    h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    h5::Handle d(H5Dopen2(file.get(), "/train/x", H5P_DEFAULT), H5Dclose);
    hsize_t coords[2];
    unsigned mask = 0;
    h5::Handle space(H5Dget_space(d.get()), H5Sclose);
    check(H5Dget_chunk_info(d.get(), space.get(), 1, coords, &mask, &offset, &size), "H5Dget_chunk_info");
  }
  std::FILE* fp = std::fopen(path.c_str(), "r+b");
  if (!fp || std::fseek(fp, static_cast<long>(offset + size / 2), SEEK_SET) != 0)
    throw std::runtime_error("cannot seek in " + path);
  const int c = std::fgetc(fp);
  std::fseek(fp, static_cast<long>(offset + size / 2), SEEK_SET);
  std::fputc(c ^ 0xFF, fp);
  std::fclose(fp);
}

// Replaces a one-value numeric attribute by an array of 4096 of them.
// /train/x and /train/y declared with 2^40 rows in chunks of 4096 rows, only
// the first chunk written: a few KB on disk (issue 17: the label scan of such
// a file kept the trainer busy for minutes).
void declare_unwritten_rows(hid_t f, hsize_t features) {
  remove_link(f, "/train/x");
  remove_link(f, "/train/y");
  const hsize_t rows = hsize_t{1} << 40;
  const auto make = [&](const char* name, hid_t type, int rank, const hsize_t* dims, const hsize_t* chunk) {
    h5::Handle space(H5Screate_simple(rank, dims, nullptr), H5Sclose);
    h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    check(H5Pset_chunk(dcpl.get(), rank, chunk), "H5Pset_chunk");
    h5::Handle d(H5Dcreate2(f, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
    if (d.get() < 0) throw std::runtime_error(std::string("H5Dcreate2 failed for ") + name);
    // The first chunk only.
    hsize_t start[2] = {0, 0}, count[2] = {chunk[0], rank > 1 ? dims[1] : 1};
    h5::Handle fspace(H5Dget_space(d.get()), H5Sclose);
    check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), "H5Sselect_hyperslab");
    h5::Handle mspace(H5Screate_simple(rank, count, nullptr), H5Sclose);
    std::vector<std::uint8_t> zeros(static_cast<size_t>(count[0] * count[1]) * 4, 0);
    check(H5Dwrite(d.get(), type, mspace.get(), fspace.get(), H5P_DEFAULT, zeros.data()), "H5Dwrite");
  };
  const hsize_t xd[2] = {rows, features}, xc[2] = {4096, features}, yd[1] = {rows}, yc[1] = {4096};
  make("/train/x", H5T_NATIVE_UINT8, 2, xd, xc);
  make("/train/y", H5T_NATIVE_INT32, 1, yd, yc);
}

void replace_attr_with_array(hid_t obj, const char* name) {
  check(H5Adelete(obj, name), "H5Adelete");
  const hsize_t n = 4096;
  h5::Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  h5::Handle a(H5Acreate2(obj, name, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid()) throw std::runtime_error("H5Acreate2 failed");
  const std::vector<double> v(n, 3.0);
  check(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, v.data()), "H5Awrite");
}

int run(int argc, char** argv) {
  if (argc < 3 || argc > 5) return usage();
  const std::string kind = argv[1], out = argv[2];
  const long long rows_arg = argc > 3 ? std::atoll(argv[3]) : 512;
  const int features = argc > 4 ? std::atoi(argv[4]) : 16;
  if (rows_arg < 0 || features < 1) return usage();
  const auto rows = static_cast<std::uint64_t>(rows_arg);
  h5::silence_errors();

  if (kind == "regression") {
    mpitrain::write_dataset_file(regression(rows, features), out);
    return 0;
  }
  if (kind == "random-labels") {  // labels independent of x: the gradient is almost all noise
    DatasetArrays d = blobs(rows, features, true);
    mpitrain::Rng rng(kSeed + 1);
    for (auto& y : d.train.y_class) y = static_cast<std::int32_t>(rng.uniform01() * kClasses) % kClasses;
    mpitrain::write_dataset_file(d, out);
    return 0;
  }
  if (kind == "good-f32") {
    mpitrain::write_dataset_file(blobs(rows, features, false), out);
    return 0;
  }
  if (kind == "empty-train") {
    // float32: the writer picks the stored type of both splits from train's
    // values, and an empty uint8 train split has none.
    DatasetArrays d = blobs(rows, features, false);
    d.train.x_dims[0] = 0;
    d.train.x_f32.clear();
    d.train.y_class.clear();
    mpitrain::write_dataset_file(d, out);
    return 0;
  }
  const bool known = kind == "good" || kind == "no-train-x" || kind == "row-mismatch" || kind == "bad-label" ||
                     kind == "negative-label" || kind == "no-num-classes" || kind == "x-float64" ||
                     kind == "test-width" || kind == "zero-std" || kind == "scale-array" ||
                     kind == "classes-array" || kind == "scale-text" || kind == "corrupt-chunk" ||
                     kind == "unwritten-rows";
  if (!known) {
    std::fprintf(stderr, "make_test_dataset: unknown KIND '%s'\n", kind.c_str());
    return usage();
  }
  mpitrain::write_dataset_file(blobs(rows, features, true), out);
  if (kind == "good") return 0;

  h5::Handle file = open_rw(out);
  const hid_t f = file.get();
  if (kind == "no-train-x") {
    remove_link(f, "/train/x");
  } else if (kind == "row-mismatch") {
    remove_link(f, "/train/y");
    std::vector<int> y(rows - 1, 0);
    h5::write_dataset(f, "/train/y", H5T_NATIVE_INT32, {rows - 1}, y.data(), 4096, out);
  } else if (kind == "bad-label") {
    set_label(f, rows - 1, kClasses);  // the last row: the check must scan every label
  } else if (kind == "negative-label") {
    set_label(f, 0, -1);
  } else if (kind == "no-num-classes") {
    check(H5Adelete(f, "num_classes"), "H5Adelete");
  } else if (kind == "x-float64") {
    remove_link(f, "/train/x");
    std::vector<double> x(rows * static_cast<std::uint64_t>(features), 0.5);
    h5::write_dataset(f, "/train/x", H5T_NATIVE_DOUBLE, {rows, static_cast<hsize_t>(features)}, x.data(), 64, out);
  } else if (kind == "test-width") {
    remove_link(f, "/test/x");
    const hsize_t test_rows = rows / 4, width = static_cast<hsize_t>(features) + 1;
    std::vector<std::uint8_t> x(test_rows * width, 128);
    h5::write_dataset(f, "/test/x", H5T_NATIVE_UINT8, {test_rows, width}, x.data(), 64, out);
  } else if (kind == "zero-std") {
    h5::Handle x(H5Dopen2(f, "/train/x", H5P_DEFAULT), H5Dclose);
    h5::write_attr_double(x.get(), "std", 0.0);
  } else if (kind == "scale-array") {  // issue 17: crashed the reader (one double's buffer)
    h5::Handle x(H5Dopen2(f, "/train/x", H5P_DEFAULT), H5Dclose);
    replace_attr_with_array(x.get(), "scale");
  } else if (kind == "classes-array") {
    replace_attr_with_array(f, "num_classes");
  } else if (kind == "corrupt-chunk") {  // /train/x checksummed (Fletcher-32) per chunk, one chunk damaged below
    rewrite_x_with_checksums(f, rows, static_cast<hsize_t>(features));
  } else if (kind == "unwritten-rows") {
    declare_unwritten_rows(f, static_cast<hsize_t>(features));
  } else if (kind == "scale-text") {
    h5::Handle x(H5Dopen2(f, "/train/x", H5P_DEFAULT), H5Dclose);
    check(H5Adelete(x.get(), "scale"), "H5Adelete");
    h5::write_attr_string(x.get(), "scale", "1/255");
  }
  check(H5Fflush(f, H5F_SCOPE_GLOBAL), "H5Fflush");
  if (kind == "corrupt-chunk") {
    file = h5::Handle();
    damage_second_chunk(out);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_test_dataset: %s\n", e.what());
    return 1;
  }
}
