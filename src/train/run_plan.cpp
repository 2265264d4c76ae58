#include "mpitrain/train/run_plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <unistd.h>

#include "mpitrain/comm/exact_sum.hpp"  // kMaxUnits
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/data/sampler.hpp"

namespace mpitrain {
namespace {

constexpr int kMinEvalRows = 256;  // without --micro-batch, evaluation reads at least this many rows at once

// The metrics file must never clobber an input: refuse the data file itself
// (also through a symlink) and any existing HDF5 file.
void check_metrics_path(const Config& c) {
  const std::string path = c.log.metrics_path();
  if (path.empty()) return;
  std::error_code ec;
  if (std::filesystem::equivalent(path, c.data, ec))
    throw UserError("--metrics '" + path + "' is the data file: choose another path, e.g. runs/<name>.jsonl");
  // Stat only: opening a FIFO for writing waits for a reader forever.
  if (const auto st = std::filesystem::status(path, ec);
      std::filesystem::is_fifo(st) || std::filesystem::is_socket(st))
    throw UserError("--metrics '" + path + "' is a FIFO or socket: choose a file path, e.g. runs/<name>.jsonl");
  if (std::filesystem::is_regular_file(path, ec) && H5Fis_hdf5(path.c_str()) > 0)
    throw UserError("--metrics '" + path + "' is an existing HDF5 file: choose a .jsonl path");
}

// A run directory belongs to one run: never write into another run's files.
void check_run_dir(const Config& c) {
  if (c.log.run_dir.empty() || !c.checkpoint.resume.empty()) return;  // resuming continues the run in its own directory
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(c.log.run_dir, ec) && !fs::is_directory(c.log.run_dir, ec))
    throw UserError("--run-dir '" + c.log.run_dir + "' exists and is not a directory: choose a new path");
  if (fs::exists(fs::path(c.log.run_dir) / "metrics.jsonl", ec) || fs::exists(fs::path(c.log.run_dir) / "config.ini", ec))
    throw UserError("--run-dir '" + c.log.run_dir + "' already holds a run: choose a new directory");
}

// Where rank 0 will write (checkpoints, metrics) must be writable: found
// now, not after the first epoch. A path that does not exist yet is checked
// at its nearest existing parent, which must be a writable directory.
void check_writable_dir(const std::string& dir, const std::string& option) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path at = fs::absolute(dir, ec);
  while (!at.empty() && !fs::exists(fs::status(at, ec)) && at.has_parent_path() && at.parent_path() != at)
    at = at.parent_path();
  if (!fs::is_directory(fs::status(at, ec)))
    throw UserError(option + " '" + dir + "': '" + at.string() + "' is not a directory: choose a directory path");
  if (access(at.c_str(), W_OK | X_OK) != 0)
    throw UserError(option + " '" + dir + "': '" + at.string() + "' is not writable: choose a writable directory");
}

void check_output_paths(const Config& c) {
  if (!c.checkpoint_path().empty())
    check_writable_dir(c.checkpoint_path(), c.checkpoint.dir.empty() ? "--run-dir" : "--checkpoint-dir");
  const std::string metrics = c.log.metrics_path();
  if (!metrics.empty() && c.log.run_dir.empty()) {
    const auto parent = std::filesystem::path(metrics).parent_path();
    check_writable_dir(parent.empty() ? "." : parent.string(), "--metrics");
  }
  if (!c.log.run_dir.empty()) check_writable_dir(c.log.run_dir, "--run-dir");
}

void check_model_fits_data(const Config& c, const DatasetFile& data) {
  const SplitInfo& train = data.split("train");
  const ModelSummary model = summarize_model(c.model, c.activation);
  if (model.input.size() != train.x_width)
    throw UserError("--model input " + model.input.text() + " (" + std::to_string(model.input.size()) +
                    " values) does not match the data's " + std::to_string(train.x_width) + " features per row (" +
                    train.shape.text() + "): start --model with " + train.shape.text());
  // Same size, different map (e.g. 28x28x1 for 1x28x28): the rows would be read in the wrong order.
  if (!model.input.is_flat() && !train.shape.is_flat() && model.input != train.shape)
    throw UserError("--model input " + model.input.text() + " does not match the data's images of " +
                    train.shape.text() + " (CxHxW): start --model with " + train.shape.text());
  if (!model.output().is_flat())
    throw UserError("--model ends with a " + model.output().text() + " map: end it with dense:N (or gap) so it gives "
                    "one value per class");
  const int want_out = data.num_classes() > 0 ? data.num_classes() : train.y_width;
  if (model.output().size() != want_out)
    throw UserError("--model output width " + std::to_string(model.output().size()) + " does not match the data's " +
                    std::to_string(want_out) + (data.num_classes() > 0 ? " classes" : " targets") +
                    ": make the last layer of --model give " + std::to_string(want_out));
}

