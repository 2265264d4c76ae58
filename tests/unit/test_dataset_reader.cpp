// SplitReader's two paths read the same values: the direct pread path (x
// stored without filters, contiguous or in chunks of whole rows) and the
// H5Dread path it falls back to (here: deflate-compressed chunks, and chunks
// that split a row). Written with the HDF5 C API so each layout is exactly
// the one named.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/io/h5.hpp"

namespace mpitrain {
namespace {

constexpr hsize_t kRows = 150, kA = 4, kB = 5;  // x is [N, 4, 5]: rank 3, 20 values per row

enum class Layout { kChunkedRows, kContiguous, kDeflate, kPartialRowChunks };

void write_file(const std::string& path, Layout layout, bool float_x) {
  h5::silence_errors();
  h5::Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  ASSERT_TRUE(file.valid());
  int classes = 7;
  h5::write_attr_int(file.get(), "num_classes", classes);
  h5::Handle group(H5Gcreate2(file.get(), "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  const hsize_t dims[3] = {kRows, kA, kB};
  h5::Handle space(H5Screate_simple(3, dims, nullptr), H5Sclose);
  h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (layout != Layout::kContiguous) {
    const hsize_t rows_chunk[3] = {16, kA, kB}, part_chunk[3] = {16, 2, kB};
    H5Pset_chunk(dcpl.get(), 3, layout == Layout::kPartialRowChunks ? part_chunk : rows_chunk);
    if (layout == Layout::kDeflate) H5Pset_deflate(dcpl.get(), 4);
  }
  std::vector<std::uint8_t> u8(kRows * kA * kB);
  std::vector<float> f32(u8.size());
  for (size_t i = 0; i < u8.size(); ++i) {
    u8[i] = static_cast<std::uint8_t>((i * 37 + 11) % 251);
    f32[i] = static_cast<float>(i) * 0.5f - 3.0f;
  }
  h5::Handle x(H5Dcreate2(group.get(), "x", float_x ? H5T_IEEE_F32LE : H5T_STD_U8LE, space.get(), H5P_DEFAULT,
                          dcpl.get(), H5P_DEFAULT),
               H5Dclose);
  ASSERT_TRUE(x.valid());
  ASSERT_GE(H5Dwrite(x.get(), float_x ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                     float_x ? static_cast<const void*>(f32.data()) : static_cast<const void*>(u8.data())),
            0);
  h5::write_attr_double(x.get(), "scale", 0.5);
  std::vector<int> y(kRows);
  for (hsize_t i = 0; i < kRows; ++i) y[i] = static_cast<int>((i * 3) % 7);
  const hsize_t ydims[1] = {kRows};
  h5::Handle yspace(H5Screate_simple(1, ydims, nullptr), H5Sclose);
  h5::Handle yd(H5Dcreate2(group.get(), "y", H5T_STD_I32LE, yspace.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose);
  ASSERT_GE(H5Dwrite(yd.get(), H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y.data()), 0);
}

struct Read {
  std::vector<float> x;
  std::vector<int> labels;
  bool direct = false;
};

Read read(const std::string& path, const std::vector<std::int64_t>& rows) {
  DatasetFile file(path);
  SplitReader reader(file, "train", 64);
  Read r;
  r.direct = reader.direct();
  r.x.resize(rows.size() * kA * kB);
  r.labels.resize(rows.size());
  reader.read_rows(rows, r.x.data(), r.labels.data(), nullptr);
  return r;
}

class ReaderPaths : public testing::TestWithParam<bool> {};

TEST_P(ReaderPaths, DirectAndHdf5PathsReadTheSameValues) {
  const bool float_x = GetParam();
  char templ[] = "/tmp/mpitrain-reader-XXXXXX";
  ASSERT_NE(mkdtemp(templ), nullptr);
  const std::string dir = templ;
  // Scattered rows, runs of consecutive rows, runs that cross a 16-row chunk
  // boundary, the first and last rows.
  const std::vector<std::int64_t> rows = {149, 0, 15, 16, 17, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 100, 31, 32, 64};
  struct Case {
    Layout layout;
    const char* name;
    bool want_direct;
  };
  const Case cases[] = {{Layout::kChunkedRows, "rows.h5", true},
                        {Layout::kContiguous, "contiguous.h5", true},
                        {Layout::kDeflate, "deflate.h5", false},
                        {Layout::kPartialRowChunks, "partial.h5", false}};
  std::vector<Read> got;
  for (const Case& c : cases) {
    write_file(dir + "/" + c.name, c.layout, float_x);
    got.push_back(read(dir + "/" + c.name, rows));
    EXPECT_EQ(got.back().direct, c.want_direct) << c.name;
  }
  // Known values: row r, value j is stored (r*20+j) -> u8 ((i*37+11)%251) or f32 (i*0.5-3), times scale 0.5.
  for (size_t p = 0; p < rows.size(); ++p)
    for (hsize_t j = 0; j < kA * kB; ++j) {
      const size_t i = static_cast<size_t>(rows[p]) * kA * kB + j;
      const float want = float_x ? (static_cast<float>(i) * 0.5f - 3.0f) * 0.5f
                                 : static_cast<float>((i * 37 + 11) % 251) * 0.5f;
      for (size_t c = 0; c < got.size(); ++c)
        ASSERT_EQ(got[c].x[p * kA * kB + j], want) << cases[c].name << " row " << rows[p] << " value " << j;
    }
  for (size_t c = 0; c < got.size(); ++c)
    for (size_t p = 0; p < rows.size(); ++p)
      EXPECT_EQ(got[c].labels[p], static_cast<int>((rows[p] * 3) % 7)) << cases[c].name;
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Types, ReaderPaths, testing::Values(false, true));

}  // namespace
}  // namespace mpitrain

namespace mpitrain {
namespace {

// A split too large to scan when the file is opened (issue 17: a real
// dataset of 2^40 rows must start promptly) has its labels checked as rows
// are read: here the scan bound is lowered to 10 rows, and a label set to 7
// (num_classes is 7) in row 100 is refused by the read that reaches it.
TEST(ReaderLabels, SplitTooLargeToScanChecksEachLabelAsItIsRead) {
  const std::string path = (std::filesystem::temp_directory_path() / "mpitrain_reader_labels.h5").string();
  write_file(path, Layout::kChunkedRows, false);
  {
    h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    h5::Handle y(H5Dopen2(file.get(), "/train/y", H5P_DEFAULT), H5Dclose);
    h5::Handle fspace(H5Dget_space(y.get()), H5Sclose);
    const hsize_t row = 100, one = 1;
    ASSERT_GE(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &row, nullptr, &one, nullptr), 0);
    h5::Handle mspace(H5Screate_simple(1, &one, nullptr), H5Sclose);
    const int bad = 7;
    ASSERT_GE(H5Dwrite(y.get(), H5T_NATIVE_INT, mspace.get(), fspace.get(), H5P_DEFAULT, &bad), 0);
  }
  EXPECT_THROW(DatasetFile{path}, UserError);  // scanned up front: refused when opened

  DatasetFile file(path, /*scan_rows=*/10);
  EXPECT_FALSE(file.split("train").labels_checked);
  for (bool range : {true, false}) {
    SplitReader reader(file, "train", 64);
    std::vector<float> x(64 * kA * kB);
    std::vector<int> labels(64);
    if (range) {
      EXPECT_NO_THROW(reader.read_range(0, 64, x.data(), labels.data(), nullptr));  // rows 0-63 are fine
      try {
        reader.read_range(64, 64, x.data(), labels.data(), nullptr);
        ADD_FAILURE() << "the bad label was read without an error";
      } catch (const UserError& e) {
        EXPECT_NE(std::string(e.what()).find("/train/y row 100 has label 7, outside [0, num_classes=7)"), std::string::npos)
            << e.what();
      }
    } else {
      const std::vector<std::int64_t> rows = {5, 100, 7};
      EXPECT_THROW(reader.read_rows(rows, x.data(), labels.data(), nullptr), UserError);
    }
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace mpitrain
