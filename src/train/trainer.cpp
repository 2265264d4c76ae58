#include "mpitrain/train/trainer.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/comm/placement.hpp"
#include "mpitrain/comm/progress_board.hpp"
#include "mpitrain/core/clock.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/number_text.hpp"
#include "mpitrain/core/vector_math.hpp"
#include "mpitrain/data/sampler.hpp"  // unit_count
#include "mpitrain/nn/model.hpp"
#include "mpitrain/optim/optimizer.hpp"
#include "mpitrain/train/batch_controller.hpp"
#include "mpitrain/train/batch_source.hpp"
#include "mpitrain/train/checkpointer.hpp"
#include "mpitrain/train/evaluation.hpp"
#include "mpitrain/train/memory_plan.hpp"
#include "mpitrain/train/noise_scale.hpp"
#include "mpitrain/train/progress.hpp"
#include "mpitrain/train/run_log.hpp"
#include "mpitrain/train/run_plan.hpp"
#include "mpitrain/train/step.hpp"
#include "mpitrain/train/stop_policy.hpp"
#include "mpitrain/train/watchdog.hpp"

namespace mpitrain {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using Phase = Watchdog::Phase;

// What the steps of one epoch add up to, for its lines.
struct EpochTally {
  StepTimes times;
  double lr = 0;               // the rate of the last step
  double gain = 1;             // --lr-scaling adascale: the gain of the last step
  double mid_eval_s = 0;       // evaluation inside the epoch (not training time)
  long long resumed_samples = 0;  // samples of this epoch done before a resume (not timed here)
  double t_start = 0;
};

// One training run: everything it owns is built once before the first step.
class Training {
 public:
  Training(const Config& c, const Comm& comm);
  TrainResult run();

 private:
  static RunPlan checked_plan(const Config& c, const Comm& comm);
  std::unique_ptr<Optimizer> init_model_and_optimizer();
  RunLog open_log();
  void print_header();

  // How the steps of an epoch ended.
  enum class StepsEnd { kEpoch, kTarget, kIterations };
  StepsEnd run_steps(long long epoch, EpochTally& t);
  long long epoch_batch(long long epoch) const;
  bool eval_due(long long step_rows) const;
  StepPosition position(long long epoch, const Batch& batch) const;
  void adapt_batch(long long epoch, const Batch& batch, double step_s, double allreduce_wait_s);
  double step_rate(const StepPosition& pos, EpochTally& t);
  void update(const StepPosition& pos, const Batch& batch, const StepSums& sums, EpochTally& t);
  bool evaluate_mid_epoch(long long epoch, long long step, EpochTally& t);
  bool end_epoch(long long epoch, const EpochTally& t, StepsEnd how);
  bool goes_on(bool reached_now, StepsEnd how, const StopPolicy::EpochVerdict& verdict);
  void evaluate(EpochMetrics& em);
  [[noreturn]] void diverged(const StepPosition& pos, double lr, double loss, double grad_norm, const std::string& why);
  const TrainProgress& snapshot();
  void finish();
  void print_summary();

