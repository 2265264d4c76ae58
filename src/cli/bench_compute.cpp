// `mpitrain bench`'s compute benchmark: forward + loss + backward per sample
// at each shard size, against the sgemm calls of the same shapes alone.
#include <cblas.h>

#include <algorithm>
#include <cstdio>

#include "bench_common.hpp"

namespace mpitrain::bench {
namespace {

// The ceiling: only the sgemm calls of forward and backward, at the same
// shapes and on the same threads (no bias, activation, im2col, pooling, loss
// or copies), as each layer declares them (Layer::gemm_shapes).
class SgemmCeiling {
 public:
  SgemmCeiling(const Model& model, long long max_shard) : model_(model) {
    size_t a = 1, b = 1, c = 1;
    for (size_t l = 0; l < model.layers().size(); ++l)
      for (const GemmShape& g : model.layers()[l]->gemm_shapes(static_cast<int>(max_shard), l > 0)) {
        a = std::max(a, static_cast<size_t>(g.m * g.k));
        b = std::max(b, static_cast<size_t>(g.k * g.n));
        c = std::max(c, static_cast<size_t>(g.m * g.n));
      }
    ga_.assign(a, 0.5f);
    gb_.assign(b, 0.25f);
    gc_.assign(c, 0.0f);
  }

  // FLOPs per sample of these calls at `rows` rows.
  double flops_per_sample(int rows) const {
    double f = 0;
    for (size_t l = 0; l < model_.layers().size(); ++l)
      for (const GemmShape& g : model_.layers()[l]->gemm_shapes(rows, l > 0))
        f += 2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
    return f / rows;
  }

  void pass(int rows) {
    for (size_t l = 0; l < model_.layers().size(); ++l) layer_pass(l, rows);
  }

  void layer_pass(size_t l, int rows) {
    for (const GemmShape& g : model_.layers()[l]->gemm_shapes(rows, l > 0)) {
      const auto m = static_cast<int>(g.m), n = static_cast<int>(g.n), k = static_cast<int>(g.k);
      cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                  1.0f, ga_.data(), g.trans_a ? m : k, gb_.data(), g.trans_b ? k : n, 1.0f, gc_.data(), n);
    }
  }

 private:
  const Model& model_;
  std::vector<float> ga_, gb_, gc_;
};

}  // namespace

namespace {

// Where a step's compute goes, layer by layer, at the largest shard: each
// layer's forward and backward seconds against its own sgemm calls alone.
void profile_layers(const Comm& comm, Model& model, const TargetBuffers& targets, const BenchOptions& o,
                    SgemmCeiling& ceiling, int rows, bool root, JsonObject& out) {
  const size_t n = model.layers().size();
  std::vector<Model::LayerSeconds> seconds(n);
  model.set_layer_timer(&seconds);
  const int iters = std::max(o.iters, 1);
  for (int it = 0; it < o.warmup + iters; ++it) {
    if (it == o.warmup) std::fill(seconds.begin(), seconds.end(), Model::LayerSeconds{});
    model.arena().zero_grads();
    forward_loss(model, static_cast<int>(model.output_width()), rows, targets, 1.0f / static_cast<float>(rows));
    model.backward(rows);
  }
  model.set_layer_timer(nullptr);
  if (root)
    std::printf("per layer at shard %d (rank 0, seconds per step): forward, backward, its sgemm calls alone, fraction;\n"
                "  for layers that time them, their sgemm calls in the layer and alone / in the layer\n",
                rows);
  std::vector<JsonObject> rows_json;
  for (size_t l = 0; l < n; ++l) {
    const double fwd = seconds[l].forward / iters, bwd = seconds[l].backward / iters, inside = seconds[l].sgemm / iters;
    const double gemm = model.layers()[l]->gemm_shapes(rows, l > 0).empty()
                            ? 0.0
                            : time_iterations(comm, o.warmup, o.iters, [&] { ceiling.layer_pass(l, rows); });
    const double frac = gemm > 0 ? gemm / (fwd + bwd) : 0.0;
    const double inside_frac = inside > 0 ? gemm / inside : 0.0;
    if (root) {
      std::printf("  %-14s %10.3e %10.3e %10.3e  %s", model.layers()[l]->name().c_str(), fwd, bwd, gemm,
                  gemm > 0 ? std::to_string(frac).substr(0, 5).c_str() : "-");
      if (inside > 0) std::printf("  %10.3e  %s", inside, std::to_string(inside_frac).substr(0, 5).c_str());
      std::printf("\n");
    }
    JsonObject j;
    j.add("name", model.layers()[l]->name()).add("kind", model.layers()[l]->kind()).add("shard", static_cast<long long>(rows))
        .add("forward_s", fwd).add("backward_s", bwd).add("sgemm_s", gemm).add("fraction_of_sgemm", frac)
        .add("sgemm_in_layer_s", inside).add("sgemm_alone_over_in_layer", inside_frac);
    rows_json.push_back(j);
  }
  out.add_array("layer_profile", rows_json);
}

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
  SgemmCeiling ceiling_pass(model, max_shard);
  const double gemm_flops = ceiling_pass.flops_per_sample(static_cast<int>(max_shard));  // the ceiling runs exactly these GEMMs
  out.add("gemm_flops_per_sample", gemm_flops);
  std::vector<JsonObject> compute_rows;
  for (long long s : shards) {
    const int rows = static_cast<int>(s);
    const double t = time_iterations(comm, o.warmup, o.iters, [&] {
      model.arena().zero_grads();
      forward_loss(model, static_cast<int>(model.output_width()), rows, targets, 1.0f / static_cast<float>(rows));
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
  profile_layers(comm, model, targets, o, ceiling_pass, static_cast<int>(max_shard), root, out);
}

}  // namespace mpitrain::bench
