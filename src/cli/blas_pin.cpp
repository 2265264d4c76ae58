#include "blas_pin.hpp"

#include <unistd.h>

#include <cstdlib>

#include "mpitrain/train/config.hpp"

namespace mpitrain {

void pin_blas_kernel_if_deterministic(char** argv, const std::vector<std::string>& train_args) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv(kPinnedBlasMarker)) return;  // never override the environment
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
  bool deterministic = false;
  try {
    deterministic = parse_train_args(train_args).config.step.deterministic;
  } catch (...) {
    return;  // train reports the error
  }
  if (!deterministic) return;
  setenv("OPENBLAS_CORETYPE", kPinnedBlasCore, 1);
  setenv(kPinnedBlasMarker, kPinnedBlasCore, 1);
  execv("/proc/self/exe", argv);  // only returns on failure: then train runs with the detected kernel
}

}  // namespace mpitrain
