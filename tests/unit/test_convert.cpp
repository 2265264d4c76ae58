// Tests of `mpitrain convert`: small IDX and CSV inputs written here, converted,
// and read back through HDF5 to check shapes, dtypes, values and attributes.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mpitrain/cli/commands.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/data/convert.hpp"
#include "mpitrain/io/h5.hpp"

namespace fs = std::filesystem;
using namespace mpitrain;

namespace {

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(p.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    ASSERT_EQ(gzclose(f), Z_OK);
  } else {
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                             static_cast<std::streamsize>(bytes.size()));
  }
}

// An IDX file: big-endian magic, dims, then the payload.
std::vector<std::uint8_t> idx_bytes(std::uint32_t magic, const std::vector<std::uint32_t>& dims,
                                    const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> out;
  auto be = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
  };
  be(magic);
  for (auto d : dims) be(d);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// 3 train images and 2 test images of 2x3 pixels; labels up to 4.
const std::vector<std::uint8_t> kTrainPixels = {0, 255, 10, 20, 30, 40, 1, 2, 3, 4, 5, 6, 255, 255, 0, 0, 128, 64};
const std::vector<std::uint8_t> kTrainLabels = {0, 4, 2};
const std::vector<std::uint8_t> kTestPixels = {9, 8, 7, 6, 5, 4, 100, 101, 102, 103, 104, 105};
const std::vector<std::uint8_t> kTestLabels = {1, 3};

void write_mnist(const fs::path& dir, bool train_gz, bool test_gz) {
  fs::create_directories(dir);
  const std::string tg = train_gz ? ".gz" : "", sg = test_gz ? ".gz" : "";
  write_bytes(dir / ("train-images-idx3-ubyte" + tg), idx_bytes(0x803, {3, 2, 3}, kTrainPixels), train_gz);
  write_bytes(dir / ("train-labels-idx1-ubyte" + tg), idx_bytes(0x801, {3}, kTrainLabels), train_gz);
  write_bytes(dir / ("t10k-images-idx3-ubyte" + sg), idx_bytes(0x803, {2, 2, 3}, kTestPixels), test_gz);
  write_bytes(dir / ("t10k-labels-idx1-ubyte" + sg), idx_bytes(0x801, {2}, kTestLabels), test_gz);
}

// Reads back one converted file.
struct Out {
  explicit Out(const std::string& p) : path(p), file(h5::open_file_readonly(p)) {}
  h5::Handle dset(const std::string& name) const { return h5::open_dataset(file.get(), name, path); }
  std::vector<hsize_t> dims(const std::string& name) const { return h5::dataset_dims(dset(name).get(), name); }
  h5::ElemType type(const std::string& name) const { return h5::dataset_elem_type(dset(name).get(), name); }
  std::optional<double> attr(const std::string& name, const std::string& a) const {
    return h5::read_attr_double(dset(name).get(), a);
  }
  long long num_classes() const { return h5::read_attr_int(file.get(), "num_classes").value_or(-1); }
  template <typename T>
  std::vector<T> all(const std::string& name, hid_t mem_type) const {
    std::uint64_t n = 1;
    for (auto v : dims(name)) n *= v;
    std::vector<T> out(n);
    if (n > 0) h5::check(H5Dread(dset(name).get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "H5Dread", name);
    return out;
  }
  std::string path;
  h5::Handle file;
};

// Runs f, expecting a UserError whose message contains `needle`.
template <typename F>
void expect_user_error(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected UserError containing '" << needle << "'";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("mpitrain_convert_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "out");
    out_ = (dir_ / "out" / "data.h5").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The output directory must hold nothing after a failed conversion: no
  // file and no leftover temporary.
  void expect_no_output() const { EXPECT_TRUE(fs::is_empty(dir_ / "out")); }

  std::string write_csv(const std::string& text) const {
    const auto p = (dir_ / "in.csv").string();
    std::ofstream(p) << text;
    return p;
  }
  CsvConvertOptions csv(const std::string& text, const std::string& label, double test_fraction) const {
    return {.input = write_csv(text), .output = out_, .label_column = label, .test_fraction = test_fraction};
  }

  fs::path dir_;
  std::string out_;
};

