// core/errors.hpp: text from a file made safe for a one-line message.
#include <gtest/gtest.h>

#include <string>

#include "mpitrain/core/errors.hpp"

namespace mpitrain {
namespace {

TEST(Printable, KeepsPrintableAsciiAndEscapesEveryOtherByte) {
  EXPECT_EQ(printable("ckpt-e0001.h5"), "ckpt-e0001.h5");
  EXPECT_EQ(printable(std::string("a\x01\n\0b\xef\xbb\xbf", 8)), "a\\x01\\x0a\\x00b\\xef\\xbb\\xbf");
}

TEST(Printable, CutsLongTextAfterTheLimit) {
  EXPECT_EQ(printable(std::string(100, 'x'), 5), "xxxxx...");
  EXPECT_EQ(printable("xxxxx", 5), "xxxxx");
}

TEST(CheckedInt, RefusesValuesOutsideInt) {
  EXPECT_EQ(checked_int(2147483647LL, "n"), 2147483647);
  EXPECT_THROW(checked_int(2147483648LL, "n"), SystemError);
}

}  // namespace
}  // namespace mpitrain
