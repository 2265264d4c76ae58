// Error types. A UserError is something the user caused and can fix (bad
// option, bad file, bad shapes); its message says what to change. A
// ReportedError means rank 0 already printed the message: every rank just
// exits non-zero. A SystemError is a failed MPI/HDF5/OS call, named with the
// call, so it can be traced.
#pragma once
#include <stdexcept>
#include <string>

namespace mpitrain {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SystemError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ReportedError : std::runtime_error {
  explicit ReportedError(int exit_code_)
      : std::runtime_error("error already reported"), exit_code(exit_code_) {}
  int exit_code;
};

// Exit codes of the mpitrain binary.
inline constexpr int kExitUserError = 2;
inline constexpr int kExitSystemError = 3;

// Narrow a count to int for MPI/BLAS, throwing instead of wrapping.
int checked_int(long long value, const char* what);

// Text read from a file, made safe to put into a one-line message: bytes
// outside printable ASCII become \xNN (so binary, NUL and newlines never
// reach the terminal raw), and at most `max_chars` are kept ("..." after).
std::string printable(const std::string& text, size_t max_chars = 80);

}  // namespace mpitrain
