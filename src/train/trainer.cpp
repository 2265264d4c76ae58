#include "mpitrain/train/trainer.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>

#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/core/clock.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/data/sampler.hpp"
#include "mpitrain/io/json_lines.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/optim/optimizer.hpp"
#include "mpitrain/train/checkpointer.hpp"
#include "mpitrain/train/evaluation.hpp"
#include "mpitrain/train/noise_scale.hpp"
#include "mpitrain/train/progress.hpp"
#include "mpitrain/train/run_plan.hpp"
#include "mpitrain/train/step.hpp"
#include "mpitrain/train/watchdog.hpp"

namespace mpitrain {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Readers and buffers of one run, sized once before the first step.
struct RunState {
  RunState(const Config& c, const RunPlan& plan, const Comm& comm, long long bucket_bytes)
      : model(c.model, c.activation, plan.capacity),
        step(model, *plan.data, comm, plan.data->num_classes(), plan.capacity, bucket_bytes, c.prefetch),
        targets(plan.capacity, plan.data->split("train").y_width),
        sampler(plan.train_count, c.global_batch, c.drop_last, c.seed, plan.train_rows) {
    model.init(c.seed);  // the same seed on every rank: identical weights, no broadcast needed
    optimizer = make_optimizer(c.optim, model.arena());
    if (plan.val_split == "train") val_reader.emplace(*plan.data, "train", plan.capacity);
    if (plan.val_split == "val") val_reader.emplace(*plan.data, "val", plan.capacity);
    if (plan.eval_test) test_reader.emplace(*plan.data, "test", plan.capacity);
  }
  Model model;
  GradientStep step;
  std::unique_ptr<Optimizer> optimizer;
  std::optional<SplitReader> val_reader, test_reader;
  TargetBuffers targets;  // for evaluation
  EpochSampler sampler;
};

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

// One line per run for sweep tools: <run-dir>/summary.json (also for runs that diverged).
void write_run_summary(const Config& c, const JsonObject& summary) {
  if (c.run_dir.empty()) return;
  const std::string path = (std::filesystem::path(c.run_dir) / "summary.json").string();
  if (std::FILE* f = std::fopen(path.c_str(), "w")) {
    std::fprintf(f, "%s\n", summary.str().c_str());
    std::fclose(f);
  }
}

[[noreturn]] void report_divergence(const Config& c, const Comm& comm, MetricsWriter& metrics, const StepPosition& pos, double lr,
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
    JsonObject summary;
    summary.add("type", "summary").add("stop_reason", "diverged").add("ranks", comm.size())
        .add("global_batch", pos.global_batch).add("lr", lr).add("epochs", pos.epoch + 1)
        .add("steps", pos.global_step + 1).add("target_reached", false);
    write_run_summary(c, summary);
  }
  throw ReportedError(kExitDiverged);
}

// The closing lines on stdout and the metrics summary line (rank 0).
void print_summary(const Config& c, const RunPlan& plan, const TrainResult& r, const EarlyStopping* early,
                   bool has_test, bool show_acc, int ranks, double noise_scale, MetricsWriter& metrics) {
  std::printf("done: %lld epochs, %lld steps, %.1fs, %.0f samples/s overall", r.epochs_done, r.steps, r.time_s,
              static_cast<double>(r.samples) / r.time_s);
  if (show_acc) std::printf(", final acc %.4f", r.eval_acc);
  std::printf("\n");
  if (plan.target) {
    if (r.target_reached)
      std::printf("target %s reached after epoch %lld: %lld steps, %lld samples, %.1fs\n", plan.target->text.c_str(),
                  r.target_epoch, r.target_step, r.target_samples, r.target_time_s);
    else
      std::printf("target %s not reached in %lld epochs\n", plan.target->text.c_str(), r.epochs_done);
  }
  std::fflush(stdout);
  JsonObject m;
  m.add("type", "summary").add("stop_reason", r.stop_reason).add("ranks", ranks).add("global_batch", c.global_batch)
      .add("lr", plan.schedule->scaled_rate(c.global_batch)).add("noise_scale", noise_scale)
      .add("samples_per_s", static_cast<double>(r.samples) / r.time_s)
      .add("epochs", r.epochs_done).add("steps", r.steps)
      .add("samples", r.samples).add("time_s", r.time_s).add("train_loss", r.train_loss).add("val_loss", r.val_loss)
      .add("val_acc", r.val_acc).add("test_loss", has_test ? r.eval_loss : kNaN)
      .add("test_acc", has_test ? r.eval_acc : kNaN);
  if (early) m.add("best_epoch", r.best_epoch).add("best_metric", early->metric()).add("best_value", r.best_value);
  if (plan.target) {
    m.add("target", plan.target->text).add("target_reached", r.target_reached);
    if (r.target_reached)
      m.add("target_epoch", r.target_epoch).add("target_step", r.target_step).add("target_samples", r.target_samples)
          .add("target_time_s", r.target_time_s);
  }
  metrics.write(m);
  write_run_summary(c, m);
}

}  // namespace

