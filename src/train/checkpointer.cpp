#include "mpitrain/train/checkpointer.hpp"

#include <cstdio>

#include "mpitrain/core/clock.hpp"
#include "mpitrain/core/errors.hpp"

namespace mpitrain {
namespace {

// The options that decide which samples form each step and what the state
// means: resuming under different values would not continue the same run.
// In the order --help lists them, so the first difference is reported first.
constexpr const char* kTrajectoryOptions[] = {"activation", "global-batch", "seed",       "drop-last",
                                              "batch-schedule", "optimizer", "val-fraction"};
// Trajectory options added later, with the value a checkpoint written before
// them implies (they did not exist, so the run had them off).
constexpr std::pair<const char*, const char*> kLaterTrajectoryOptions[] = {
    {"augment", "none"},          {"augment-pad", "2"},  {"deterministic", "false"}, {"deterministic-unit", "32"},
    {"batch-range", ""},          {"batch-changes", ""}};

// `then` is what the checkpoint at `path` records, `now` this run; both
// configs go through the same INI reader, so equal options compare equal.
// The checkpoint's values are escaped in messages: a damaged file may hold
// any bytes there (its checksums are verified later, with the tensors).
void check_fits(const CheckpointMeta& now, const CheckpointMeta& then, const std::string& path,
                const std::string& data_path) {
  if (then.model_spec != now.model_spec)
    throw UserError("checkpoint '" + path + "' was written for --model " + printable(then.model_spec) + ", not " +
                    now.model_spec + ": resume with the same model");
  // Options first: a different --val-fraction also shows up as different data,
  // and the option is what the user has to change.
  const auto then_options = parse_ini_entries(then.config_ini);
  const auto now_options = parse_ini_entries(now.config_ini);
  for (const char* key : kTrajectoryOptions) {
    const auto a = then_options.find(key), b = now_options.find(key);
    // Every mpitrain checkpoint records all of them: one that does not was
    // altered (its config is not covered by the checksum), and resuming it
    // could silently change the run.
    if (a == then_options.end() && b != now_options.end())
      throw UserError("checkpoint '" + path + "' does not record --" + key +
                      " in its config: it was altered or is not an mpitrain checkpoint; resume from another one");
    if (a != then_options.end() && b != now_options.end() && a->second != b->second)
      throw UserError("checkpoint '" + path + "' was written with --" + key + " '" + printable(a->second) +
                      "', this run has '" + printable(b->second) + "': resume with the same --" + key +
                      " (it decides the sample order and state)");
  }
  for (const auto& [key, before] : kLaterTrajectoryOptions) {
    const auto a = then_options.find(key), b = now_options.find(key);
    const std::string was = a == then_options.end() ? before : a->second;
    if (b != now_options.end() && was != b->second)
      throw UserError("checkpoint '" + path + "' was written with --" + key + " '" + printable(was) +
                      "', this run has '" + printable(b->second) + "': resume with the same --" + key +
                      " (it decides what the samples are)");
  }
  if (then.train_rows != now.train_rows || then.x_width != now.x_width || then.num_classes != now.num_classes ||
      then.y_width != now.y_width)
    throw UserError("checkpoint '" + path + "' was written for data of " + std::to_string(then.train_rows) +
                    " training rows x " + std::to_string(then.x_width) + " features, " +
                    std::to_string(then.num_classes) + " classes; --data '" + data_path + "' has " +
                    std::to_string(now.train_rows) + " x " + std::to_string(now.x_width) + ", " +
                    std::to_string(now.num_classes) + ": resume on the same data");
}

}  // namespace

CheckpointMeta checkpoint_meta(const Config& c, const RunPlan& plan, const Comm& comm) {
  CheckpointMeta meta;
  meta.version = MPITRAIN_VERSION;
  meta.model_spec = c.model;
  meta.optimizer = optimizer_name(c.optim.kind);
  meta.config_ini = c.to_ini();
  meta.world_size = comm.size();
  meta.train_rows = plan.train_count;
  meta.x_width = plan.data->split("train").x_width;
  meta.num_classes = plan.data->num_classes();
  meta.y_width = plan.data->split("train").y_width;
  meta.seed = c.seed;
  return meta;
}

Checkpointer::Checkpointer(const CheckpointOptions& o, std::string dir, CheckpointMeta meta, const Comm& comm)
    : o_(o), comm_(comm), dir_(std::move(dir)), meta_(std::move(meta)), last_timed_s_(now_s()) {}

bool Checkpointer::due_after_step(long long global_steps_done) {
  if (!enabled()) return false;
  bool due = o_.every_steps > 0 && global_steps_done % o_.every_steps == 0;
  if (o_.every_s > 0) {
    int timed = comm_.rank() == 0 && now_s() - last_timed_s_ >= o_.every_s ? 1 : 0;
    comm_.broadcast(&timed, sizeof timed, 0);  // rank 0's clock decides for everyone
    due = due || timed != 0;
  }
  return due;
}

bool Checkpointer::due_at_epoch_end(long long epochs_done) const {
  return enabled() && o_.every_epochs > 0 && epochs_done % o_.every_epochs == 0;
}

std::string Checkpointer::epoch_name(long long epochs_done) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "ckpt-e%04lld.h5", epochs_done);
  return buf;
}

