// Reductions over float vectors shared by several areas: the optimizers'
// per-tensor norms (optim), the gradient reducer's local norm (comm) and the
// trainer's gradient norm (train). One implementation, so every caller gets
// the same bits for the same values.
#pragma once

namespace mpitrain {

// sum x[i]^2 over [0, n), accumulated in double (no overflow for large
// floats) in eight partial sums added in index order: a fixed order, so the
// result depends on the values only. n <= 0 gives 0.
double sum_of_squares(const float* x, long long n);

// sqrt(sum_of_squares(x, n)).
double l2_norm(const float* x, long long n);

}  // namespace mpitrain