TEST_F(ConvertTest, IdxGzRoundTripKeepsPixelsLabelsAndStats) {
  write_mnist(dir_ / "idx", true, true);
  convert_idx((dir_ / "idx").string(), out_);
  const Out r(out_);
  EXPECT_EQ(r.dims("/train/x"), (std::vector<hsize_t>{3, 2, 3}));  // the image shape is kept
  EXPECT_EQ(r.dims("/test/x"), (std::vector<hsize_t>{2, 2, 3}));
  EXPECT_EQ(r.type("/train/x"), h5::ElemType::kUint8);
  EXPECT_EQ(r.type("/train/y"), h5::ElemType::kInt32);
  EXPECT_EQ(r.all<std::uint8_t>("/train/x", H5T_NATIVE_UINT8), kTrainPixels);
  EXPECT_EQ(r.all<std::uint8_t>("/test/x", H5T_NATIVE_UINT8), kTestPixels);
  EXPECT_EQ(r.all<std::int32_t>("/train/y", H5T_NATIVE_INT32), (std::vector<std::int32_t>{0, 4, 2}));
  EXPECT_EQ(r.all<std::int32_t>("/test/y", H5T_NATIVE_INT32), (std::vector<std::int32_t>{1, 3}));
  EXPECT_EQ(r.num_classes(), 5);
  EXPECT_DOUBLE_EQ(*r.attr("/train/x", "scale"), 1.0 / 255.0);

  // Population mean/std of the scaled train pixels, computed the plain way.
  double sum = 0, sq = 0;
  for (auto v : kTrainPixels) sum += v / 255.0;
  const double mean = sum / static_cast<double>(kTrainPixels.size());
  for (auto v : kTrainPixels) sq += (v / 255.0 - mean) * (v / 255.0 - mean);
  const double stddev = std::sqrt(sq / static_cast<double>(kTrainPixels.size()));
  EXPECT_NEAR(*r.attr("/train/x", "mean"), mean, 1e-12);
  EXPECT_NEAR(*r.attr("/train/x", "std"), stddev, 1e-12);
  EXPECT_NEAR(*r.attr("/test/x", "mean"), mean, 1e-12);  // test uses the train statistics
  EXPECT_NEAR(*r.attr("/test/x", "std"), stddev, 1e-12);

  EXPECT_EQ(h5::read_attr_string(r.file.get(), "source").value_or(""), (dir_ / "idx").string());
  EXPECT_NE(h5::read_attr_string(r.file.get(), "description").value_or("").find("2x3"), std::string::npos);
}

TEST_F(ConvertTest, IdxReadsPlainAndMixedFiles) {
  write_mnist(dir_ / "idx", false, true);
  convert_idx((dir_ / "idx").string(), out_);
  const Out r(out_);
  EXPECT_EQ(r.all<std::uint8_t>("/train/x", H5T_NATIVE_UINT8), kTrainPixels);
  EXPECT_EQ(r.all<std::uint8_t>("/test/x", H5T_NATIVE_UINT8), kTestPixels);
}

TEST_F(ConvertTest, IdxTruncatedPlainFileIsUserErrorAndWritesNothing) {
  write_mnist(dir_ / "idx", false, false);
  std::vector<std::uint8_t> short_pixels(kTrainPixels.begin(), kTrainPixels.end() - 1);
  write_bytes(dir_ / "idx" / "train-images-idx3-ubyte", idx_bytes(0x803, {3, 2, 3}, short_pixels), false);
  expect_user_error([&] { convert_idx((dir_ / "idx").string(), out_); }, "train-images-idx3-ubyte' is truncated");
  expect_no_output();
}

TEST_F(ConvertTest, IdxTruncatedGzFileIsUserError) {
  write_mnist(dir_ / "idx", true, true);
  // Enough random pixels that the compressed stream is long, then cut it.
  std::vector<std::uint8_t> pixels(3 * 100 * 100);
  Rng rng(7);
  for (auto& p : pixels) p = static_cast<std::uint8_t>(rng.next_u64());
  const auto path = dir_ / "idx" / "t10k-images-idx3-ubyte.gz";
  write_bytes(path, idx_bytes(0x803, {3, 100, 100}, pixels), true);
  fs::resize_file(path, fs::file_size(path) / 2);
  expect_user_error([&] { convert_idx((dir_ / "idx").string(), out_); }, "t10k-images-idx3-ubyte.gz");
  expect_no_output();
}

TEST_F(ConvertTest, IdxBadMagicCountMismatchAndTrailingBytesAreUserErrors) {
  write_mnist(dir_ / "idx", false, false);
  const auto labels = dir_ / "idx" / "train-labels-idx1-ubyte";
  write_bytes(labels, idx_bytes(0x803, {3}, kTrainLabels), false);
  expect_user_error([&] { convert_idx((dir_ / "idx").string(), out_); }, "magic number 0x00000803");

  write_bytes(labels, idx_bytes(0x801, {2}, {0, 4}), false);
  expect_user_error([&] { convert_idx((dir_ / "idx").string(), out_); }, "has 2 labels");

  std::vector<std::uint8_t> longer = kTrainLabels;
  longer.push_back(1);
  write_bytes(labels, idx_bytes(0x801, {3}, longer), false);
  expect_user_error([&] { convert_idx((dir_ / "idx").string(), out_); }, "longer than its header");
  expect_no_output();
}

