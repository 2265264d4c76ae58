#include "mpitrain/train/run_log.hpp"

#include <cblas.h>
#include <mpi.h>

#include <cstdio>
#include <filesystem>
#include <limits>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/h5.hpp"

namespace mpitrain {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Creates the run directory and records the effective configuration in it.
void write_run_dir(const std::string& run_dir, const std::string& config_ini) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw UserError("cannot create --run-dir '" + run_dir + "': " + ec.message());
  const fs::path ini = fs::path(run_dir) / "config.ini";
  std::FILE* f = std::fopen(ini.c_str(), "w");
  if (!f) throw UserError("cannot write '" + ini.string() + "': choose a writable --run-dir");
  const bool ok = std::fwrite(config_ini.data(), 1, config_ini.size(), f) == config_ini.size();
  if (std::fclose(f) != 0 || !ok) throw UserError("cannot write '" + ini.string() + "'");
}

// The measured val/test values of an evaluation, in a fixed order; test
// values are always present in epoch lines (null when not measured).
void add_eval_metrics(JsonObject& m, const EpochMetrics& em, bool always_test) {
  for (const char* k : {"val_loss", "val_acc", "test_loss", "test_acc"}) {
    const auto it = em.find(k);
    if (it != em.end()) m.add(k, it->second);
    else if (always_test && std::string(k).starts_with("test")) m.add(k, kNaN);
  }
}

}  // namespace

std::string RunLogOptions::metrics_path() const {
  if (!metrics.empty() || run_dir.empty()) return metrics;
  return (std::filesystem::path(run_dir) / "metrics.jsonl").string();
}

RunLog::RunLog(const RunLogOptions& o, const std::string& config_ini, bool resumed)
    : run_dir_(o.run_dir), every_steps_(o.every_steps) {
  if (!o.run_dir.empty() && !resumed) write_run_dir(o.run_dir, config_ini);
  if (!o.metrics_path().empty()) metrics_ = MetricsWriter(o.metrics_path(), /*append=*/resumed);
}

namespace {

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(text, &len);
  std::string s(text, static_cast<size_t>(len));
  return s.substr(0, s.find_first_of(",\n"));
}

}  // namespace

JsonObject RunLog::header_json(const Config& c, const Comm& comm, const Placement& place, const RunPlan& p,
                               const Model& m) {
  JsonObject cfg;
  for (const auto& [k, v] : c.entries) cfg.add(k, v);
  std::vector<JsonObject> plan;
  for (const auto& row : p.schedule->plan()) {
    JsonObject r;
    r.add("what", row.what).add("step", row.global_step).add("epoch", row.epoch_pos)
        .add("global_batch", row.global_batch).add("lr", row.lr);
    plan.push_back(r);
  }
  unsigned hmaj = 0, hmin = 0, hrel = 0;
  H5get_libversion(&hmaj, &hmin, &hrel);
  JsonObject h;
  h.add("type", "header").add("version", MPITRAIN_VERSION).add("ranks", comm.size())
      .add("nodes", place.node_count).add("threads_per_rank", place.threads_per_rank)
      .add("threads_rule", place.how).add("ranks_on_node", place.ranks_on_node)
      .add("ranks_on_machine", place.ranks_on_machine).add("cores_on_node", place.cores_on_node)
      .add("blas_core", place.blas_core).add("blas_coretype_env", place.blas_coretype_env)
      .add("blas_pinned", place.blas_pinned).add("model", m.spec()).add("params", m.param_count())
      .add("flops_per_sample", m.train_flops_per_sample())
      .add("train_rows", p.train_count).add("val_rows", static_cast<long long>(p.val_rows.size()))
      .add("val_split", p.val_split.empty() ? "none" : p.val_split)
      .add("steps_per_epoch", p.schedule->steps_in_epoch(0)).add("total_steps", p.schedule->total_steps())
      .add("optimizer", optimizer_name(c.optim.kind)).add("base_lr", c.schedule.base_lr)
      .add("effective_lr", p.schedule->scaled_rate(c.global_batch))
      .add("warmup_steps", p.schedule->warmup_total_steps()).add("rows_per_pass", p.capacity)
      .add("deterministic", c.step.deterministic).add("deterministic_unit", c.unit_rows())
      .add("global_batch_auto", c.batch_adapt.automatic)
      .add("mpi", mpi_library_version())
      .add("hdf5", std::to_string(hmaj) + "." + std::to_string(hmin) + "." + std::to_string(hrel))
      .add("openblas", std::string(openblas_get_config()));
  if (c.batch_adapt.automatic)
    h.add("batch_range_min", c.batch_adapt.range_min).add("batch_range_max", c.batch_adapt.range_max)
        .add("goodput_every", c.batch_adapt.every_steps).add("goodput_noise_factor", c.batch_adapt.noise_factor)
        .add("batch_candidates", static_cast<long long>(p.batch_candidates.size()));
  h.add_array("lr_plan", plan);
  std::vector<JsonObject> hosts;
  for (const auto& [host, ranks] : place.hosts) {
    std::string list;
    for (int r : ranks) {
      if (!list.empty()) list += ',';
      list += std::to_string(r);
    }
    JsonObject o;
    o.add("host", host).add("ranks", list);
    hosts.push_back(o);
  }
  h.add_array("hosts", hosts);
  if (!place.slurm_job_id.empty()) {
    JsonObject sl;
    sl.add("job_id", place.slurm_job_id).add("nodes", place.slurm_nodes)
        .add("tasks_per_node", place.slurm_tasks_per_node).add("cpus_per_task", place.slurm_cpus_per_task);
    h.add_object("slurm", sl);
  }
  h.add_object("config", cfg);
  return h;
}

