#include "mpitrain/trainer.hpp"

#include <cblas.h>

#include <cmath>
#include <filesystem>
#include <cstdio>
#include <memory>
#include <optional>

#include "mpitrain/dataset.hpp"
#include "mpitrain/errors.hpp"
#include "mpitrain/evaluate.hpp"
#include "mpitrain/metrics.hpp"
#include "mpitrain/model.hpp"
#include "mpitrain/optim.hpp"
#include "mpitrain/progress.hpp"
#include "mpitrain/sampler.hpp"
#include "mpitrain/schedule.hpp"
#include "mpitrain/threads.hpp"

namespace mpitrain {
namespace {

constexpr int kMinEvalRows = 256;  // evaluation reads at least this many rows at once
enum Stat { kLossSum = 0, kCorrect = 1 };  // slots after the gradients in the all-reduce

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Everything about a run that is fixed before the first step.
struct Plan {
  std::unique_ptr<DatasetFile> data;
  long long train_rows = 0;
  long long steps_per_epoch = 0;
  int capacity = 0;
  LrSchedule lr;
  std::string eval_split;  // "none" when the chosen split is absent-by-choice or empty
};

// The metrics file must never clobber an input: refuse the data file itself
// (also through a symlink) and any existing HDF5 file.
void check_metrics_path(const Config& c) {
  if (c.metrics.empty()) return;
  std::error_code ec;
  if (std::filesystem::equivalent(c.metrics, c.data, ec))
    throw UserError("--metrics '" + c.metrics + "' is the data file: choose another path, e.g. runs/<name>.jsonl");
  if (std::filesystem::is_regular_file(c.metrics, ec) && H5Fis_hdf5(c.metrics.c_str()) > 0)
    throw UserError("--metrics '" + c.metrics + "' is an existing HDF5 file: choose a .jsonl path");
}

Plan make_plan(const Config& c, const Comm& comm) {
  Plan p;
  p.data = std::make_unique<DatasetFile>(c.data);
  const SplitInfo& train = p.data->split("train");
  const auto widths = parse_model_spec(c.model);
  if (widths.front() != train.x_width)
    throw UserError("--model input width " + std::to_string(widths.front()) + " does not match the data's " +
                    std::to_string(train.x_width) + " features per row: make the first number of --model " +
                    std::to_string(train.x_width));
  const int want_out = p.data->num_classes() > 0 ? p.data->num_classes() : train.y_width;
  if (widths.back() != want_out)
    throw UserError("--model output width " + std::to_string(widths.back()) + " does not match the data's " +
                    std::to_string(want_out) + (p.data->num_classes() > 0 ? " classes" : " targets") +
                    ": make the last number of --model " + std::to_string(want_out));
  p.train_rows = train.rows;
  if (c.global_batch > p.train_rows)
    throw UserError("--global-batch " + std::to_string(c.global_batch) + " is larger than the training set (" +
                    std::to_string(p.train_rows) + " rows): choose at most " + std::to_string(p.train_rows));
  if (c.eval_split != "none" && !p.data->has_split(c.eval_split))
    throw UserError("'" + c.data + "' has no /" + c.eval_split + " split: pass --eval-split none or another split");
  p.eval_split = c.eval_split;
  if (p.eval_split != "none" && p.data->split(p.eval_split).rows == 0) p.eval_split = "none";
  check_metrics_path(c);
  p.steps_per_epoch = steps_per_epoch(p.train_rows, c.global_batch, c.drop_last);
  p.capacity = static_cast<int>(std::max<long long>(max_shard_rows(c.global_batch, comm.size()), kMinEvalRows));
  p.lr.base_lr = c.lr;
  p.lr.target_lr = scaled_lr(c.lr, c.ref_batch, c.global_batch, c.lr_scaling);
  p.lr.warmup_steps = std::llround(c.warmup_epochs * static_cast<double>(p.steps_per_epoch));
  return p;
}

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(text, &len);
  std::string s(text, static_cast<size_t>(len));
  return s.substr(0, s.find_first_of(",\n"));
}

JsonObject header_json(const Config& c, const Comm& comm, const Placement& place, const Plan& p, const Model& m) {
  JsonObject cfg;
  for (const auto& [k, v] : c.entries) cfg.add(k, v);
  unsigned hmaj = 0, hmin = 0, hrel = 0;
  H5get_libversion(&hmaj, &hmin, &hrel);
  JsonObject h;
  h.add("type", "header").add("version", MPITRAIN_VERSION).add("ranks", comm.size())
      .add("nodes", place.node_count).add("threads_per_rank", place.threads_per_rank)
      .add("threads_rule", place.how).add("model", m.spec()).add("params", m.param_count())
      .add("flops_per_sample", 3.0 * m.forward_flops_per_sample())
      .add("train_rows", p.train_rows).add("steps_per_epoch", p.steps_per_epoch)
      .add("base_lr", p.lr.base_lr).add("effective_lr", p.lr.target_lr).add("warmup_steps", p.lr.warmup_steps)
      .add("mpi", mpi_library_version())
      .add("hdf5", std::to_string(hmaj) + "." + std::to_string(hmin) + "." + std::to_string(hrel))
      .add("openblas", std::string(openblas_get_config()));
  h.add_object("config", cfg);
  return h;
}

void print_header(const Config& c, const Comm& comm, const Placement& place, const Plan& p, const Model& m) {
  std::printf("mpitrain %s: %d ranks on %d node(s), %d BLAS thread(s) per rank (%s)\n", MPITRAIN_VERSION,
              comm.size(), place.node_count, place.threads_per_rank, place.how.c_str());
  if (place.ranks_on_node * place.threads_per_rank > place.cores_on_node)
    std::printf("warning: %d ranks x %d threads exceed the %d cores of a node\n", place.ranks_on_node,
                place.threads_per_rank, place.cores_on_node);
  std::printf("model %s (%s), %lld parameters, %.2f MFLOP per sample (fwd+bwd)\n", m.spec().c_str(),
              activation_name(c.activation), m.param_count(), 3.0 * m.forward_flops_per_sample() / 1e6);
  std::printf("data %s: %lld train rows", c.data.c_str(), p.train_rows);
  if (c.eval_split != "none") std::printf(", %lld %s rows", p.data->split(c.eval_split).rows, c.eval_split.c_str());
  if (c.eval_split != "none" && p.eval_split == "none") std::printf(" (empty: no evaluation)");
  std::printf("\nglobal batch %lld (up to %lld rows per rank), %lld steps per epoch, %lld epochs%s\n",
              c.global_batch, max_shard_rows(c.global_batch, comm.size()), p.steps_per_epoch, c.epochs,
              c.drop_last ? " (last partial batch dropped)" : "");
  std::printf("lr %g at ref batch %lld, %s scaling -> effective lr %g", c.lr, c.ref_batch,
              lr_scaling_name(c.lr_scaling), p.lr.target_lr);
  if (p.lr.warmup_steps > 0)
    std::printf(", warmup over %lld steps from %g", p.lr.warmup_steps, p.lr.warmup_start_lr());
  std::printf("\nsgd momentum %g%s, weight decay %g, seed %llu\n", c.momentum, c.nesterov ? " (nesterov)" : "",
              c.weight_decay, static_cast<unsigned long long>(c.seed));
  std::fflush(stdout);
}

}  // namespace

