// `mpitrain bench`: the measurements a performance model needs, taken on the
// current ranks (OSU micro-benchmark style: warm-up iterations not counted, a
// barrier before each timed iteration, MPI_Wtime, min/avg/max over ranks):
//  - compute time per sample of forward + loss + backward, at several shard
//    sizes, against the sgemm calls alone (the ceiling);
//  - all-reduce time of the trainer's path (Comm::allreduce_sum on the
//    duplicated communicator) against raw MPI_Allreduce of the same bytes on
//    MPI_COMM_WORLD, for a range of message sizes, and an alpha-beta fit
//    t(n) = alpha + beta * bytes of the trainer's path;
//  - the trainer's step pattern, and its gradient all-reduce against one raw
//    MPI_Allreduce of the same bytes.

#include <boost/program_options.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <utility>

#include "mpitrain/cli/commands.hpp"
#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/comm/placement.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/core/vector_math.hpp"
#include "mpitrain/io/json_lines.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/optim/optimizer.hpp"
#include "mpitrain/train/forward_loss.hpp"

#include "bench_common.hpp"

namespace po = boost::program_options;

namespace mpitrain {
namespace {

using namespace bench;

std::vector<long long> parse_list(const std::string& text) {
  std::vector<long long> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0) throw UserError("bad --shard-sizes item '" + item + "': use e.g. 16,64,256");
    out.push_back(v);
  }
  return out;
}

// The trainer's step without its reads, at each shard size, run as the
// trainer runs its steps: back to back, no barrier between them; forward,
// loss, backward with the trainer's gradient all-reduce, the gradient norm
// and the update (at a tiny rate). The step time is the slowest rank's, the
// all-reduce the least mean time any rank waited for it (or had it in
// flight), the compute the rest (why: docs/performance.md, "Benchmark method").
std::vector<JsonObject> time_steps(const Comm& comm, Model& model, GradientReducer& reducer, Optimizer& optimizer,
                                   const TargetBuffers& targets, const std::vector<long long>& shards, int warmup,
                                   int iters, double min_seconds, bool root) {
  if (root)
    std::printf("training steps without reads, back to back (forward + backward with the gradient all-reduce, "
                "optimizer update), mean over >= %d steps and >= %g s:\n  %6s  %6s  %10s  %10s  %10s  %12s\n",
                iters, min_seconds, "shard", "steps", "step s", "compute s", "in-step AR", "s/sample");
  std::vector<JsonObject> rows_out;
  for (long long s : shards) {
    const int rows = static_cast<int>(s);
    double wait = 0, flight = 0;
    auto one_step = [&] {
      model.arena().zero_grads();
      reducer.begin_step();
      forward_loss(model, static_cast<int>(model.output_width()), rows, targets, 1.0f / static_cast<float>(rows));
      model.backward(rows, &reducer);
      if (comm.size() > 1) reducer.local_sq_norm();
      reducer.finish();
      l2_norm(model.arena().grads(), model.arena().param_count());
      optimizer.step(model.arena(), 1e-6);
      wait += reducer.last_wait_s();
      flight += reducer.last_comm_s();
    };
    // Enough steps for min_seconds (the same count on every rank: each step
    // is a collective): with more ranks than cores the scheduler's pattern
    // changes from one short loop to the next, and a longer one averages it.
    comm.barrier();
    double tw = MPI_Wtime();
    for (int i = 0; i < std::max(warmup, 1); ++i) one_step();
    tw = (MPI_Wtime() - tw) / std::max(warmup, 1);
    comm.allreduce_max(&tw, 1);
    const int steps = static_cast<int>(
        std::max(static_cast<double>(iters), std::min(std::ceil(min_seconds / std::max(tw, 1e-9)), 100000.0)));
    comm.barrier();
    wait = flight = 0;
    const double t0 = MPI_Wtime();
    for (int i = 0; i < steps; ++i) one_step();
    double times[3] = {(MPI_Wtime() - t0) / steps, wait / steps, flight / steps};
    comm.allreduce_max(times, 1);
    comm.allreduce_min(times + 1, 2);
    const double step_s = times[0], exposed_s = times[1], allreduce_s = times[2];
    const double compute_s = std::max(0.0, step_s - exposed_s);
    if (root)
      std::printf("  %6lld  %6d  %.3e  %.3e  %.3e  %.3e\n", s, steps, step_s, compute_s, allreduce_s,
                  compute_s / static_cast<double>(s));
    JsonObject r;
    r.add("shard", s).add("steps", steps).add("step_s", step_s).add("compute_s", compute_s).add("s_per_sample", compute_s / static_cast<double>(s))
        .add("allreduce_s", allreduce_s).add("allreduce_exposed_s", exposed_s);
    rows_out.push_back(r);
  }
  return rows_out;
}