TrainResult run_training(const Config& c, const Comm& comm) {
  const bool root = comm.rank() == 0;
  Watchdog watchdog(comm.rank(), c.stall_timeout_s);
  // Everything a user can get wrong is found here, before the first step, and
  // reported once by rank 0 (Comm::collective_check).
  RunPlan plan;
  MetricsWriter metrics;
  comm.collective_check([&] { plan = make_run_plan(c, comm); });
  const Placement place = configure_threads(comm, c.threads);  // before the first BLAS call
  // Without overlap, one all-reduce after backward (bucket size 0) is the cheapest.
  const bool overlap =
      overlap_enabled(c.overlap, place.node_count, place.ranks_on_node, place.threads_per_rank, place.cores_on_node);
  RunState s(c, plan, comm, overlap ? c.bucket_bytes : 0);
  TrainProgress pr;  // the loop's state: exactly what a checkpoint saves
  if (!c.resume.empty()) pr = restore_checkpoint(c, plan, s.model, *s.optimizer, comm);
  comm.collective_check([&] {
    if (!root) return;
    if (!c.run_dir.empty() && c.resume.empty()) write_run_dir(c);
    const bool append = !c.resume.empty();  // a resumed run continues its metrics file
    if (!c.metrics_path().empty()) metrics = MetricsWriter(c.metrics_path(), append);
  });
  const int num_classes = plan.data->num_classes();
  const LrSchedule& schedule = *plan.schedule;
  Arena& arena = s.model.arena();
  Checkpointer checkpoints(c, plan, comm);
  if (root) {
    print_run_header(c, comm, place, plan, s.model);
    const GradientReducer& reducer = s.step.reducer();
    if (comm.size() > 1)
      std::printf("gradient all-reduce: %s\n",
                  reducer.overlaps() ? (std::to_string(reducer.bucket_count()) +
                                        " buckets, reduced during backward on a communication thread").c_str()
                                     : ("one all-reduce after backward (--overlap " + c.overlap + ")").c_str());
    JsonObject header = run_header_json(c, comm, place, plan, s.model);
    header.add("allreduce_buckets", reducer.bucket_count()).add("allreduce_overlap", reducer.overlaps());
    metrics.write(header);
  }
  const bool live = c.progress == "live" || (c.progress == "auto" && stdout_is_terminal());
  Progress progress(root, c.progress != "none", live, c.progress_interval_s);
  std::optional<EarlyStopping> early;
  if (c.early_stop_patience > 0) {
    early.emplace(c.early_stop_metric, c.early_stop_patience, c.early_stop_min_delta);
    if (pr.best_epoch > 0) early->restore(pr.best_epoch, pr.best_value);
  }
  // The best model is kept by the validation metric (the early-stopping one if set).
  const std::string best_metric = early ? early->metric() : "val_loss";
  std::optional<EarlyStopping> best_tracker;
  if (!plan.val_split.empty() && checkpoints.enabled()) best_tracker.emplace(best_metric, 0, 0.0);
  if (best_tracker && pr.best_ckpt_epoch > 0) best_tracker->restore(pr.best_ckpt_epoch, pr.best_ckpt_value);

  NoiseScaleEstimator noise(c.noise_ema_decay);
  noise.restore(pr.noise);  // a resumed run continues its estimate (a fresh run: the empty state)
  TrainResult result;
  result.val_loss = result.val_acc = kNaN;
  const double t_start = now_s() - pr.elapsed_s;  // a resumed run keeps counting its training time
  auto snapshot = [&] {
    pr.optimizer_steps = s.optimizer->step_count();
    pr.previous_lr = s.optimizer->previous_lr();
    pr.elapsed_s = now_s() - t_start;
    pr.noise = noise.state();
    if (best_tracker) {
      pr.best_ckpt_epoch = best_tracker->best_epoch();
      pr.best_ckpt_value = best_tracker->best_value();
    }
    return pr;
  };
  // Exact evaluation of the validation and test splits (collective); fills em and result.
  auto evaluate_now = [&](EpochMetrics& em) {
    s.step.drain();  // HDF5 is not thread-safe: no prefetch read may run now
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
  };
  // Records the first time the target holds; true if that is now.
  auto check_target = [&](EpochMetrics& em, long long epoch, double time_s) {
    if (!plan.target || pr.target_epoch != 0 || !em.count(plan.target->metric) ||
        !plan.target->reached(em[plan.target->metric]))
      return false;
    pr.target_epoch = epoch + 1;
    pr.target_step = pr.global_step;
    pr.target_samples = pr.samples;
    pr.target_time_s = time_s;
    return true;
  };
  if (pr.global_step == 0) pr.first_loss = kNaN;
  const long long first_epoch = pr.epoch;
  bool stop_at_target_now = false;
  for (long long epoch = first_epoch; epoch < c.epochs; ++epoch) {
    const long long steps = schedule.steps_in_epoch(epoch);
    const long long b_epoch = batch_at_epoch(plan.phases, epoch);
    s.sampler.set_global_batch(b_epoch);
    s.sampler.start_epoch(epoch);
    pr.epoch = epoch;
    pr.global_batch = b_epoch;
    const double t_epoch = now_s();
    StepTimes times;
    double lr = 0, mid_eval_s = 0;
    const long long resumed_samples = pr.epoch_samples;  // for this epoch's throughput
    for (long long step = pr.step_in_epoch; step < steps; ++step) {
      const StepPosition pos = schedule.position(epoch, step);
      watchdog.beat(Watchdog::Phase::kCompute, epoch + 1, step + 1);
      maybe_test_stall(comm.rank(), pos.global_step + 1);
      const auto b = static_cast<long long>(s.sampler.batch(step).size());
      const auto shard = s.sampler.shard(step, comm.size(), comm.rank());
      const auto next_shard =
          step + 1 < steps ? s.sampler.shard(step + 1, comm.size(), comm.rank()) : std::span<const std::int64_t>{};
      watchdog.beat(Watchdog::Phase::kAllreduce, epoch + 1, step + 1);  // the all-reduce starts within backward
      const StepSums sums = s.step.run(shard, b, next_shard, times);
      watchdog.beat(Watchdog::Phase::kCompute, epoch + 1, step + 1);
      const double t_update = now_s();

      const double step_loss = sums.loss / static_cast<double>(b);
      const double grad_norm = l2_norm(arena.grads(), arena.param_count());
      if (sums.contributors > 0)
        noise.update(sums.small_sq_mean, sums.inv_small_mean, static_cast<double>(b), grad_norm * grad_norm);
      lr = schedule.lr_at(pos);
      if (pos.global_step == 0) pr.first_loss = step_loss;
      if (!std::isfinite(step_loss) || !std::isfinite(grad_norm))
        report_divergence(c, comm, metrics, pos, lr, step_loss, grad_norm, "the loss or gradient is not finite");
      if (c.divergence_factor > 0 && pr.first_loss > 0 && step_loss > c.divergence_factor * pr.first_loss)
        report_divergence(c, comm, metrics, pos, lr, step_loss, grad_norm,
                          "the loss " + fmt("%.4g", step_loss) + " exceeds " + fmt("%g", c.divergence_factor) +
                              " x the first step's " + fmt("%.4g", pr.first_loss));
      s.optimizer->step(arena, lr);
      times.compute += now_s() - t_update;

      pr.epoch_loss_sum += sums.loss;
      pr.epoch_correct_sum += sums.correct;
      pr.epoch_samples += b;
      pr.samples += b;
      pr.step_in_epoch = step + 1;
      ++pr.global_step;
      if (root && c.metrics_every_steps > 0 && pr.global_step % c.metrics_every_steps == 0) {
        JsonObject m;
        m.add("type", "step").add("epoch", epoch + 1).add("step", pr.global_step).add("samples", pr.samples)
            .add("lr", lr).add("global_batch", b).add("loss", step_loss)
            .add("acc", num_classes > 0 ? sums.correct / static_cast<double>(b) : kNaN)
            .add("grad_norm", grad_norm).add("noise_scale", noise.b_simple());
        metrics.write(m);
      }
      if (step + 1 < steps && checkpoints.due_after_step(pr.global_step)) {
        watchdog.beat(Watchdog::Phase::kCheckpoint, epoch + 1, step + 1);
        s.step.drain();  // no HDF5 read may run while the checkpoint is written
        checkpoints.save(Checkpointer::step_name(epoch, step + 1), snapshot(), s.model, *s.optimizer, metrics, true);
      }
      if (c.eval_every_steps > 0 && pr.global_step % c.eval_every_steps == 0 && step + 1 < steps &&
          (s.val_reader || s.test_reader)) {
        watchdog.beat(Watchdog::Phase::kEvaluate, epoch + 1, step + 1);
        const double t0 = now_s();
        EpochMetrics em;
        evaluate_now(em);
        const bool hit = check_target(em, epoch, now_s() - t_start);
        mid_eval_s += now_s() - t0;
        JsonObject m;
        m.add("type", "eval").add("epoch", epoch + 1).add("step", pr.global_step).add("samples", pr.samples)
            .add("time_s", now_s() - t_start);
        for (const char* k : {"val_loss", "val_acc", "test_loss", "test_acc"})
          if (em.count(k)) m.add(k, em[k]);
        if (plan.target) m.add("target_reached", pr.target_epoch > 0);
        metrics.write(m);
        if (hit)
          progress.println("step " + std::to_string(pr.global_step) + " (epoch " + std::to_string(epoch + 1) +
                           "): " + plan.target->metric + " " + fmt("%.4f", em[plan.target->metric]) + "  [target " +
                           plan.target->text + " reached]");
        if (hit && c.stop_at_target) {
          stop_at_target_now = true;
          break;
        }
      }
      const double elapsed = now_s() - t_epoch - mid_eval_s;
      progress.update({epoch + 1, c.epochs, step + 1, steps, pr.epoch_loss_sum / static_cast<double>(pr.epoch_samples),
                       static_cast<double>(pr.epoch_samples - resumed_samples) / elapsed,
                       (now_s() - t_start) / static_cast<double>(pr.global_step) *
                           static_cast<double>(schedule.total_steps() - pr.global_step)});
    }
    const double train_time = now_s() - t_epoch - mid_eval_s;
    // The time split, max and min over ranks: the slowest rank sets the pace, a gap shows a straggler.
    double time_max[5] = {times.data, times.compute, times.allreduce_wait, times.comm, peak_rss_mb()};
    double time_min[4] = {times.data, times.compute, times.allreduce_wait, times.comm};
    comm.allreduce_max(time_max, 5);
    comm.allreduce_min(time_min, 4);
    result.train_loss = pr.epoch_loss_sum / static_cast<double>(pr.epoch_samples);
    result.train_acc = num_classes > 0 ? pr.epoch_correct_sum / static_cast<double>(pr.epoch_samples) : kNaN;
    const long long epoch_samples = pr.epoch_samples - resumed_samples;

    watchdog.beat(Watchdog::Phase::kEvaluate, epoch + 1, steps);
    const double t_eval = now_s();
    EpochMetrics em{{"train_loss", result.train_loss}, {"train_acc", result.train_acc}};
    evaluate_now(em);
    const double eval_time = now_s() - t_eval + mid_eval_s;
    const double time_s = now_s() - t_start;
    const bool reached_now = check_target(em, epoch, time_s);
    const bool stop_early = early && early->update(epoch + 1, em[early->metric()]);
    if (early) {
      pr.best_epoch = early->best_epoch();
      pr.best_value = early->best_value();
    }
    if (best_tracker) best_tracker->update(epoch + 1, em[best_metric]);  // patience 0: never asks to stop
    const bool new_best = best_tracker && best_tracker->best_epoch() == epoch + 1;

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
    if (noise.updates() > 0) line += "  B_noise " + fmt("%.0f", noise.b_simple());
    if (reached_now) line += "  [target " + plan.target->text + " reached]";
    progress.println(line);
    JsonObject m;
    m.add("type", "epoch").add("epoch", epoch + 1).add("step", pr.global_step).add("samples", pr.samples)
        .add("lr", lr).add("global_batch", b_epoch).add("steps_in_epoch", steps)
        .add("train_loss", result.train_loss).add("train_acc", result.train_acc);
    for (const char* k : {"val_loss", "val_acc", "test_loss", "test_acc"})
      if (em.count(k) || std::string(k).starts_with("test")) m.add(k, em.count(k) ? em[k] : kNaN);
    m.add("time_s", time_s).add("epoch_time_s", train_time).add("samples_per_s", samples_per_s)
        .add("time_data_s", time_max[0]).add("time_data_min_s", time_min[0])
        .add("time_compute_s", time_max[1]).add("time_compute_min_s", time_min[1])
        .add("time_allreduce_s", time_max[2]).add("time_allreduce_min_s", time_min[2])
        .add("time_comm_s", time_max[3]).add("time_comm_min_s", time_min[3])
        .add("comm_hidden_fraction", time_max[3] > 0 ? 1.0 - time_max[2] / time_max[3] : kNaN)
        .add("peak_rss_mb", time_max[4])
        .add("eval_time_s", eval_time).add("noise_scale", noise.b_simple()).add("noise_g2", noise.g2())
        .add("noise_trace_s", noise.trace_s());
    if (plan.target) m.add("target_reached", pr.target_epoch > 0);
    metrics.write(m);
    checkpoints.set_last_metrics(m.str());

    // The next epoch starts from a clean slate; checkpoints written now resume there.
    pr.epoch = epoch + 1;
    pr.step_in_epoch = 0;
    pr.epoch_loss_sum = pr.epoch_correct_sum = 0;
    pr.epoch_samples = 0;
    watchdog.beat(Watchdog::Phase::kCheckpoint, epoch + 1, steps);
    if (checkpoints.due_at_epoch_end(epoch + 1))
      checkpoints.save(Checkpointer::epoch_name(epoch + 1), snapshot(), s.model, *s.optimizer, metrics, true);
    if (new_best) checkpoints.save("best.h5", snapshot(), s.model, *s.optimizer, metrics, false);
    result.epochs_done = epoch + 1;
    if ((reached_now || stop_at_target_now) && c.stop_at_target) {
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
  if (checkpoints.enabled()) checkpoints.save("final.h5", snapshot(), s.model, *s.optimizer, metrics, false);
  result.steps = pr.global_step;
  result.samples = pr.samples;
  result.time_s = now_s() - t_start;
  result.epochs_done = std::max(result.epochs_done, pr.epoch);
  result.best_epoch = pr.best_epoch;
  result.best_value = pr.best_value;
  result.target_reached = pr.target_epoch > 0;
  result.target_epoch = pr.target_epoch;
  result.target_step = pr.target_step;
  result.target_samples = pr.target_samples;
  result.target_time_s = pr.target_time_s;
  if (root) print_summary(c, plan, result, early ? &*early : nullptr, s.test_reader.has_value(),
                          num_classes > 0 && (s.test_reader || s.val_reader), comm.size(), noise.b_simple(), metrics);
  result.params.assign(arena.params(), arena.params() + arena.param_count());
  return result;
}

}  // namespace mpitrain
