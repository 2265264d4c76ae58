// Deterministic, portable random numbers. std:: distributions differ between
// standard libraries, so everything that decides the math of a run (epoch
// permutations, weight init, held-out splits) uses these instead: the same
// seed gives the same numbers on every machine and every rank.
#pragma once
#include <cstdint>
#include <vector>

namespace mpitrain {

// SplitMix64 finaliser: a good 64-bit mix of a counter (Steele et al. 2014).
std::uint64_t mix64(std::uint64_t x);

// Derives an independent stream key from a seed and up to two counters,
// e.g. (seed, epoch) for the epoch permutation.
std::uint64_t stream_key(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0);

// xoshiro256** (Blackman & Vigna 2018) seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  std::uint64_t next_u64();
  // Uniform integer in [0, bound), unbiased (Lemire 2019), bound > 0.
  std::uint64_t uniform_below(std::uint64_t bound);
  // Uniform double in [0, 1) with 53 random bits.
  double uniform01();
  // Standard normal (Box-Muller; the spare value is cached).
  double normal();
  // State as four words, for checkpoints.
  std::vector<std::uint64_t> state() const;
  void set_state(const std::vector<std::uint64_t>& s);

 private:
  std::uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// A uniformly random permutation of [0, n) (Fisher-Yates), a pure function of
// the key.
std::vector<std::int64_t> random_permutation(std::int64_t n, std::uint64_t key);

}  // namespace mpitrain