// Parses and checks the options on every rank (a bad option ends all ranks
// with one message). Returns true when --help was asked for; help_text is
// then what to print.
bool parse_bench_args(const Comm& comm, const std::vector<std::string>& args, BenchOptions& o,
                      std::string& help_text) {
  bool help = false;
  comm.collective_check([&] {
    po::options_description desc("mpitrain bench [options]   (run under mpirun)");
    desc.add_options()("help,h", "print this help")
        ("model", po::value(&o.model)->default_value(o.model), "model spec to time")
        ("shard-sizes", po::value(&o.shard_sizes)->default_value(o.shard_sizes), "rows per rank to time compute at")
        ("min-bytes", po::value(&o.min_bytes)->default_value(o.min_bytes), "smallest all-reduce message")
        ("max-bytes", po::value(&o.max_bytes)->default_value(o.max_bytes), "largest all-reduce message")
        ("iters", po::value(&o.iters)->default_value(o.iters), "timed iterations per point")
        ("warmup", po::value(&o.warmup)->default_value(o.warmup), "untimed iterations per point")
        ("threads", po::value(&o.threads)->default_value(o.threads), "BLAS threads per rank (0: automatic)")
        ("bucket-bytes", po::value(&o.bucket_bytes)->default_value(o.bucket_bytes),
         "gradient all-reduce bucket size, as in train (0: one all-reduce)")
        ("overlap", po::value(&o.overlap)->default_value(o.overlap),
         "as in train: auto, on or off (off: one all-reduce of the whole gradient)")
        ("optimizer", po::value(&o.optimizer)->default_value(o.optimizer),
         "the update timed in the step pattern: sgd (momentum 0.9, Nesterov, weight decay 1e-4, as the main "
         "job), adamw, lars or lamb")
        ("step-seconds", po::value(&o.step_seconds)->default_value(o.step_seconds),
         "time the step pattern at each shard size for at least this long (and at least --iters steps)")
        ("json", po::value(&o.json), "also write the results as one JSON object to this file");
    po::variables_map vm;
    try {
      po::store(po::command_line_parser(args).options(desc).run(), vm);
      po::notify(vm);
    } catch (const po::error& e) {
      throw UserError(std::string(e.what()) + " (see 'mpitrain bench --help')");
    }
    help = vm.count("help") > 0;
    std::ostringstream os;
    os << desc;
    help_text = os.str();
    if (o.iters < 1 || o.warmup < 0 || o.min_bytes < 4 || o.max_bytes < o.min_bytes)
      throw UserError("--iters >= 1, --warmup >= 0 and 4 <= --min-bytes <= --max-bytes");
    if (!(o.step_seconds >= 0 && o.step_seconds <= 3600))
      throw UserError("--step-seconds must be between 0 and 3600");
    if (o.bucket_bytes < 0) throw UserError("--bucket-bytes must be >= 0 (0: one all-reduce)");
    if (o.overlap != "auto" && o.overlap != "on" && o.overlap != "off")
      throw UserError("--overlap must be auto, on or off (got '" + o.overlap + "')");
    summarize_model(o.model, Activation::kRelu);
    parse_list(o.shard_sizes);
    parse_optimizer(o.optimizer);
  });
  return help;
}

// The largest shard of random inputs (normal) and labels, seeded.
void fill_random_shard(Model& model, TargetBuffers& targets, long long max_shard) {
  Rng rng(7);
  for (long long i = 0; i < max_shard * model.input_width(); ++i) model.input()[i] = static_cast<float>(rng.normal());
  for (long long i = 0; i < max_shard; ++i)
    targets.labels[static_cast<size_t>(i)] = static_cast<int>(rng.uniform_below(static_cast<std::uint64_t>(model.output_width())));
}

