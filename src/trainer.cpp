#include "mpitrain/trainer.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>

#include "mpitrain/errors.hpp"
#include "mpitrain/evaluate.hpp"
#include "mpitrain/metrics.hpp"
#include "mpitrain/model.hpp"
#include "mpitrain/optim.hpp"
#include "mpitrain/progress.hpp"
#include "mpitrain/run_plan.hpp"
#include "mpitrain/sampler.hpp"

namespace mpitrain {
namespace {

enum Stat { kLossSum = 0, kCorrect = 1 };  // slots after the gradients in the all-reduce
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Readers and buffers of one run, sized once before the first step.
struct RunState {
  RunState(const Config& c, const RunPlan& plan)
      : model(c.model, c.activation, plan.capacity),
        train_reader(*plan.data, "train", plan.capacity),
        targets(plan.capacity, plan.data->split("train").y_width),
        sampler(plan.train_count, c.global_batch, c.drop_last, c.seed, plan.train_rows) {
    model.init(c.seed);  // the same seed on every rank: identical weights, no broadcast needed
    optimizer = make_optimizer(c.optim, model.arena());
    if (plan.val_split == "train") val_reader.emplace(*plan.data, "train", plan.capacity);
    if (plan.val_split == "val") val_reader.emplace(*plan.data, "val", plan.capacity);
    if (plan.eval_test) test_reader.emplace(*plan.data, "test", plan.capacity);
  }
  Model model;
  std::unique_ptr<Optimizer> optimizer;
  SplitReader train_reader;
  std::optional<SplitReader> val_reader, test_reader;
  TargetBuffers targets;
  EpochSampler sampler;
};

struct StepTimes {
  double data = 0, compute = 0, allreduce = 0;
};

// Forward/backward over this rank's shard in micro-batches of the model's
// capacity; gradients add up in the arena. Returns the local loss sums.
LossSums accumulate_shard(RunState& s, int num_classes, std::span<const std::int64_t> shard, long long b,
                          StepTimes& t) {
  LossSums local;
  const auto grad_scale = 1.0f / static_cast<float>(b);  // sum over rows / b: the all-reduce gives the mean
  const size_t cap = static_cast<size_t>(s.model.capacity_rows());
  for (size_t off = 0; off < shard.size(); off += cap) {
    const auto part = shard.subspan(off, std::min(cap, shard.size() - off));
    const double t0 = now_s();
    s.train_reader.read_rows(part, s.model.input(), s.targets.labels.data(), s.targets.targets.data());
    const double t1 = now_s();
    const auto rows = static_cast<int>(part.size());
    const LossSums l = forward_loss(s.model, num_classes, rows, s.targets, grad_scale);
    s.model.backward(rows);
    local.loss += l.loss;
    local.correct += l.correct;
    t.data += t1 - t0;
    t.compute += now_s() - t1;
  }
  return local;
}

// Creates the run directory and records the effective configuration in it.
void write_run_dir(const Config& c) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(c.run_dir, ec);
  if (ec) throw UserError("cannot create --run-dir '" + c.run_dir + "': " + ec.message());
  const fs::path ini = fs::path(c.run_dir) / "config.ini";
  std::FILE* f = std::fopen(ini.c_str(), "w");
  if (!f) throw UserError("cannot write '" + ini.string() + "': choose a writable --run-dir");
  const std::string text = c.to_ini();
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) throw UserError("cannot write '" + ini.string() + "'");
}

[[noreturn]] void report_divergence(const Comm& comm, MetricsWriter& metrics, const StepPosition& pos, double lr,
                                    double loss, double grad_norm, const std::string& why) {
  if (comm.rank() == 0) {
    std::fprintf(stderr,
                 "mpitrain: error: training diverged at epoch %lld step %lld (global step %lld): %s, lr %g. "
                 "Lower --lr or lengthen the warmup (--warmup-epochs)\n",
                 pos.epoch + 1, pos.step_in_epoch + 1, pos.global_step + 1, why.c_str(), lr);
    JsonObject m;
    m.add("type", "diverged").add("epoch", pos.epoch + 1).add("step", pos.global_step + 1)
        .add("lr", lr).add("loss", loss).add("grad_norm", grad_norm).add("reason", why);
    metrics.write(m);
  }
  throw ReportedError(kExitDiverged);
}

}  // namespace

