// Attribute reads (io/h5.hpp) validate before they copy: an attribute must
// hold exactly one value of the expected type class, and text is bounded,
// so a crafted file (issue 17: arrays of 4096 elements where one number is
// expected crashed the reader) is refused with a UserError naming the
// attribute and the file.
#include <hdf5.h>

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <filesystem>
#include <string>
#include <vector>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/h5.hpp"

namespace mpitrain {
namespace {

class H5Attributes : public testing::Test {
 protected:
  void SetUp() override {
    h5::silence_errors();
    path_ = (std::filesystem::temp_directory_path() /
             ("mpitrain-attr-" + std::to_string(::getpid()) + "-" +
              testing::UnitTest::GetInstance()->current_test_info()->name() + ".h5"))
                .string();
    file_ = h5::create_file_truncate(path_);
  }
  void TearDown() override {
    file_ = h5::Handle();
    std::filesystem::remove(path_);
  }
  // A numeric attribute of `n` doubles (n = 0: scalar).
  void write_numbers(const std::string& name, hsize_t n) {
    h5::Handle space(n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), H5Sclose);
    h5::Handle a(H5Acreate2(file_.get(), name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                 H5Aclose);
    std::vector<double> v(n == 0 ? 1 : n, 0.5);
    ASSERT_GE(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, v.data()), 0);
  }
  // `n` fixed-size strings of `len` bytes (n = 0: scalar).
  void write_texts(const std::string& name, hsize_t n, size_t len) {
    h5::Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), len);
    h5::Handle space(n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), H5Sclose);
    h5::Handle a(H5Acreate2(file_.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    std::string v((n == 0 ? 1 : n) * len, 'x');
    ASSERT_GE(H5Awrite(a.get(), type.get(), v.data()), 0);
  }
  std::string refusal(const std::function<void()>& read) {
    try {
      read();
    } catch (const UserError& e) {
      return e.what();
    }
    return "(no UserError)";
  }
  std::string path_;
  h5::Handle file_;
};

TEST_F(H5Attributes, OneValueReadsAsBefore) {
  h5::write_attr_double(file_.get(), "scale", 0.25);
  h5::write_attr_int(file_.get(), "num_classes", 10);
  h5::write_attr_string(file_.get(), "source", "idx");
  write_numbers("one_element_array", 1);
  EXPECT_EQ(h5::read_attr_double(file_.get(), "scale"), 0.25);
  EXPECT_EQ(h5::read_attr_int(file_.get(), "num_classes"), 10);
  EXPECT_EQ(h5::read_attr_string(file_.get(), "source"), "idx");
  EXPECT_EQ(h5::read_attr_double(file_.get(), "one_element_array"), 0.5);
  EXPECT_FALSE(h5::read_attr_double(file_.get(), "absent").has_value());
}

TEST_F(H5Attributes, AnArrayWhereOneNumberIsExpectedIsRefused) {
  write_numbers("scale", 4096);
  const std::string e = refusal([&] { h5::read_attr_double(file_.get(), "scale"); });
  EXPECT_NE(e.find("attribute 'scale' of '" + path_ + "' holds 4096 values, expected one number"), std::string::npos)
      << e;
  EXPECT_NE(refusal([&] { h5::read_attr_int(file_.get(), "scale"); }).find("holds 4096 values"), std::string::npos);
}

TEST_F(H5Attributes, TextWhereANumberIsExpectedIsRefused) {
  write_texts("scale", 0, 8);
  EXPECT_NE(refusal([&] { h5::read_attr_double(file_.get(), "scale"); }).find("is text, expected one number"),
            std::string::npos);
}

TEST_F(H5Attributes, AnArrayOfTextsOrANumberWhereTextIsExpectedIsRefused) {
  write_texts("config", 64, 1000);
  EXPECT_NE(refusal([&] { h5::read_attr_string(file_.get(), "config"); }).find("holds 64 values, expected one text"),
            std::string::npos);
  write_numbers("format", 0);
  EXPECT_NE(refusal([&] { h5::read_attr_string(file_.get(), "format"); }).find("is a number, expected one text"),
            std::string::npos);
}

TEST_F(H5Attributes, OversizedTextIsRefusedBeforeItIsAllocated) {
  // Attributes over 64 KiB need the newer file format (dense attribute storage).
  file_ = h5::Handle();
  h5::Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  ASSERT_GE(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), 0);
  file_ = h5::Handle(H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  ASSERT_TRUE(file_.valid());
  write_texts("config", 0, (16u << 20) + 1);
  EXPECT_NE(refusal([&] { h5::read_attr_string(file_.get(), "config"); }).find("bytes of text, more than"),
            std::string::npos);
}

}  // namespace
}  // namespace mpitrain