TEST_F(ConvertTest, IdxMissingFileNamesIt) {
  write_mnist(dir_ / "idx", true, true);
  fs::remove(dir_ / "idx" / "t10k-labels-idx1-ubyte.gz");
  expect_user_error([&] { convert_idx((dir_ / "idx").string(), out_); }, "t10k-labels-idx1-ubyte");
  expect_user_error([&] { convert_idx((dir_ / "nowhere").string(), out_); }, "not a directory");
  expect_no_output();
}

TEST_F(ConvertTest, CsvClassificationRoundTrip) {
  convert_csv(csv("a,\"label\",b\r\n1.5,2,-3\r\n0.25,0,4e2\r\n\r\n7,1,+8\r\n", "label", 0.0));
  const Out r(out_);
  EXPECT_EQ(r.dims("/train/x"), (std::vector<hsize_t>{3, 2}));
  EXPECT_EQ(r.dims("/test/x")[0], 0u);
  EXPECT_EQ(r.type("/train/x"), h5::ElemType::kFloat32);
  EXPECT_EQ(r.all<float>("/train/x", H5T_NATIVE_FLOAT), (std::vector<float>{1.5f, -3.f, 0.25f, 400.f, 7.f, 8.f}));
  EXPECT_EQ(r.type("/train/y"), h5::ElemType::kInt32);
  EXPECT_EQ(r.all<std::int32_t>("/train/y", H5T_NATIVE_INT32), (std::vector<std::int32_t>{2, 0, 1}));
  EXPECT_EQ(r.num_classes(), 3);
  EXPECT_DOUBLE_EQ(*r.attr("/train/x", "scale"), 1.0);
  EXPECT_FALSE(r.attr("/train/x", "mean").has_value());
}

TEST_F(ConvertTest, CsvRegressionAndForcedTasks) {
  CsvConvertOptions o = csv("x,y\n1,0.5\n2,3\n3,-1\n", "y", 0.0);
  convert_csv(o);  // auto: 0.5 and -1 are not class ids
  {
    const Out r(out_);
    EXPECT_EQ(r.num_classes(), 0);
    EXPECT_EQ(r.dims("/train/y"), (std::vector<hsize_t>{3, 1}));
    EXPECT_EQ(r.type("/train/y"), h5::ElemType::kFloat32);
    EXPECT_EQ(r.all<float>("/train/y", H5T_NATIVE_FLOAT), (std::vector<float>{0.5f, 3.f, -1.f}));
  }

  o.task = "classify";
  expect_user_error([&] { convert_csv(o); }, "--task classify");

  o.input = write_csv("x,y\n1,0\n2,3\n");
  o.task = "regress";
  convert_csv(o);  // integer labels, but regression was asked for
  EXPECT_EQ(Out(out_).num_classes(), 0);
  EXPECT_EQ(Out(out_).all<float>("/train/y", H5T_NATIVE_FLOAT), (std::vector<float>{0.f, 3.f}));
  o.task = "auto";
  convert_csv(o);
  EXPECT_EQ(Out(out_).num_classes(), 4);
  o.task = "guess";
  expect_user_error([&] { convert_csv(o); }, "--task 'guess'");
}

// Row r of the CSV has feature r, so the stored features name the rows.
std::vector<float> split_rows(const std::string& dir, const std::string& name, std::uint64_t seed, double fraction,
                              const char* split) {
  std::string text = "f,label\n";
  for (int r = 0; r < 100; ++r) text += std::to_string(r) + "," + std::to_string(r % 3) + "\n";
  const CsvConvertOptions o{.input = dir + "/" + name + ".csv", .output = dir + "/" + name + ".h5",
                            .label_column = "label", .test_fraction = fraction, .seed = seed};
  std::ofstream(o.input) << text;
  convert_csv(o);
  return Out(o.output).all<float>(std::string("/") + split + "/x", H5T_NATIVE_FLOAT);
}