TrainResult run_training(const Config& c, const Comm& comm) {
  const bool root = comm.rank() == 0;
  // Everything a user can get wrong is found here, before the first step, and
  // reported once by rank 0 (Comm::collective_check).
  RunPlan plan;
  MetricsWriter metrics;
  comm.collective_check([&] { plan = make_run_plan(c, comm); });
  comm.collective_check([&] {
    if (!root) return;
    if (!c.run_dir.empty()) write_run_dir(c);
    if (!c.metrics_path().empty()) metrics = MetricsWriter(c.metrics_path());
  });
  const Placement place = configure_threads(comm, c.threads);  // before the first BLAS call
  RunState s(c, plan);
  const int num_classes = plan.data->num_classes();
  const LrSchedule& schedule = *plan.schedule;
  Arena& arena = s.model.arena();
  if (root) {
    print_run_header(c, comm, place, plan, s.model);
    metrics.write(run_header_json(c, comm, place, plan, s.model));
  }
  const bool live = c.progress == "live" || (c.progress == "auto" && stdout_is_terminal());
  Progress progress(root, c.progress != "none", live, c.progress_interval_s);
  std::optional<EarlyStopping> early;
  if (c.early_stop_patience > 0) early.emplace(c.early_stop_metric, c.early_stop_patience, c.early_stop_min_delta);

  TrainResult result;
  result.val_loss = result.val_acc = kNaN;
  const double t_start = now_s();
  double first_loss = kNaN;  // mean loss of the first step, the divergence reference
  for (long long epoch = 0; epoch < c.epochs; ++epoch) {
    const long long steps = schedule.steps_in_epoch(epoch);
    const long long b_epoch = batch_at_epoch(plan.phases, epoch);
    s.sampler.set_global_batch(b_epoch);
    s.sampler.start_epoch(epoch);
    const double t_epoch = now_s();
    StepTimes times;
    double loss_sum = 0, correct_sum = 0, lr = 0;
    long long epoch_samples = 0;
    for (long long step = 0; step < steps; ++step) {
      const StepPosition pos = schedule.position(epoch, step);
      const auto b = static_cast<long long>(s.sampler.batch(step).size());
      arena.zero_grads();
      const LossSums local = accumulate_shard(s, num_classes, s.sampler.shard(step, comm.size(), comm.rank()), b, times);
      arena.stats()[kLossSum] = static_cast<float>(local.loss);
      arena.stats()[kCorrect] = static_cast<float>(local.correct);
      const double t_reduce = now_s();
      comm.allreduce_sum(arena.grads(), arena.reduce_count());  // empty shards take part too
      const double t_update = now_s();
      times.allreduce += t_update - t_reduce;

      const double step_loss = arena.stats()[kLossSum] / static_cast<double>(b);
      const double grad_norm = l2_norm(arena.grads(), arena.param_count());
      lr = schedule.lr_at(pos);
      if (result.steps == 0) first_loss = step_loss;
      if (!std::isfinite(step_loss) || !std::isfinite(grad_norm))
        report_divergence(comm, metrics, pos, lr, step_loss, grad_norm, "the loss or gradient is not finite");
      if (c.divergence_factor > 0 && first_loss > 0 && step_loss > c.divergence_factor * first_loss)
        report_divergence(comm, metrics, pos, lr, step_loss, grad_norm,
                          "the loss " + fmt("%.4g", step_loss) + " exceeds " + fmt("%g", c.divergence_factor) +
                              " x the first step's " + fmt("%.4g", first_loss));
      s.optimizer->step(arena, lr);
      times.compute += now_s() - t_update;

      loss_sum += arena.stats()[kLossSum];
      correct_sum += arena.stats()[kCorrect];
      epoch_samples += b;
      result.samples += b;
      ++result.steps;
      if (root && c.metrics_every_steps > 0 && result.steps % c.metrics_every_steps == 0) {
        JsonObject m;
        m.add("type", "step").add("epoch", epoch + 1).add("step", result.steps).add("samples", result.samples)
            .add("lr", lr).add("global_batch", b).add("loss", step_loss)
            .add("acc", num_classes > 0 ? arena.stats()[kCorrect] / static_cast<double>(b) : kNaN)
            .add("grad_norm", grad_norm);
        metrics.write(m);
      }
      const double elapsed = now_s() - t_epoch;
      const double run_elapsed = now_s() - t_start;
      progress.update({epoch + 1, c.epochs, step + 1, steps, loss_sum / static_cast<double>(epoch_samples),
                       static_cast<double>(epoch_samples) / elapsed,
                       run_elapsed / static_cast<double>(result.steps) *
                           static_cast<double>(schedule.total_steps() - result.steps)});
    }
    const double train_time = now_s() - t_epoch;
    double time_max[3] = {times.data, times.compute, times.allreduce};
    comm.allreduce_max(time_max, 3);  // the slowest rank sets the pace
    result.train_loss = loss_sum / static_cast<double>(epoch_samples);
    result.train_acc = num_classes > 0 ? correct_sum / static_cast<double>(epoch_samples) : kNaN;

    const double t_eval = now_s();
    EpochMetrics em{{"train_loss", result.train_loss}, {"train_acc", result.train_acc}};
    if (s.val_reader) {
      const EvalResult v = evaluate_split(s.model, *s.val_reader, num_classes, comm, s.targets, plan.val_rows);
      result.val_loss = em["val_loss"] = v.loss;
      result.val_acc = em["val_acc"] = v.accuracy;
    }
    if (s.test_reader) {
      const EvalResult t = evaluate_split(s.model, *s.test_reader, num_classes, comm, s.targets);
      result.eval_loss = em["test_loss"] = t.loss;
      result.eval_acc = em["test_acc"] = t.accuracy;
    } else if (s.val_reader) {
      result.eval_loss = result.val_loss;
      result.eval_acc = result.val_acc;
    }
    const double eval_time = now_s() - t_eval;
    result.epochs_done = epoch + 1;
    result.time_s = now_s() - t_start;

    bool reached_now = false;
    if (plan.target && !result.target_reached && em.count(plan.target->metric) &&
        plan.target->reached(em[plan.target->metric])) {
      reached_now = result.target_reached = true;
      result.target_epoch = epoch + 1;
      result.target_step = result.steps;
      result.target_samples = result.samples;
      result.target_time_s = result.time_s;
    }
    const bool stop_early = early && early->update(epoch + 1, em[early->metric()]);
    if (early) {
      result.best_epoch = early->best_epoch();
      result.best_value = early->best_value();
    }

    const double samples_per_s = static_cast<double>(epoch_samples) / train_time;
    std::string line = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c.epochs) + "  train loss " +
                       fmt("%.4f", result.train_loss);
    if (num_classes > 0) line += " acc " + fmt("%.4f", result.train_acc);
    for (const char* split : {"val", "test"}) {
      const std::string sp = split;
      if (!em.count(sp + "_loss")) continue;
      line += "  " + sp + " loss " + fmt("%.4f", em[sp + "_loss"]);
      if (num_classes > 0) line += " acc " + fmt("%.4f", em[sp + "_acc"]);
    }
    line += "  lr " + fmt("%.4g", lr) + "  B " + std::to_string(b_epoch) + "  " + fmt("%.1f", train_time) + "s  " +
            fmt("%.0f", samples_per_s) + " samples/s";
    if (reached_now) line += "  [target " + plan.target->text + " reached]";
    progress.println(line);
    if (root) {
      JsonObject m;
      m.add("type", "epoch").add("epoch", epoch + 1).add("step", result.steps).add("samples", result.samples)
          .add("lr", lr).add("global_batch", b_epoch).add("steps_in_epoch", steps)
          .add("train_loss", result.train_loss).add("train_acc", result.train_acc);
      for (const char* k : {"val_loss", "val_acc", "test_loss", "test_acc"})
        if (em.count(k) || std::string(k).starts_with("test")) m.add(k, em.count(k) ? em[k] : kNaN);
      m.add("time_s", result.time_s).add("epoch_time_s", train_time).add("samples_per_s", samples_per_s)
          .add("time_data_s", time_max[0]).add("time_compute_s", time_max[1]).add("time_allreduce_s", time_max[2])
          .add("eval_time_s", eval_time);
      if (plan.target) m.add("target_reached", result.target_reached);
      metrics.write(m);
    }
    if (reached_now && c.stop_at_target) {
      result.stop_reason = "target";
      break;
    }
    if (stop_early) {
      result.stop_reason = "early_stop";
      if (root)
        std::printf("early stop: %s has not improved for %lld epochs; best epoch %lld (%s %.4f)\n",
                    early->metric().c_str(), c.early_stop_patience, early->best_epoch(), early->metric().c_str(),
                    early->best_value());
      break;
    }
  }
  if (root) {
    std::printf("done: %lld epochs, %lld steps, %.1fs, %.0f samples/s overall", result.epochs_done, result.steps,
                result.time_s, static_cast<double>(result.samples) / result.time_s);
    if (num_classes > 0 && (s.test_reader || s.val_reader)) std::printf(", final acc %.4f", result.eval_acc);
    std::printf("\n");
    if (plan.target) {
      if (result.target_reached)
        std::printf("target %s reached after epoch %lld: %lld steps, %lld samples, %.1fs\n", plan.target->text.c_str(),
                    result.target_epoch, result.target_step, result.target_samples, result.target_time_s);
      else
        std::printf("target %s not reached in %lld epochs\n", plan.target->text.c_str(), result.epochs_done);
    }
    JsonObject m;
    m.add("type", "summary").add("stop_reason", result.stop_reason).add("epochs", result.epochs_done)
        .add("steps", result.steps).add("samples", result.samples).add("time_s", result.time_s)
        .add("train_loss", result.train_loss).add("val_loss", result.val_loss).add("val_acc", result.val_acc)
        .add("test_loss", s.test_reader ? result.eval_loss : kNaN).add("test_acc", s.test_reader ? result.eval_acc : kNaN);
    if (early) m.add("best_epoch", result.best_epoch).add("best_metric", early->metric()).add("best_value", result.best_value);
    if (plan.target) {
      m.add("target", plan.target->text).add("target_reached", result.target_reached);
      if (result.target_reached)
        m.add("target_epoch", result.target_epoch).add("target_step", result.target_step)
            .add("target_samples", result.target_samples).add("target_time_s", result.target_time_s);
    }
    metrics.write(m);
  }
  result.params.assign(arena.params(), arena.params() + arena.param_count());
  return result;
}

}  // namespace mpitrain
