// `mpitrain bench`'s compute benchmark: forward + loss + backward per sample
// at each shard size, against the sgemm calls of the same shapes alone.
#include <cblas.h>

#include <algorithm>
#include <cstdio>

#include "bench_common.hpp"

namespace mpitrain::bench {
namespace {

// The ceiling: only the sgemm calls of forward and backward, at the same
// shapes and on the same threads (no bias, activation, loss or copies).
class SgemmCeiling {
 public:
  SgemmCeiling(const std::string& model_spec, long long max_shard) : widths_(parse_model_spec(model_spec)) {
    int max_width = 0;
    for (int w : widths_) max_width = std::max(max_width, w);
    ga_.assign(static_cast<size_t>(max_shard * max_width), 0.5f);
    gb_.assign(ga_.size(), 0.25f);
    gw_.assign(static_cast<size_t>(max_width) * max_width, 0.01f);
    gc_.resize(ga_.size() > gw_.size() ? ga_.size() : gw_.size());
  }

  void pass(int rows) {
    for (size_t l = 0; l + 1 < widths_.size(); ++l) {
      const int in = widths_[l], wo = widths_[l + 1];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, wo, in, 1.0f, ga_.data(), in, gw_.data(), wo, 1.0f,
                  gc_.data(), wo);  // forward: (R, I) x (I, O)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, wo, rows, 1.0f, ga_.data(), in, gb_.data(), wo, 1.0f,
                  gc_.data(), wo);  // weight gradient: (I, R) x (R, O)
      if (l > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, in, wo, 1.0f, gb_.data(), wo, gw_.data(), wo, 0.0f,
                    gc_.data(), in);  // input gradient: (R, O) x (O, I); the first layer needs none
    }
  }

 private:
  std::vector<int> widths_;
  std::vector<float> ga_, gb_, gw_, gc_;
};

}  // namespace

// min/avg/max over ranks of each rank's mean time per iteration.
Stats over_ranks(const Comm& comm, double seconds) {
  double mn = seconds, mx = seconds, sum = seconds;
  comm.allreduce_min(&mn, 1);
  comm.allreduce_max(&mx, 1);
  comm.allreduce_sum(&sum, 1);
  return {mn, sum / comm.size(), mx};
}

void bench_compute(const Comm& comm, Model& model, const TargetBuffers& targets, const BenchOptions& o,
                   const std::vector<long long>& shards, long long max_shard, bool root, JsonObject& out) {
  SgemmCeiling ceiling_pass(o.model, max_shard);
  const double gemm_flops = model.train_flops_per_sample();  // the ceiling runs exactly these GEMMs
  out.add("gemm_flops_per_sample", gemm_flops);
  std::vector<JsonObject> compute_rows;
  for (long long s : shards) {
    const int rows = static_cast<int>(s);
    const double t = time_iterations(comm, o.warmup, o.iters, [&] {
      model.arena().zero_grads();
      forward_loss(model, model.output_width(), rows, targets, 1.0f / static_cast<float>(rows));
      model.backward(rows);
    });
    const Stats st = over_ranks(comm, t / static_cast<double>(s));
    const double tg = time_iterations(comm, o.warmup, o.iters, [&] { ceiling_pass.pass(rows); });
    const Stats sg = over_ranks(comm, tg / static_cast<double>(s));
    const double gflops = gemm_flops / st.avg / 1e9, ceiling = gemm_flops / sg.avg / 1e9;
    if (root)
      std::printf("  shard %6lld  %.3e / %.3e / %.3e s  %6.1f GFLOP/s per rank; sgemm alone %6.1f GFLOP/s; ratio %.3f\n",
                  s, st.min, st.avg, st.max, gflops, ceiling, sg.avg / st.avg);
    JsonObject r;
    r.add("shard", s).add("s_per_sample_min", st.min).add("s_per_sample_avg", st.avg).add("s_per_sample_max", st.max)
        .add("gflops", gflops).add("sgemm_s_per_sample", sg.avg).add("sgemm_gflops", ceiling)
        .add("fraction_of_sgemm", sg.avg / st.avg);
    compute_rows.push_back(r);
  }
  out.add_array("compute", compute_rows);
}

}  // namespace mpitrain::bench