void RunLog::step(const StepRecord& r) {
  JsonObject m;
  m.add("type", "step").add("epoch", r.epoch).add("step", r.step).add("samples", r.samples)
      .add("lr", r.lr).add("global_batch", r.global_batch).add("loss", r.loss).add("acc", r.acc)
      .add("grad_norm", r.grad_norm).add("noise_scale", r.noise_scale)
      .add("noise_small_sq", r.small_sq).add("noise_b_small", r.b_small)
      .add("noise_big_sq", r.grad_norm * r.grad_norm).add("noise_b_big", r.global_batch);
  if (r.gain) m.add("gain", *r.gain).add("scale_invariant_iters", *r.scale_iterations);
  metrics_.write(m);
}

void RunLog::eval(const EvalRecord& r) {
  JsonObject m;
  m.add("type", "eval").add("epoch", r.epoch).add("step", r.step).add("samples", r.samples).add("time_s", r.time_s);
  add_eval_metrics(m, *r.metrics, /*always_test=*/false);
  if (r.target_reached) m.add("target_reached", *r.target_reached);
  metrics_.write(m);
}

std::string RunLog::epoch(const EpochRecord& r) {
  JsonObject m;
  m.add("type", "epoch").add("epoch", r.epoch).add("step", r.step).add("samples", r.samples)
      .add("lr", r.lr).add("global_batch", r.global_batch).add("steps_in_epoch", r.steps_in_epoch)
      .add("train_loss", r.train_loss).add("train_acc", r.train_acc);
  add_eval_metrics(m, *r.metrics, /*always_test=*/true);
  const TimeSplit& hi = r.time_max;
  const TimeSplit& lo = r.time_min;
  m.add("time_s", r.time_s).add("epoch_time_s", r.epoch_time_s).add("samples_per_s", r.samples_per_s)
      .add("time_data_s", hi.data).add("time_data_min_s", lo.data)
      .add("time_compute_s", hi.compute).add("time_compute_min_s", lo.compute)
      .add("time_allreduce_s", hi.allreduce_wait).add("time_allreduce_min_s", lo.allreduce_wait)
      .add("time_comm_s", hi.comm).add("time_comm_min_s", lo.comm)
      .add("comm_hidden_fraction", hi.comm > 0 ? 1.0 - hi.allreduce_wait / hi.comm : kNaN)
      .add("peak_rss_mb", r.peak_rss_mb)
      .add("eval_time_s", r.eval_time_s).add("noise_scale", r.noise_scale).add("noise_g2", r.noise_g2)
      .add("noise_trace_s", r.noise_trace_s);
  if (r.target_reached) m.add("target_reached", *r.target_reached);
  if (r.gain) m.add("gain", *r.gain).add("scale_invariant_iters", *r.scale_iterations);
  metrics_.write(m);
  return m.str();
}

