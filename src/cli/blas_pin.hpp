// --deterministic across CPU types: the same OpenBLAS kernel everywhere.
// OpenBLAS picks its kernel table when the library loads, from
// OPENBLAS_CORETYPE or the CPU, before main() runs; a different table sums
// in a different order (README, "Deterministic training"). So a
// --deterministic train sets OPENBLAS_CORETYPE=Haswell (AVX2 + FMA, the
// kernel every x86-64 CPU of the last decade runs) and re-executes itself,
// before MPI starts, unless the environment already sets a kernel.
#pragma once
#include <string>
#include <vector>

namespace mpitrain {

// The kernel --deterministic pins, and the variable that says mpitrain set it.
inline constexpr const char* kPinnedBlasCore = "Haswell";
inline constexpr const char* kPinnedBlasMarker = "MPITRAIN_PINNED_OPENBLAS_CORETYPE";

// For `train` with --deterministic (on the command line or in its --config):
// pins the kernel and re-executes; returns (doing nothing) otherwise, also
// when the options do not parse (train reports that) or the CPU lacks AVX2.
void pin_blas_kernel_if_deterministic(char** argv, const std::vector<std::string>& train_args);

}  // namespace mpitrain