// Holds out round(N * fraction) rows of /train, chosen by the seed alone.
void hold_out_validation(const Config& c, long long n, RunPlan& p) {
  const auto n_val = static_cast<long long>(std::llround(static_cast<double>(n) * c.eval.val_fraction));
  if (n_val < 1 || n_val >= n)
    throw UserError("--val-fraction " + std::to_string(c.eval.val_fraction) + " of " + std::to_string(n) +
                    " training rows leaves " + std::to_string(n_val) + " for validation and " +
                    std::to_string(n - n_val) + " for training: both need at least one row");
  auto perm = random_permutation(n, stream_key(c.seed, 0x76616c /* "val" */));
  p.val_rows.assign(perm.end() - n_val, perm.end());
  p.train_rows.assign(perm.begin(), perm.end() - n_val);
  std::sort(p.val_rows.begin(), p.val_rows.end());
  std::sort(p.train_rows.begin(), p.train_rows.end());
}

// Which rows train and which are evaluated: --val-fraction's held-out rows
// or the file's /val, and whether /test is evaluated.
void plan_splits(const Config& c, RunPlan& p) {
  const long long n = p.data->split("train").rows;
  p.train_count = n;
  if (c.eval.val_fraction > 0) {
    if (p.data->has_split("val"))
      throw UserError("'" + c.data + "' has a /val split already: drop --val-fraction or use a file without /val");
    hold_out_validation(c, n, p);
    p.train_count = static_cast<long long>(p.train_rows.size());
    p.val_split = "train";
  } else if (p.data->has_split("val") && p.data->split("val").rows > 0) {
    p.val_split = "val";
  }
  if (c.eval.split == "val" && p.val_split.empty())
    throw UserError("'" + c.data + "' has no /val split: add --val-fraction F, or pass --eval-split test or none");
  if (c.eval.split == "test" && !p.data->has_split("test"))
    throw UserError("'" + c.data + "' has no /test split: pass --eval-split none or another split");
  if (c.eval.split == "none") p.val_split.clear();
  p.eval_test = c.eval.split == "test" && p.data->split("test").rows > 0;
}

constexpr long long kMaxSteps = 1LL << 53;

// Every global batch the run may step at (the batch schedule's, the batch
// changes', and with --global-batch auto every candidate), each checked
// against the data and the units; sets the phases, changes, candidates and
// the largest shard. Returns them all.
std::vector<long long> plan_batches(const Config& c, RunPlan& p, const Comm& comm) {
  p.phases = parse_batch_schedule(c.batch_schedule_text, c.global_batch);
  p.batch_changes = parse_batch_changes(c.batch_adapt.changes_text);
  if (c.batch_adapt.automatic)
    p.batch_candidates = batch_candidates({c.batch_adapt.range_min, c.batch_adapt.range_max});
  // The batches an option names, and which option named it.
  std::vector<std::pair<long long, std::string>> named;
  for (const auto& phase : p.phases)
    named.emplace_back(phase.global_batch, phase.from_epoch == 0 ? "--global-batch" : "--batch-schedule batch");
  for (const auto& change : p.batch_changes) named.emplace_back(change.global_batch, "--batch-changes batch");
  if (c.batch_adapt.automatic) named.emplace_back(c.batch_adapt.range_max, "--batch-range maximum");
  std::vector<long long> may_run{c.global_batch};
  for (const auto& [batch, option] : named) {
    if (batch > p.train_count)
      throw UserError(option + " " + std::to_string(batch) + " is larger than the training set (" +
                      std::to_string(p.train_count) + " rows): choose at most " + std::to_string(p.train_count));
    if (c.step.deterministic && unit_count(batch, c.step.unit_rows) > kMaxUnits)
      throw UserError(option + " " + std::to_string(batch) + " has more than " + std::to_string(kMaxUnits) +
                      " --deterministic units: raise --deterministic-unit");
    p.max_shard = std::max(p.max_shard, max_shard_rows(batch, comm.size(), c.unit_rows()));
    may_run.push_back(batch);
  }
  may_run.insert(may_run.end(), p.batch_candidates.begin(), p.batch_candidates.end());
  // The step counter and the schedule's positions must stay exact: at most
  // 2^53 steps (doubles count them exactly), far beyond any real run.
  long long most_steps = 1;
  for (const auto& phase : p.phases)
    most_steps = std::max(most_steps, steps_per_epoch(p.train_count, phase.global_batch, false));
  if (c.epochs > kMaxSteps / most_steps)
    throw UserError("--epochs " + std::to_string(c.epochs) + " at " + std::to_string(most_steps) +
                    " steps per epoch is more than 2^53 steps: choose at most " + std::to_string(kMaxSteps / most_steps) +
                    " epochs");
  return may_run;
}

