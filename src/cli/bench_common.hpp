// The parts of `mpitrain bench` that more than one file uses: its options,
// OSU-style timing (warm-up not counted, a barrier before each timed
// iteration, MPI_Wtime, min/avg/max over ranks), and the compute benchmark
// (bench_compute.cpp). Private to src/cli.
#pragma once
#include <mpi.h>

#include <string>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/io/json_lines.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/forward_loss.hpp"

namespace mpitrain::bench {

struct BenchOptions {
  std::string model = "784-256-128-100-10";
  std::string shard_sizes = "16,64,128,256,512";
  long long min_bytes = 4, max_bytes = 1 << 24;
  int iters = 20, warmup = 3, threads = 0;
  long long bucket_bytes = GradientReducer::kDefaultBucketBytes;
  std::string overlap = "auto";
  std::string optimizer = "sgd";
  double step_seconds = 1.0;
  std::string json;
};

struct Stats { double min, avg, max; };

// min/avg/max over ranks of each rank's mean time per iteration.
Stats over_ranks(const Comm& comm, double seconds);

// Mean seconds per call of body() over `iters` timed calls after `warmup`
// untimed ones, with a barrier before each timed call.
template <typename F>
double time_iterations(const Comm& comm, int warmup, int iters, F&& body) {
  for (int i = 0; i < warmup; ++i) body();
  double total = 0;
  for (int i = 0; i < iters; ++i) {
    comm.barrier();
    const double t0 = MPI_Wtime();
    body();
    total += MPI_Wtime() - t0;
  }
  return total / iters;
}

// Compute per sample at each shard size, against the sgemm calls alone.
void bench_compute(const Comm& comm, Model& model, const TargetBuffers& targets, const BenchOptions& o,
                   const std::vector<long long>& shards, long long max_shard, bool root, JsonObject& out);

}  // namespace mpitrain::bench