TrainResult run_training(const Config& c, const Comm& comm) {
  const bool root = comm.rank() == 0;
  // Everything a user can get wrong is found here, before the first step, and
  // reported once by rank 0 (Comm::collective_check).
  Plan plan;
  MetricsWriter metrics;
  comm.collective_check([&] { plan = make_plan(c, comm); });
  comm.collective_check([&] {
    if (root && !c.metrics.empty()) metrics = MetricsWriter(c.metrics);
  });
  const Placement place = configure_threads(comm, c.threads);

  const DatasetFile& data = *plan.data;
  const int num_classes = data.num_classes();
  const int target_width = data.split("train").y_width;
  Model model(c.model, c.activation, plan.capacity);
  model.init(c.seed);  // the same seed on every rank: identical weights, no broadcast needed
  Sgd sgd(model.arena().param_count(), SgdOptions{c.momentum, c.nesterov, c.weight_decay});
  SplitReader train_reader(data, "train", plan.capacity);
  std::optional<SplitReader> eval_reader;
  if (plan.eval_split != "none") eval_reader.emplace(data, plan.eval_split, plan.capacity);
  TargetBuffers targets(plan.capacity, target_width);
  EpochSampler sampler(plan.train_rows, c.global_batch, c.drop_last, c.seed);
  Arena& arena = model.arena();

  if (root) {
    print_header(c, comm, place, plan, model);
    metrics.write(header_json(c, comm, place, plan, model));
  }
  const bool live = c.progress == "live" || (c.progress == "auto" && stdout_is_terminal());
  Progress progress(root, c.progress != "none", live, c.progress_interval_s);

  TrainResult result;
  const long long total_steps = plan.steps_per_epoch * c.epochs;
  const double t_start = now_s();
  double lr = plan.lr.lr_at(0);
  for (long long epoch = 0; epoch < c.epochs; ++epoch) {
    sampler.start_epoch(epoch);
    const double t_epoch = now_s();
    double time_s[3] = {0, 0, 0};  // data, compute, allreduce
    double loss_sum = 0, correct_sum = 0;
    long long epoch_samples = 0;
    for (long long step = 0; step < plan.steps_per_epoch; ++step) {
      const auto batch = sampler.batch(step);
      const auto shard = sampler.shard(step, comm.size(), comm.rank());
      const int rows = static_cast<int>(shard.size());
      const double t0 = now_s();
      train_reader.read_rows(shard, model.input(), targets.labels.data(), targets.targets.data());
      const double t1 = now_s();
      arena.zero_grads();
      // Sum over local rows, scaled by 1/b: the all-reduced gradient is the global mean.
      const LossSums local = forward_loss(model, num_classes, rows, targets, 1.0f / static_cast<float>(batch.size()));
      if (rows > 0) model.backward(rows);
      arena.stats()[kLossSum] = static_cast<float>(local.loss);
      arena.stats()[kCorrect] = static_cast<float>(local.correct);
      const double t2 = now_s();
      comm.allreduce_sum(arena.grads(), arena.reduce_count());  // empty shards take part too
      const double t3 = now_s();
      const long long global_step = result.steps;
      lr = plan.lr.lr_at(global_step);
      sgd.step(arena.params(), arena.grads(), lr);
      time_s[0] += t1 - t0;
      time_s[1] += (t2 - t1) + (now_s() - t3);
      time_s[2] += t3 - t2;

      const double step_loss = arena.stats()[kLossSum];
      if (!std::isfinite(step_loss)) {
        if (root)
          std::fprintf(stderr,
                       "mpitrain: error: training diverged at epoch %lld step %lld (loss is %g): lower --lr "
                       "(effective %g) or add --warmup-epochs\n",
                       epoch + 1, step + 1, step_loss, lr);
        throw ReportedError(4);
      }
      loss_sum += step_loss;
      correct_sum += arena.stats()[kCorrect];
      epoch_samples += static_cast<long long>(batch.size());
      ++result.steps;
      const double elapsed = now_s() - t_epoch;
      progress.update({epoch + 1, c.epochs, step + 1, plan.steps_per_epoch,
                       loss_sum / static_cast<double>(epoch_samples), static_cast<double>(epoch_samples) / elapsed,
                       (now_s() - t_start) / static_cast<double>(result.steps) *
                           static_cast<double>(total_steps - result.steps)});
    }
    const double train_time = now_s() - t_epoch;
    comm.allreduce_max(time_s, 3);  // the slowest rank sets the pace
    result.samples += epoch_samples;
    result.train_loss = loss_sum / static_cast<double>(epoch_samples);
    result.train_acc = num_classes > 0 ? correct_sum / static_cast<double>(epoch_samples) : NAN;

    const double t_eval = now_s();
    EvalResult eval;
    if (eval_reader) eval = evaluate_split(model, *eval_reader, num_classes, comm, targets);
    result.eval_loss = eval.loss;
    result.eval_acc = eval.accuracy;
    result.epochs_done = epoch + 1;
    result.time_s = now_s() - t_start;
    const double samples_per_s = static_cast<double>(epoch_samples) / train_time;

    std::string line = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c.epochs) +
                       "  train loss " + fmt("%.4f", result.train_loss);
    if (num_classes > 0) line += " acc " + fmt("%.4f", result.train_acc);
    if (eval_reader) {
      line += "  " + c.eval_split + " loss " + fmt("%.4f", eval.loss);
      if (num_classes > 0) line += " acc " + fmt("%.4f", eval.accuracy);
    }
    line += "  lr " + fmt("%.4g", lr) + "  " + fmt("%.1f", train_time) + "s  " + fmt("%.0f", samples_per_s) +
            " samples/s";
    progress.println(line);
    if (root) {
      JsonObject m;
      const std::string prefix = eval_reader ? c.eval_split : "test";
      m.add("type", "epoch").add("epoch", epoch + 1).add("step", result.steps).add("samples", result.samples)
          .add("lr", lr).add("global_batch", c.global_batch)
          .add("train_loss", result.train_loss).add("train_acc", result.train_acc)
          .add(prefix + "_loss", eval.loss).add(prefix + "_acc", eval.accuracy)
          .add("time_s", result.time_s).add("epoch_time_s", train_time).add("samples_per_s", samples_per_s)
          .add("time_data_s", time_s[0]).add("time_compute_s", time_s[1]).add("time_allreduce_s", time_s[2])
          .add("eval_time_s", now_s() - t_eval);
      metrics.write(m);
    }
  }
  if (root)
    std::printf("done: %lld epochs, %lld steps, %.1fs, %.0f samples/s overall%s\n", result.epochs_done,
                result.steps, result.time_s, static_cast<double>(result.samples) / result.time_s,
                eval_reader && num_classes > 0 ? (", final " + c.eval_split + " acc " + fmt("%.4f", result.eval_acc)).c_str()
                                               : "");
  result.params.assign(arena.params(), arena.params() + arena.param_count());
  return result;
}

}  // namespace mpitrain
