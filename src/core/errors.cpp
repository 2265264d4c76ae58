#include "mpitrain/core/errors.hpp"

#include <climits>

namespace mpitrain {

int checked_int(long long value, const char* what) {
  if (value < INT_MIN || value > INT_MAX)
    throw SystemError(std::string(what) + " = " + std::to_string(value) +
                      " does not fit in an int");
  return static_cast<int>(value);
}

}  // namespace mpitrain