// All-reduce of growing messages, the trainer's path against the raw call,
// and the alpha-beta fit of the trainer's path.
void bench_allreduce_sizes(const Comm& comm, const BenchOptions& o, bool root, JsonObject& out) {
  if (root)
    std::printf("all-reduce (float sum), seconds per call, avg over ranks (min / max):\n"
                "  %12s  %24s  %24s  %6s\n", "bytes", "mpitrain", "raw MPI_Allreduce", "ratio");
  std::vector<float> buf(static_cast<size_t>(o.max_bytes / 4), 1.0f);
  std::vector<JsonObject> ar_rows;
  // Weighted least squares (weights 1/t^2, i.e. relative error), so the
  // microsecond latencies of small messages count as much as large ones.
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (long long bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= 4) {
    const long long count = bytes / 4;
    const double ours = time_iterations(comm, o.warmup, o.iters, [&] { comm.allreduce_sum(buf.data(), count); });
    const double raw = time_iterations(comm, o.warmup, o.iters, [&] {
      MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    });
    const Stats a = over_ranks(comm, ours), b = over_ranks(comm, raw);
    if (root)
      std::printf("  %12lld  %.3e (%.2e/%.2e)  %.3e (%.2e/%.2e)  %6.3f\n", bytes, a.avg, a.min, a.max, b.avg, b.min,
                  b.max, a.avg / b.avg);
    JsonObject r;
    r.add("bytes", bytes).add("s", a.avg).add("s_min", a.min).add("s_max", a.max).add("raw_s", b.avg)
        .add("ratio", a.avg / b.avg);
    ar_rows.push_back(r);
    const auto x = static_cast<double>(bytes);
    const double w = 1.0 / (a.avg * a.avg);
    sw += w; sx += w * x; sy += w * a.avg; sxx += w * x * x; sxy += w * x * a.avg;
  }
  const double det = sw * sxx - sx * sx;
  const double beta = det > 0 ? std::max(0.0, (sw * sxy - sx * sy) / det) : 0.0;
  const double alpha = std::max(0.0, (sy - beta * sx) / sw);
  if (root) std::printf("alpha-beta fit of the mpitrain path: alpha %.3e s, beta %.3e s/byte (%.2f GB/s)\n", alpha, beta,
                        beta > 0 ? 1e-9 / beta : 0.0);
  out.add_array("allreduce", ar_rows).add("alpha_s", alpha).add("beta_s_per_byte", beta);
}

// Medians of two timed calls that alternate iteration by iteration, in turns
// going first (the first of a pair runs slower: docs/performance.md), so the
// machine's drift shows in both alike. The first `warmup` pairs are not kept.
template <typename A, typename B>
std::pair<double, double> alternating_medians(int warmup, int iters, A&& time_a, B&& time_b) {
  std::vector<double> ta, tb;
  for (int i = 0; i < warmup + iters; ++i) {
    double a = 0, b = 0;
    if (i % 2 == 0) {
      a = time_a();
      b = time_b();
    } else {
      b = time_b();
      a = time_a();
    }
    if (i >= warmup) {
      ta.push_back(a);
      tb.push_back(b);
    }
  }
  const auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  return {median(ta), median(tb)};
}