std::string Checkpointer::step_name(long long epoch, long long step_in_epoch) {
  // Sorts before the same epoch's end-of-epoch file ('-' < '.').
  char buf[64];
  std::snprintf(buf, sizeof buf, "ckpt-e%04lld-s%07lld.h5", epoch + 1, step_in_epoch);
  return buf;
}

void Checkpointer::save(const std::string& name, const TrainProgress& p, Model& model, Optimizer& opt, RunLog& log,
                        bool update_latest) {
  last_timed_s_ = now_s();
  if (comm_.rank() != 0) return;
  const double t0 = now_s();
  const long long bytes = write_checkpoint(dir_, name, model.arena(), opt, p, meta_,
                                           static_cast<int>(o_.keep_last), update_latest);
  const double seconds = now_s() - t0;
  log.checkpoint(dir_ + "/" + name, p.epoch, p.global_step, seconds, static_cast<double>(bytes) / 1e6);
}

TrainProgress Checkpointer::restore(const std::string& data_path, Model& model, Optimizer& opt) {
  if (o_.resume.empty()) return {};  // a fresh run
  const Comm& comm = comm_;
  Arena& arena = model.arena();
  auto buffers = opt.state_buffers();
  TrainProgress p;
  comm.collective_check([&] {
    if (comm.rank() != 0) return;
    const std::string path = o_.resume == "latest" ? latest_checkpoint(dir_) : o_.resume;
    if (path.empty())
      throw UserError("--resume: no checkpoint in '" + dir_ + "' (no 'latest' file): start without --resume");
    std::vector<std::string> names;
    for (const auto& b : buffers) names.push_back(b.first);
    check_fits(meta_, read_checkpoint_meta(path), path, data_path);  // before shapes: name the option to change
    const Checkpoint ck = read_checkpoint(path, arena, names);
    std::copy(ck.params.begin(), ck.params.end(), arena.params());
    for (size_t i = 0; i < buffers.size(); ++i)
      std::copy(ck.state[i].second.begin(), ck.state[i].second.end(), buffers[i].second);
    p = ck.progress;
    meta_.batch_changes = ck.meta.batch_changes;
    std::printf("resuming from %s: epoch %lld, step %lld of it, global step %lld (written by %d ranks)\n",
                path.c_str(), p.epoch + 1, p.step_in_epoch, p.global_step, ck.meta.world_size);
    std::fflush(stdout);
  });
  const long long bytes = arena.param_count() * static_cast<long long>(sizeof(float));
  comm.broadcast(arena.params(), bytes, 0);
  for (auto& b : buffers) comm.broadcast(b.second, bytes, 0);
  static_assert(std::is_trivially_copyable_v<TrainProgress>);
  comm.broadcast(&p, sizeof p, 0);
  comm.broadcast(meta_.batch_changes, 0);
  opt.set_counters(p.optimizer_steps, p.previous_lr);
  return p;
}

}  // namespace mpitrain
