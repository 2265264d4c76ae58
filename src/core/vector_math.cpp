// Reductions over float vectors (vector_math.hpp).
#include "mpitrain/core/vector_math.hpp"

#include <cmath>

namespace mpitrain {

double sum_of_squares(const float* x, long long n) {
  // Eight independent double partial sums: the compiler vectorises them (a
  // single running sum is a serial dependency), and double keeps squares of
  // large values from overflowing. Taken on the gradient every step.
  double part[8] = {};
  long long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (; i < n; ++i) part[0] += static_cast<double>(x[i]) * x[i];
  double sum = 0;
  for (double p : part) sum += p;
  return sum;
}

double l2_norm(const float* x, long long n) { return std::sqrt(sum_of_squares(x, n)); }

}  // namespace mpitrain