TEST_F(ConvertTest, CsvTestSplitSizesAndDeterminism) {
  const std::string d = dir_.string();
  const auto train = split_rows(d, "a", 5, 0.25, "train");
  const auto test = split_rows(d, "a", 5, 0.25, "test");
  ASSERT_EQ(train.size(), 75u);
  ASSERT_EQ(test.size(), 25u);
  std::vector<float> all = train;
  all.insert(all.end(), test.begin(), test.end());
  std::sort(all.begin(), all.end());
  for (int r = 0; r < 100; ++r) EXPECT_EQ(all[r], static_cast<float>(r));  // disjoint and complete

  // The held-out rows are the last 25 of the documented permutation.
  auto perm = random_permutation(100, stream_key(5, 0x637376));
  std::vector<float> want(perm.end() - 25, perm.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(test, want);

  EXPECT_EQ(split_rows(d, "b", 5, 0.25, "test"), test);
  EXPECT_NE(split_rows(d, "c", 6, 0.25, "test"), test);
  EXPECT_EQ(split_rows(d, "d", 5, 0.104, "test").size(), 10u);  // round(10.4)
  EXPECT_EQ(split_rows(d, "e", 5, 0.105, "test").size(), 11u);  // round(10.5)
}

TEST_F(ConvertTest, CsvBadInputsAreUserErrors) {
  CsvConvertOptions o = csv("a,b,c\n1,2,3\n", "label", 0.2);
  expect_user_error([&] { convert_csv(o); }, "choose --label-column from 'a', 'b', 'c'");
  o.input = write_csv("a,label\n1,2\n3,x7\n");
  expect_user_error([&] { convert_csv(o); }, "line 3, column 'label': 'x7' is not a number");
  o.input = write_csv("a,label\n1,2\n3,4,5\n");
  expect_user_error([&] { convert_csv(o); }, "line 3: expected 2 fields");
  o.input = write_csv("a,label\n1,\n");
  expect_user_error([&] { convert_csv(o); }, "line 2, column 'label': empty value");
  o.input = write_csv("a,label\nnan,1\n");
  expect_user_error([&] { convert_csv(o); }, "not a finite number");
  o.input = write_csv("");
  expect_user_error([&] { convert_csv(o); }, "is empty");
  o.input = write_csv("a,label\n");
  expect_user_error([&] { convert_csv(o); }, "no data rows");
  o.input = write_csv("a,label\n1,0\n2,1\n");
  o.test_fraction = 1.0;
  expect_user_error([&] { convert_csv(o); }, "must be in [0, 1)");
  o.test_fraction = 0.8;  // round(1.6) = 2 test rows leave no train row
  expect_user_error([&] { convert_csv(o); }, "leaves no training rows");
  o.test_fraction = 0.2;
  o.output = o.input;
  expect_user_error([&] { convert_csv(o); }, "is the input CSV file");
  expect_no_output();
}

int run_cli(const std::vector<std::string>& args, std::string& out, std::string& err) {
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int rc = convert_command(args);
  out = ::testing::internal::GetCapturedStdout();
  err = ::testing::internal::GetCapturedStderr();
  return rc;
}

TEST_F(ConvertTest, CommandExitCodesAndMessages) {
  std::string out, err;
  EXPECT_EQ(run_cli({"tsv"}, out, err), 2);
  EXPECT_EQ(err.rfind("mpitrain convert: error: unknown input format 'tsv'", 0), 0u) << err;
  EXPECT_EQ(run_cli({}, out, err), 2);

  const std::string in = write_csv("a,label\n1,0\n2,1\n3,1\n4,0\n5,2\n");
  EXPECT_EQ(run_cli({"csv", "--input", in, "--label-column", "label"}, out, err), 2);
  EXPECT_NE(err.find("mpitrain convert: error: "), std::string::npos);
  EXPECT_NE(err.find("output"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(run_cli({"idx", "--input", ".", "--output", out_, "--bogus"}, out, err), 2);
  EXPECT_NE(err.find("bogus"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"csv", "--input", in, "--output", out_, "--label-column", "label", "--seed", "-1"}, out, err), 2);
  EXPECT_EQ(run_cli({"csv", "--input", in, "--output", out_, "--label-column", "nope"}, out, err), 2);
  EXPECT_EQ(err.rfind("mpitrain convert: error: ", 0), 0u) << err;
  expect_no_output();

  EXPECT_EQ(run_cli({"csv", "--help"}, out, err), 0);
  EXPECT_NE(out.find("--label-column"), std::string::npos);

  const std::vector<std::string> ok = {"csv", "--input", in, "--output", out_, "--label-column", "label",
                                       "--seed", "3", "--test-fraction", "0.4"};
  EXPECT_EQ(run_cli(ok, out, err), 0) << err;
  EXPECT_NE(out.find("3 train rows, 2 test rows, 1 features, num_classes 3"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(out_));
}

}  // namespace