// The trainer's step pattern, then its gradient all-reduce of this model
// (GradientReducer: its buckets started back to front, then waited for)
// against one raw MPI_Allreduce of the same bytes.
void bench_gradient_allreduce(const Comm& comm, Model& model, const TargetBuffers& targets, const Placement& place,
                              const BenchOptions& o, const std::vector<long long>& shards, bool root,
                              JsonObject& out) {
  Arena& arena = model.arena();
  arena.zero_grads();  // sums of zeros stay zeros however many iterations run
  // The trainer's choice: buckets only where overlapping them pays.
  const bool overlap = overlap_enabled(o.overlap, place.node_count, place.ranks_on_node, place.threads_per_rank,
                                       place.cores_on_node);
  GradientReducer reducer(arena, comm, overlap ? o.bucket_bytes : 0, comm.size() > 1);
  OptimizerOptions opt;
  opt.kind = parse_optimizer(o.optimizer);
  opt.nesterov = true;
  opt.weight_decay = 1e-4;
  const auto optimizer = make_optimizer(opt, arena);
  out.add("step_optimizer", optimizer_name(opt.kind));
  out.add_array("step", time_steps(comm, model, reducer, *optimizer, targets, shards, o.warmup, o.iters, o.step_seconds, root));
  arena.zero_grads();
  const long long bytes = arena.reduce_count() * 4;
  std::vector<float> raw_buf(static_cast<size_t>(arena.reduce_count()), 0.0f);
  const auto [ours, raw] = alternating_medians(
      o.warmup, o.iters,
      [&] {
        return time_iterations(comm, 0, 1, [&] {
          reducer.begin_step();
          reducer.finish();
        });
      },
      [&] {
        return time_iterations(comm, 0, 1, [&] {
          MPI_Allreduce(MPI_IN_PLACE, raw_buf.data(), static_cast<int>(raw_buf.size()), MPI_FLOAT, MPI_SUM,
                        MPI_COMM_WORLD);
        });
      });
  const Stats a = over_ranks(comm, ours), b = over_ranks(comm, raw);
  if (root)
    std::printf("gradient all-reduce of this model: %lld bytes in %d bucket(s) of <= %lld bytes (median): %.3e s; raw "
                "MPI_Allreduce %.3e s; ratio %.3f\n",
                bytes, reducer.bucket_count(), o.bucket_bytes, a.avg, b.avg, a.avg / b.avg);
  JsonObject g;
  g.add("bytes", bytes).add("buckets", reducer.bucket_count()).add("bucket_bytes", o.bucket_bytes).add("s", a.avg)
      .add("s_max", a.max).add("raw_s", b.avg).add("ratio", a.avg / b.avg);
  out.add_object("gradient_allreduce", g);
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  Comm comm;
  const bool root = comm.rank() == 0;
  return run_on_all_ranks(comm, [&] {
    BenchOptions o;
    std::string help_text;
    if (parse_bench_args(comm, args, o, help_text)) {
      if (root) std::printf("%s", help_text.c_str());
      return 0;
    }
    const Placement place = configure_threads(comm, o.threads);
    const auto shards = parse_list(o.shard_sizes);
    long long max_shard = 0;
    for (long long s : shards) max_shard = std::max(max_shard, s);
    Model model(o.model, Activation::kRelu, static_cast<int>(max_shard));
    model.init(1);
    TargetBuffers targets(static_cast<int>(max_shard), 0);
    fill_random_shard(model, targets, max_shard);

    JsonObject out;
    out.add("ranks", comm.size()).add("threads_per_rank", place.threads_per_rank).add("nodes", place.node_count)
        .add("ranks_on_node", place.ranks_on_node).add("ranks_on_machine", place.ranks_on_machine)
        .add("cores_on_node", place.cores_on_node).add("model", o.model)
        .add("params", model.param_count()).add("flops_per_sample", model.train_flops_per_sample())
        .add("blas_core", place.blas_core).add("blas_coretype_env", place.blas_coretype_env);
    if (root)
      std::printf("mpitrain bench: %d ranks, %d BLAS thread(s) per rank (OpenBLAS %s kernels%s), model %s (%lld "
                  "parameters)\ncompute (forward + loss + backward), seconds per sample, min/avg/max over ranks:\n",
                  comm.size(), place.threads_per_rank, place.blas_core.c_str(),
                  place.blas_coretype_env.empty() ? "" : ", OPENBLAS_CORETYPE set", o.model.c_str(), model.param_count());
    bench_compute(comm, model, targets, o, shards, max_shard, root, out);
    bench_allreduce_sizes(comm, o, root, out);
    bench_gradient_allreduce(comm, model, targets, place, o, shards, root, out);
    if (root && !o.json.empty()) {
      MetricsWriter w(o.json);
      w.write(out);
    }
    return 0;
  });
}

}  // namespace mpitrain