// The epochs the loop runs, and the options of the schedule of its steps
// (and rates, but with AdaScale, whose own schedule counts scale-invariant
// iterations and whose epochs are bounded by the batch in `may_run` that
// needs the most).
ScheduleOptions plan_epochs(const Config& c, RunPlan& p, const std::vector<long long>& may_run) {
  ScheduleOptions steps_only = c.schedule;
  p.epochs = c.epochs;
  if (c.schedule.scaling == LrScaling::kAdaScale) {
    p.adascale = std::make_unique<AdaScaleSchedule>(c.schedule, p.train_count, c.drop_last);
    const long long min_batch = *std::min_element(may_run.begin(), may_run.end());
    if (static_cast<double>(c.epochs) * static_cast<double>(p.adascale->reference_steps_per_epoch()) *
            std::max(1.0, static_cast<double>(c.schedule.ref_batch) / static_cast<double>(min_batch)) >
        static_cast<double>(kMaxSteps))
      throw UserError("--epochs " + std::to_string(c.epochs) + " with --lr-scaling adascale is more than 2^53 steps");
    p.epochs = 0;
    for (long long b : may_run) p.epochs = std::max(p.epochs, p.adascale->max_epochs(b));
    // A batch that changes within an epoch can leave that epoch with fewer
    // iterations than a whole one at either batch: one more epoch covers it.
    if (may_run.size() > 1) ++p.epochs;
    steps_only.epochs = p.epochs;
    steps_only.warmup_epochs = 0;
    steps_only.warmup_steps = 0;
    steps_only.decay = LrDecay::kNone;
  }
  return steps_only;
}

// Rows per forward/backward: the micro-batch or the largest shard, in whole
// --deterministic units.
void plan_capacity(const Config& c, RunPlan& p) {
  const long long max_shard = p.max_shard;
  if (c.micro_batch > 0 && c.micro_batch < max_shard && summarize_model(c.model, c.activation).batch_statistics)
    throw UserError("--micro-batch " + std::to_string(c.micro_batch) + " is smaller than a shard (" +
                    std::to_string(max_shard) + " rows), but batchnorm takes its statistics over the whole global "
                    "batch in one pass: drop --micro-batch, or use more ranks");
  p.capacity = static_cast<int>(c.micro_batch > 0 ? std::min(c.micro_batch, max_shard)
                                                  : std::max<long long>(max_shard, kMinEvalRows));
  if (c.step.deterministic) {  // chunks of whole units (run_plan.hpp)
    const int u = c.step.unit_rows;
    p.capacity = c.micro_batch > 0 && c.micro_batch < max_shard ? p.capacity / u * u : (p.capacity + u - 1) / u * u;
  }
}

// --target and --early-stop-metric name metrics the run evaluates.
void plan_stopping(const Config& c, RunPlan& p) {
  auto needs = [&](const std::string& metric, const std::string& option) {
    if (metric.starts_with("val_") && p.val_split.empty())
      throw UserError(option + " uses " + metric + " but there is no validation split: add --val-fraction F");
    if (metric.starts_with("test_") && !p.eval_test)
      throw UserError(option + " uses " + metric + " but the test split is not evaluated: use --eval-split test");
  };
  if (!c.stop.target.empty()) {
    p.target = parse_target(c.stop.target);
    needs(p.target->metric, "--target");
  }
  if (c.stop.early_stop_patience > 0) needs(c.stop.early_stop_metric, "--early-stop-metric");
}

}  // namespace

RunPlan make_run_plan(const Config& c, const Comm& comm) {
  RunPlan p;
  p.data = std::make_unique<DatasetFile>(c.data);
  check_model_fits_data(c, *p.data);
  plan_splits(c, p);
  const ScheduleOptions steps_only = plan_epochs(c, p, plan_batches(c, p, comm));
  plan_capacity(c, p);
  p.schedule = std::make_unique<LrSchedule>(steps_only, p.phases, p.train_count, c.drop_last);
  if (p.schedule->total_steps() < 1)
    throw UserError("no training steps: with --drop-last every epoch needs at least one full global batch");
  plan_stopping(c, p);
  check_run_dir(c);
  check_metrics_path(c);
  if (comm.rank() == 0) check_output_paths(c);  // rank 0 is the one that writes
  return p;
}