void RunLog::checkpoint(const std::string& file, long long epoch, long long step, double seconds, double mb) {
  JsonObject m;
  m.add("type", "checkpoint").add("file", file).add("epoch", epoch).add("step", step).add("seconds", seconds)
      .add("mb", mb);
  metrics_.write(m);
}

void RunLog::batch_change(const BatchChangeRecord& r) {
  const BatchDecision& d = *r.decision;
  JsonObject m;
  m.add("type", "batch_change").add("epoch", r.epoch).add("step", d.at_step).add("samples", r.samples)
      .add("time_s", r.time_s).add("from", d.from).add("to", d.to).add("reason", d.choice ? "goodput" : "replay")
      .add("noise_scale", r.noise_scale);
  if (d.choice) {
    const GoodputChoice& c = *d.choice;
    m.add("goodput_from", c.current_goodput).add("goodput_to", c.goodput).add("step_s_to", c.step_s)
        .add("efficiency_to", c.efficiency);
  }
  if (d.fit) m.add("fit_alpha_s", d.fit->alpha).add("fit_beta_s_per_row", d.fit->beta).add("fit_comm_s", d.fit->comm);
  metrics_.write(m);
}

void RunLog::diverged(const DivergedRecord& r) {
  JsonObject m;
  m.add("type", "diverged").add("epoch", r.epoch).add("step", r.step).add("lr", r.lr).add("loss", r.loss)
      .add("grad_norm", r.grad_norm).add("reason", r.reason);
  metrics_.write(m);
  JsonObject s;
  s.add("type", "summary").add("stop_reason", "diverged").add("ranks", r.ranks).add("global_batch", r.global_batch)
      .add("lr", r.lr).add("epochs", r.epoch).add("steps", r.step).add("target_reached", false);
  summary_file(s);
}

void RunLog::summary(const SummaryRecord& s) {
  const TrainResult& r = *s.result;
  JsonObject m;
  m.add("type", "summary").add("stop_reason", r.stop_reason).add("ranks", s.ranks).add("global_batch", s.global_batch)
      .add("lr", s.lr).add("noise_scale", s.noise_scale)
      .add("samples_per_s", static_cast<double>(r.samples) / r.time_s)
      .add("epochs", r.epochs_done).add("steps", r.steps)
      .add("samples", r.samples).add("time_s", r.time_s).add("train_loss", r.train_loss).add("val_loss", r.val_loss)
      .add("val_acc", r.val_acc).add("test_loss", s.has_test ? r.eval_loss : kNaN)
      .add("test_acc", s.has_test ? r.eval_acc : kNaN);
  if (s.scale_iterations) m.add("scale_invariant_iters", *s.scale_iterations);
  if (s.final_global_batch) m.add("final_global_batch", *s.final_global_batch).add("batch_changes", s.batch_changes);
  if (s.early) m.add("best_epoch", r.best_epoch).add("best_metric", s.early->metric()).add("best_value", r.best_value);
  if (s.target) {
    m.add("target", s.target->text).add("target_reached", r.target_reached);
    if (r.target_reached)
      m.add("target_epoch", r.target_epoch).add("target_step", r.target_step).add("target_samples", r.target_samples)
          .add("target_time_s", r.target_time_s).add("target_train_time_s", r.target_train_time_s);
  }
  metrics_.write(m);
  summary_file(m);
}

void RunLog::summary_file(const JsonObject& line) const {
  if (run_dir_.empty()) return;
  const std::string path = (std::filesystem::path(run_dir_) / "summary.json").string();
  if (std::FILE* f = std::fopen(path.c_str(), "w")) {
    std::fprintf(f, "%s\n", line.str().c_str());
    std::fclose(f);
  }
}

}  // namespace mpitrain