  const Config& c_;
  const Comm& comm_;
  const bool root_;
  ProgressBoard board_;   // this node's ranks' progress, for the watchdog's report
  Watchdog watchdog_;
  RunPlan plan_;          // everything fixed before the first step (bad input is found here)
  Placement place_;       // before the first BLAS call
  const int num_classes_;
  Model model_;
  GradientStep step_;
  BatchSource batches_;
  std::unique_ptr<Optimizer> optimizer_;
  RunEvaluation evaluation_;  // validation and test splits, opened before the run directory is written
  Checkpointer checkpoints_;
  TrainProgress pr_;      // the loop's state: exactly what a checkpoint saves
  RunLog log_;            // opened once nothing before the first step can fail
  Progress progress_;
  StopPolicy stop_;
  NoiseScaleEstimator noise_;
  BatchController batch_ctl_;  // --global-batch auto, --batch-changes
  TrainResult result_;
  double t_start_ = 0;
};

RunPlan Training::checked_plan(const Config& c, const Comm& comm) {
  // Everything a user can get wrong is found here, before the first step, and
  // reported once by rank 0 (Comm::collective_check).
  RunPlan plan;
  comm.collective_check([&] { plan = make_run_plan(c, comm); });
  return plan;
}

// Threads per rank (before the first BLAS call), then the check that this
// rank's buffers fit in its share of the node, before any is allocated.
Placement placed(const Config& c, const Comm& comm, const RunPlan& plan) {
  // --deterministic: one BLAS thread, so no sgemm depends on how threads split it.
  Placement place = configure_threads(comm, c.step.deterministic ? 1 : c.threads);
  if (c.step.deterministic) place.how = "--deterministic";
  comm.collective_check([&] {
    const MemoryPlan need = plan_rank_memory(summarize_model(c.model, c.activation), plan.capacity,
                                             optimizer_state_buffers(c.optim.kind),
                                             plan.data->split("train").y_width, c.step.prefetch,
                                             c.step.deterministic ? unit_count(plan.max_shard, c.step.unit_rows) : 0);
    check_rank_memory(need, place.ranks_on_machine, c.max_memory_mb);
  });
  return place;
}

// Crops pad with what a stored 0 (the background of an image) becomes after normalization.
AugmentOptions augment_with_fill(AugmentOptions o, const SplitInfo& train) {
  o.fill = static_cast<float>(train.normalized(0.0));
  return o;
}

// Without overlap, one all-reduce after backward (bucket size 0) is the cheapest.
long long bucket_bytes(const StepOptions& o, const Placement& p) {
  const bool overlap = overlap_enabled(o.overlap, p.node_count, p.ranks_on_node, p.threads_per_rank, p.cores_on_node);
  return overlap ? o.bucket_bytes : 0;
}

bool live_progress(const ProgressOptions& o) {
  return o.mode == "live" || (o.mode == "auto" && stdout_is_terminal());
}

Training::Training(const Config& c, const Comm& comm)
    : c_(c),
      comm_(comm),
      root_(comm.rank() == 0),
      board_(comm),
      watchdog_(comm.rank(), c.stall_timeout_s, &board_),
      plan_(checked_plan(c, comm)),
      place_(placed(c, comm, plan_)),
      num_classes_(plan_.data->num_classes()),
      model_(c.model, c.activation, plan_.capacity),
      step_(model_, comm, num_classes_, bucket_bytes(c.step, place_), c.seed, c.unit_rows(), plan_.max_shard),
      batches_({plan_.data.get(), plan_.train_count, plan_.train_rows, c.global_batch, c.drop_last, c.seed,
                plan_.capacity, model_.input(), c.step.prefetch, model_.uses_batch_statistics(), c.unit_rows(),
                augment_with_fill(c.augment, plan_.data->split("train")), model_.input_shape()},
               comm),
      optimizer_(init_model_and_optimizer()),
      evaluation_(*plan_.data, plan_.val_split, plan_.val_rows, plan_.eval_test, plan_.capacity, c.unit_rows(), comm),
      checkpoints_(c.checkpoint, c.checkpoint_path(), checkpoint_meta(c, plan_, comm), comm),
      pr_(checkpoints_.restore(c.data, model_, *optimizer_)),
      progress_(root_, c.progress.mode != "none", live_progress(c.progress), c.progress.interval_s),
      stop_(c.stop, plan_.target, !plan_.val_split.empty() && checkpoints_.enabled(), pr_),
      noise_(c.noise_ema_decay, c.noise_window_samples),
      batch_ctl_(c.batch_adapt, plan_.batch_changes, plan_.batch_candidates, comm.size(), c.unit_rows(),
                 static_cast<double>(c.schedule.ref_batch)) {
  log_ = open_log();  // creates the run directory's files: after everything that can refuse the run
  noise_.restore(pr_.noise);  // a resumed run continues its estimate (a fresh run: the empty state)
  batch_ctl_.restore(checkpoints_.restored_batch_changes());
  if (root_) print_header();
  result_.val_loss = result_.val_acc = kNaN;
  t_start_ = now_s() - pr_.elapsed_s;  // a resumed run keeps counting its training time
}

std::unique_ptr<Optimizer> Training::init_model_and_optimizer() {
  model_.init(c_.seed);  // the same seed on every rank: identical weights, no broadcast needed
  return make_optimizer(c_.optim, model_.arena());
}

RunLog Training::open_log() {
  RunLog log;
  comm_.collective_check([&] {
    if (root_) log = RunLog(c_.log, c_.to_ini(), /*resumed=*/!c_.checkpoint.resume.empty());
  });
  return log;
}

void Training::print_header() {
  print_run_header(c_, comm_, place_, plan_, model_);
  const GradientReducer& reducer = step_.reducer();
  if (comm_.size() > 1)
    std::printf("gradient all-reduce: %s\n",
                reducer.overlaps() ? (std::to_string(reducer.bucket_count()) +
                                      " buckets, reduced during backward on a communication thread").c_str()
                                   : ("one all-reduce after backward (--overlap " + c_.step.overlap + ")").c_str());
  JsonObject header = RunLog::header_json(c_, comm_, place_, plan_, model_);
  header.add("allreduce_buckets", reducer.bucket_count()).add("allreduce_overlap", reducer.overlaps());
  log_.header(header);
}

// The training paragraph of DESIGN.md: every step, each rank takes its shard
// of one global batch, computes local gradients, the gradients are
// all-reduced, and every rank applies the same update; after each epoch,
// exact evaluation, the epoch's lines and a checkpoint.
TrainResult Training::run() {
  const bool resumed_done = plan_.adascale && plan_.adascale->done(pr_.adascale_tau);  // a finished run's checkpoint
  for (long long epoch = pr_.epoch; epoch < plan_.epochs && !resumed_done; ++epoch) {
    const long long b_epoch = epoch_batch(epoch);
    batches_.start_epoch(epoch, b_epoch, pr_.step_in_epoch, pr_.epoch_samples);
    pr_.epoch = epoch;
    pr_.global_batch = b_epoch;
    EpochTally t;
    t.t_start = now_s();
    t.resumed_samples = pr_.epoch_samples;  // for this epoch's throughput
    const StepsEnd how = run_steps(epoch, t);
    if (!end_epoch(epoch, t, how)) break;
  }
  finish();
  return result_;
}

// A mid-epoch evaluation after this step (of step_rows rows, now counted):
// every --eval-every-steps steps, or where the samples pass a multiple of --eval-every-samples.
bool Training::eval_due(long long step_rows) const {
  const EvalOptions& e = c_.eval;
  if (e.every_steps > 0 && pr_.global_step % e.every_steps == 0) return true;
  return e.every_samples > 0 && pr_.samples / e.every_samples > (pr_.samples - step_rows) / e.every_samples;
}

// The batch an epoch starts at: the batch schedule's, or with a batch that
// changes during training the one it has reached (restored on resume).
long long Training::epoch_batch(long long epoch) const {
  if (!batch_ctl_.active()) return batch_at_epoch(plan_.phases, epoch);
  return pr_.global_batch > 0 ? pr_.global_batch : c_.global_batch;
}

// Where a step sits. A batch that changes within epochs is not in the
// schedule's phases; the rate is then AdaScale's, which needs only the batch.
StepPosition Training::position(long long epoch, const Batch& batch) const {
  if (!batch_ctl_.active()) return plan_.schedule->position(epoch, batch.step);
  return {epoch, batch.step, pr_.global_step,
          static_cast<double>(epoch) +
              static_cast<double>(pr_.epoch_samples) / static_cast<double>(plan_.train_count),
          pr_.global_batch};
}

// The steps of one epoch, from where the progress stands, until its end, the
// target (mid-epoch, with --stop-at-target) or AdaScale's last iteration.
// The epoch's steps follow its batch, which --global-batch auto may change.
Training::StepsEnd Training::run_steps(long long epoch, EpochTally& t) {
  const LrSchedule& schedule = *plan_.schedule;
  while (pr_.step_in_epoch < batches_.steps()) {
    const double t_step = now_s();
    const double wait_before = t.times.allreduce_wait;
    const Batch batch = batches_.next();
    const StepPosition pos = position(epoch, batch);
    watchdog_.beat(Phase::kCompute, epoch + 1, batch.step + 1);
    maybe_test_stall(comm_.rank(), pos.global_step + 1);
    watchdog_.beat(Phase::kAllreduce, epoch + 1, batch.step + 1);  // the all-reduce starts within backward
    const StepSums sums = step_.run(batches_, batch, pos.global_step, t.times);
    watchdog_.beat(Phase::kCompute, epoch + 1, batch.step + 1);
    update(pos, batch, sums, t);
    if (plan_.adascale && plan_.adascale->done(pr_.adascale_tau)) return StepsEnd::kIterations;
    if (batch_ctl_.active()) adapt_batch(epoch, batch, now_s() - t_step, t.times.allreduce_wait - wait_before);
    const long long steps = batches_.steps();

    if (batch.step + 1 < steps && checkpoints_.due_after_step(pr_.global_step)) {
      watchdog_.beat(Phase::kCheckpoint, epoch + 1, batch.step + 1);
      batches_.drain();  // no HDF5 read may run while the checkpoint is written
      checkpoints_.save(Checkpointer::step_name(epoch, batch.step + 1), snapshot(), model_, *optimizer_, log_, true);
    }
    if (eval_due(batch.global_rows) && batch.step + 1 < steps && evaluation_.any() &&
        evaluate_mid_epoch(epoch, batch.step, t))
      return StepsEnd::kTarget;
    const double elapsed = now_s() - t.t_start - t.mid_eval_s;
    // What is left, as a fraction of what is done: steps, or AdaScale's iterations.
    const double left = plan_.adascale ? (plan_.adascale->total_iterations() - pr_.adascale_tau) / pr_.adascale_tau
                                       : static_cast<double>(schedule.total_steps() - pr_.global_step) /
                                             static_cast<double>(pr_.global_step);
    progress_.update({epoch + 1, plan_.epochs, batch.step + 1, steps,
                      pr_.epoch_loss_sum / static_cast<double>(pr_.epoch_samples),
                      static_cast<double>(pr_.epoch_samples - t.resumed_samples) / elapsed,
                      (now_s() - t_start_) * left});
  }
  return StepsEnd::kEpoch;
}

// After a step (its wall time and exposed all-reduce): --global-batch auto
// times it and may choose (collective), or --batch-changes' next entry
// applies. A change applies from the next step, within this epoch.
void Training::adapt_batch(long long epoch, const Batch& batch, double step_s, double allreduce_wait_s) {
  // The rows of the busiest rank: the all-reduce makes every rank wait for it.
  batch_ctl_.record_step(pr_.global_step, max_shard_rows(batch.global_rows, comm_.size(), c_.unit_rows()), step_s,
                         allreduce_wait_s);
  const std::optional<BatchDecision> d =
      batch_ctl_.after_step(pr_.global_step, pr_.global_batch, noise_.trace_s(), noise_.g2(), comm_);
  if (!d) return;
  batches_.change_batch(d->to);
  pr_.global_batch = d->to;
  if (!root_) return;
  log_.batch_change({epoch + 1, &*d, pr_.samples, now_s() - t_start_, noise_.b_simple()});
  std::string why;
  if (d->choice)
    why = ": predicted goodput x" + format_number("%.2f", d->choice->goodput / d->choice->current_goodput) +
          " (step " + format_number("%.4f", d->choice->step_s) + " s, efficiency " +
          format_number("%.2f", d->choice->efficiency) + ", noise scale " + format_number("%.0f", noise_.b_simple()) +
          ")";
  progress_.println("step " + std::to_string(pr_.global_step) + ": global batch " + std::to_string(d->from) + " -> " +
                    std::to_string(d->to) + why);
}

// The rate of this step: the schedule's, or with AdaScale the reference
// schedule's at the scale-invariant iteration times the gain measured now
// (the noise estimator has just taken this step's statistics). The gain is
// that of the epoch's global batch, also for its partial last batch (which
// the linear rule, too, runs at the full batch's rate): at B = ref every gain
// is 1 and AdaScale is the reference run, step for step.
double Training::step_rate(const StepPosition& pos, EpochTally& t) {
  if (!plan_.adascale) return plan_.schedule->lr_at(pos);
  t.gain = adascale_gain(noise_.trace_s(), noise_.g2(), static_cast<double>(pos.global_batch),
                         static_cast<double>(c_.schedule.ref_batch));
  const double lr = plan_.adascale->lr_at(pr_.adascale_tau) * t.gain;
  pr_.adascale_tau += t.gain;
  return lr;
}

// After the all-reduce: the noise scale, the divergence check, the update at
// the scheduled rate, and the step's place in the progress.
void Training::update(const StepPosition& pos, const Batch& batch, const StepSums& sums, EpochTally& t) {
  const double t_update = now_s();
  Arena& arena = model_.arena();
  const long long b = batch.global_rows;
  const double step_loss = sums.loss / static_cast<double>(b);
  const double grad_norm = l2_norm(arena.grads(), arena.param_count());
  if (sums.contributors > 0)
    noise_.update(sums.small_sq_mean, sums.inv_small_mean, static_cast<double>(b), grad_norm * grad_norm);
  t.lr = step_rate(pos, t);
  const std::string why = stop_.divergence(pos.global_step, step_loss, grad_norm);
  if (!why.empty()) diverged(pos, t.lr, step_loss, grad_norm, why);
  optimizer_->step(arena, t.lr);
  t.times.compute += now_s() - t_update;

  pr_.epoch_loss_sum += sums.loss;
  pr_.epoch_correct_sum += sums.correct;
  pr_.epoch_samples += b;
  pr_.samples += b;
  pr_.step_in_epoch = batch.step + 1;
  ++pr_.global_step;
  if (root_ && log_.step_due(pr_.global_step))
    log_.step({pos.epoch + 1, pr_.global_step, pr_.samples, t.lr, b, step_loss,
               num_classes_ > 0 ? sums.correct / static_cast<double>(b) : kNaN, grad_norm, noise_.b_simple(),
               sums.contributors > 0 ? sums.small_sq_mean : kNaN,
               sums.contributors > 0 ? 1.0 / sums.inv_small_mean : kNaN,
               plan_.adascale ? std::optional(t.gain) : std::nullopt,
               plan_.adascale ? std::optional(pr_.adascale_tau) : std::nullopt});
}

// --eval-every-steps: evaluates, records the target, writes an eval line.
// Returns true when the run stops here (target reached, --stop-at-target).
bool Training::evaluate_mid_epoch(long long epoch, long long step, EpochTally& t) {
  watchdog_.beat(Phase::kEvaluate, epoch + 1, step + 1);
  const double t0 = now_s();
  EpochMetrics em;
  evaluate(em);
  const bool hit = stop_.check_target(em, epoch, now_s() - t_start_, now_s() - t_start_ - pr_.eval_time_s);
  t.mid_eval_s += now_s() - t0;
  if (root_) {
    EvalRecord r{epoch + 1, pr_.global_step, pr_.samples, now_s() - t_start_, &em, std::nullopt};
    if (stop_.target()) r.target_reached = pr_.target_epoch > 0;
    log_.eval(r);
  }
  if (hit)
    progress_.println("step " + std::to_string(pr_.global_step) + " (epoch " + std::to_string(epoch + 1) +
                      "): " + stop_.target()->metric + " " + format_number("%.4f", em.at(stop_.target()->metric)) +
                      "  [target " + stop_.target()->text + " reached]");
  return hit && stop_.stop_at_target();
}

// Exact evaluation of the validation and test splits (collective); the
// result keeps the latest values (the test split's, else validation's).
void Training::evaluate(EpochMetrics& em) {
  const double t0 = now_s();
  batches_.drain();  // HDF5 is not thread-safe: no prefetch read may run now
  evaluation_.run(model_, num_classes_, comm_, em);
  pr_.eval_time_s += now_s() - t0;
  if (evaluation_.has_val()) {
    result_.val_loss = em.at("val_loss");
    result_.val_acc = em.at("val_acc");
  }
  const char* shown = evaluation_.has_test() ? "test" : "val";
  if (evaluation_.any()) {
    result_.eval_loss = em.at(std::string(shown) + "_loss");
    result_.eval_acc = em.at(std::string(shown) + "_acc");
  }
}

// After the steps of an epoch: the time split, evaluation, the epoch's lines,
// checkpoints and the stop rules. Returns false when the run stops.
bool Training::end_epoch(long long epoch, const EpochTally& t, StepsEnd how) {
  const long long steps = batches_.steps();
  const double train_time = now_s() - t.t_start - t.mid_eval_s;
  // The time split, max and min over ranks: the slowest rank sets the pace, a gap shows a straggler.
  double time_max[5] = {t.times.data, t.times.compute, t.times.allreduce_wait, t.times.comm, peak_rss_mb()};
  double time_min[4] = {t.times.data, t.times.compute, t.times.allreduce_wait, t.times.comm};
  comm_.allreduce_max(time_max, 5);
  comm_.allreduce_min(time_min, 4);
  result_.train_loss = pr_.epoch_loss_sum / static_cast<double>(pr_.epoch_samples);
  result_.train_acc = num_classes_ > 0 ? pr_.epoch_correct_sum / static_cast<double>(pr_.epoch_samples) : kNaN;

  watchdog_.beat(Phase::kEvaluate, epoch + 1, steps);
  const double t_eval = now_s();
  EpochMetrics em{{"train_loss", result_.train_loss}, {"train_acc", result_.train_acc}};
  evaluate(em);
  const double eval_time_s = now_s() - t_eval + t.mid_eval_s;
  const double time_s = now_s() - t_start_;
  const bool reached_now = stop_.check_target(em, epoch, time_s, time_s - pr_.eval_time_s);
  const StopPolicy::EpochVerdict verdict = stop_.end_epoch(epoch, em);

  EpochRecord r{epoch + 1, pr_.global_step, pr_.samples, pr_.global_batch, steps, t.lr, result_.train_loss,
                result_.train_acc, &em, time_s, train_time,
                static_cast<double>(pr_.epoch_samples - t.resumed_samples) / train_time, eval_time_s,
                {time_max[0], time_max[1], time_max[2], time_max[3]},
                {time_min[0], time_min[1], time_min[2], time_min[3]}, time_max[4],
                noise_.b_simple(), noise_.g2(), noise_.trace_s(), std::nullopt,
                plan_.adascale ? std::optional(t.gain) : std::nullopt,
                plan_.adascale ? std::optional(pr_.adascale_tau) : std::nullopt};
  if (stop_.target()) r.target_reached = pr_.target_epoch > 0;
  progress_.println(format_epoch_line(r, plan_.epochs, num_classes_ > 0, noise_.updates() > 0 ? std::optional(noise_.b_simple()) : std::nullopt,
                                      reached_now ? std::optional(stop_.target()->text) : std::nullopt));
  if (root_) checkpoints_.set_last_metrics(log_.epoch(r));

  // The next epoch starts from a clean slate; checkpoints written now resume there.
  pr_.epoch = epoch + 1;
  pr_.step_in_epoch = 0;
  pr_.epoch_loss_sum = pr_.epoch_correct_sum = 0;
  pr_.epoch_samples = 0;
  watchdog_.beat(Phase::kCheckpoint, epoch + 1, steps);
  if (checkpoints_.due_at_epoch_end(epoch + 1))
    checkpoints_.save(Checkpointer::epoch_name(epoch + 1), snapshot(), model_, *optimizer_, log_, true);
  if (verdict.new_best) checkpoints_.save("best.h5", snapshot(), model_, *optimizer_, log_, false);
  result_.epochs_done = epoch + 1;
  return goes_on(reached_now, how, verdict);
}

// Whether training continues after an epoch; if not, result_.stop_reason says why.
bool Training::goes_on(bool reached_now, StepsEnd how, const StopPolicy::EpochVerdict& verdict) {
  if ((reached_now || how == StepsEnd::kTarget) && stop_.stop_at_target()) {
    result_.stop_reason = "target";
    return false;
  }
  if (how == StepsEnd::kIterations) {  // AdaScale: the reference run's iterations are done
    result_.stop_reason = "iterations";
    return false;
  }
  if (verdict.stop_early) {
    result_.stop_reason = "early_stop";
    const EarlyStopping& early = *stop_.early_stopping();
    if (root_)
      std::printf("early stop: %s has not improved for %lld epochs; best epoch %lld (%s %.4f)\n",
                  early.metric().c_str(), stop_.patience(), early.best_epoch(), early.metric().c_str(),
                  early.best_value());
    return false;
  }
  return true;
}

[[noreturn]] void Training::diverged(const StepPosition& pos, double lr, double loss, double grad_norm,
                                     const std::string& why) {
  if (root_) {
    std::fprintf(stderr,
                 "mpitrain: error: training diverged at epoch %lld step %lld (global step %lld): %s, lr %g. "
                 "Lower --lr or lengthen the warmup (--warmup-epochs)\n",
                 pos.epoch + 1, pos.step_in_epoch + 1, pos.global_step + 1, why.c_str(), lr);
    log_.diverged({pos.epoch + 1, pos.global_step + 1, pos.global_batch, comm_.size(), lr, loss, grad_norm, why});
  }
  throw ReportedError(kExitDiverged);
}

// The loop's state as a checkpoint saves it.
const TrainProgress& Training::snapshot() {
  pr_.optimizer_steps = optimizer_->step_count();
  pr_.previous_lr = optimizer_->previous_lr();
  pr_.elapsed_s = now_s() - t_start_;
  pr_.noise = noise_.state();
  stop_.save();
  checkpoints_.set_batch_changes(batch_ctl_.changes_text());
  return pr_;
}

// The final model, the result and the closing lines.
void Training::finish() {
  if (checkpoints_.enabled()) checkpoints_.save("final.h5", snapshot(), model_, *optimizer_, log_, false);
  TrainResult& r = result_;
  r.steps = pr_.global_step;
  r.samples = pr_.samples;
  r.time_s = now_s() - t_start_;
  r.epochs_done = std::max(r.epochs_done, pr_.epoch);
  r.best_epoch = pr_.best_epoch;
  r.best_value = pr_.best_value;
  r.target_reached = pr_.target_epoch > 0;
  r.target_epoch = pr_.target_epoch;
  r.target_step = pr_.target_step;
  r.target_samples = pr_.target_samples;
  r.target_time_s = pr_.target_time_s;
  r.target_train_time_s = pr_.target_train_time_s;
  if (root_) print_summary();
  const Arena& arena = model_.arena();
  r.params.assign(arena.params(), arena.params() + arena.param_count());
}

// The closing lines on stdout and the summary line (rank 0).
void Training::print_summary() {
  const std::optional<Target>& target = stop_.target();
  print_run_summary(result_, num_classes_ > 0 && evaluation_.any(), target);
  log_.summary({&result_, comm_.size(), c_.global_batch, plan_.schedule->scaled_rate(c_.global_batch),
                noise_.b_simple(), evaluation_.has_test(), stop_.early_stopping(), target ? &*target : nullptr,
                plan_.adascale ? std::optional(pr_.adascale_tau) : std::nullopt,
                batch_ctl_.active() ? std::optional(pr_.global_batch) : std::nullopt, batch_ctl_.changes_text()});
}

}  // namespace

TrainResult run_training(const Config& c, const Comm& comm) {
  Training training(c, comm);
  return training.run();
}

}  // namespace mpitrain