namespace {

// Ranks, nodes, threads, BLAS kernels and hosts.
void print_placement(const Comm& comm, const Placement& place) {
  std::printf("mpitrain %s: %d ranks on %d node(s), %d BLAS thread(s) per rank (%s)\n", MPITRAIN_VERSION,
              comm.size(), place.node_count, place.threads_per_rank, place.how.c_str());
  if (!place.slurm_job_id.empty())
    std::printf("slurm job %s: %s node(s), tasks per node %s, cpus per task %s\n", place.slurm_job_id.c_str(),
                place.slurm_nodes.c_str(), place.slurm_tasks_per_node.c_str(),
                place.slurm_cpus_per_task.empty() ? "(unset)" : place.slurm_cpus_per_task.c_str());
  std::printf("OpenBLAS kernels: %s (%s)\n", place.blas_core.c_str(),
              place.blas_coretype_env.empty() ? "detected"
              : place.blas_pinned ? ("OPENBLAS_CORETYPE=" + place.blas_coretype_env + " set by --deterministic").c_str()
                                  : ("OPENBLAS_CORETYPE=" + place.blas_coretype_env + " in the environment").c_str());
  for (const auto& [host, ranks] : place.hosts) {
    std::printf("  host %s: rank%s", host.c_str(), ranks.size() > 1 ? "s" : "");
    for (size_t i = 0; i < ranks.size(); ++i) std::printf("%s%d", i ? "," : " ", ranks[i]);
    std::printf("\n");
  }
  if (place.ranks_on_machine * place.threads_per_rank > place.cores_on_node)
    std::printf("warning: %d ranks x %d threads exceed the %d cores of a %s\n", place.ranks_on_machine,
                place.threads_per_rank, place.cores_on_node,
                place.ranks_on_machine > place.ranks_on_node ? "machine (its nodes share one kernel)" : "node");
}

// The model's layers, batch norm, augmentation and --deterministic.
void print_model(const Config& c, const Comm& comm, const Model& m) {
  std::printf("model %s (%s), %lld parameters, %.2f MFLOP per sample (training step)\n", m.spec().c_str(),
              activation_name(c.activation), m.param_count(), m.train_flops_per_sample() / 1e6);
  std::fputs(layer_table(m.summary()).c_str(), stdout);
  if (m.uses_batch_statistics())
    std::printf("batch norm: statistics over the global batch (all-reduced in forward and backward), so each "
                "rank's shard runs in one piece and the gradient all-reduce follows backward\n");
  if (c.augment.enabled()) std::printf("augmentation %s per (seed, epoch, row)\n", augment_text(c.augment).c_str());
  if (c.step.deterministic) {
    std::printf("deterministic: units of %d rows computed alike on any rank, exact integer sums across ranks, one BLAS "
                "thread per rank: bitwise the same results for any rank count\n",
                c.step.unit_rows);
    const long long units = unit_count(c.global_batch, c.step.unit_rows);
    if (units < comm.size())
      std::printf("warning: a global batch of %lld rows has %lld units of %d rows, so %lld of the %d ranks have no rows "
                  "to compute: use --deterministic-unit %lld or less to give every rank work\n",
                  c.global_batch, units, c.step.unit_rows, comm.size() - units, comm.size(),
                  std::max(1LL, c.global_batch / comm.size()));
  }
}

// The data and the global batch: its shards, steps, epochs, and how it changes.
void print_batches(const Config& c, const Comm& comm, const RunPlan& p) {
  std::printf("data %s: %lld train rows", c.data.c_str(), p.train_count);
  if (p.val_split == "train") std::printf(", %zu val rows held out of /train", p.val_rows.size());
  if (p.val_split == "val") std::printf(", %lld val rows", p.data->split("val").rows);
  if (p.data->has_split("test") && c.eval.split == "test")
    std::printf(", %lld test rows%s", p.data->split("test").rows, p.eval_test ? "" : " (empty: no evaluation)");
  std::printf("\nglobal batch %lld (up to %lld rows per rank%s), %lld steps per epoch, %s%lld epochs, %lld steps%s\n",
              c.global_batch, max_shard_rows(c.global_batch, comm.size(), c.unit_rows()),
              c.micro_batch > 0 ? (", micro-batches of " + std::to_string(p.capacity)).c_str() : "",
              p.schedule->steps_in_epoch(0), p.adascale ? "at most " : "", p.epochs, p.schedule->total_steps(),
              c.drop_last ? " (last partial batch dropped)" : "");
  if (c.batch_adapt.automatic)
    std::printf("global batch auto: every %lld steps, of %zu batches in [%lld, %lld], the one with the most goodput "
                "(this run's step times x the noise scale's efficiency); it moves for > 5%% more\n",
                c.batch_adapt.every_steps, p.batch_candidates.size(), c.batch_adapt.range_min, c.batch_adapt.range_max);
  if (!p.batch_changes.empty()) {
    std::printf("batch changes:");
    for (const auto& ch : p.batch_changes) std::printf(" after step %lld B=%lld;", ch.at_step, ch.global_batch);
    std::printf("\n");
  }
  if (p.phases.size() > 1) {
    std::printf("batch schedule:");
    for (const auto& ph : p.phases) std::printf(" from epoch %lld B=%lld;", ph.from_epoch + 1, ph.global_batch);
    std::printf(" the rate %s\n", c.schedule.hold_lr_on_batch_change ? "is held" : "follows the scaling rule");
  }
}

// The optimizer and the learning rate: its rule and the whole plan.
void print_rate(const Config& c, const RunPlan& p) {
  const LrSchedule& s = *p.schedule;
  std::printf("%s", optimizer_name(c.optim.kind));
  if (c.optim.kind == OptimizerKind::kSgd || c.optim.kind == OptimizerKind::kLars)
    std::printf(" momentum %g%s", c.optim.momentum, c.optim.nesterov && c.optim.kind == OptimizerKind::kSgd ? " (nesterov)" : "");
  std::printf(", weight decay %g, seed %llu\n", c.optim.weight_decay, static_cast<unsigned long long>(c.seed));
  if (p.adascale) {
    const LrSchedule& ref = p.adascale->reference();
    std::printf("lr %g at ref batch %lld, adascale: x a gain measured every step, in [1, %g] at B=%lld; the run ends "
                "after %.0f scale-invariant iterations (%lld epochs at B=%lld)",
                c.schedule.base_lr, c.schedule.ref_batch,
                static_cast<double>(c.global_batch) / static_cast<double>(c.schedule.ref_batch), c.global_batch,
                p.adascale->total_iterations(), c.epochs, c.schedule.ref_batch);
    if (ref.warmup_total_steps() > 0)
      std::printf(", warmup %lld iterations from %g x", ref.warmup_total_steps(), ref.warmup_start_factor());
  } else {
    std::printf("lr %g at ref batch %lld, %s scaling -> effective lr %g at B=%lld", c.schedule.base_lr,
                c.schedule.ref_batch, lr_scaling_name(c.schedule.scaling), s.scaled_rate(c.global_batch),
                c.global_batch);
    if (s.warmup_total_steps() > 0)
      std::printf(", warmup %lld steps from %g x", s.warmup_total_steps(), s.warmup_start_factor());
  }
  if (c.schedule.decay != LrDecay::kNone) std::printf(", %s decay", lr_decay_name(c.schedule.decay));
  std::printf(p.adascale ? "\nlr plan in scale-invariant iterations (the reference run; x the gain):\n" : "\nlr plan:\n");
  for (const auto& row : (p.adascale ? p.adascale->reference() : s).plan())
    std::printf("  %-16s step %7lld  epoch %7.2f  B %6lld  lr %.6g\n", row.what.c_str(), row.global_step,
                row.epoch_pos, row.global_batch, row.lr);
}

// The target and early stopping.
void print_stopping(const Config& c, const RunPlan& p) {
  if (p.target)
    std::printf("target: %s%s%s\n", p.target->text.c_str(),
                c.stop.target_hold > 1
                    ? (", once it holds at " + std::to_string(c.stop.target_hold) + " evaluations in a row").c_str()
                    : "",
                c.stop.stop_at_target ? " (stop when reached)" : "");
  if (c.stop.early_stop_patience > 0)
    std::printf("early stopping: %s, patience %lld epochs\n", c.stop.early_stop_metric.c_str(), c.stop.early_stop_patience);
}

}  // namespace

void print_run_header(const Config& c, const Comm& comm, const Placement& place, const RunPlan& p,
                      const Model& m) {
  print_placement(comm, place);
  print_model(c, comm, m);
  print_batches(c, comm, p);
  print_rate(c, p);
  print_stopping(c, p);
  std::fflush(stdout);
}

}  // namespace mpitrain
