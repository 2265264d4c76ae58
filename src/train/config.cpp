#include "mpitrain/train/config.hpp"
#include "mpitrain/train/goodput.hpp"

#include <boost/program_options.hpp>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <type_traits>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>

#include "mpitrain/comm/exact_sum.hpp"  // kMaxUnits
#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/list_text.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/stopping.hpp"

namespace po = boost::program_options;

namespace mpitrain {
namespace {

std::string to_text(const std::string& v) { return v; }
std::string to_text(bool v) { return v ? "true" : "false"; }
// Shortest text that reads back to exactly the same value, so the config
// recorded in headers is the one that ran.
template <typename T>
std::string to_text(const T& v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

// Declares each option once: its name, the Config field it fills, its help.
// The same table prints the effective configuration.
class OptionTable {
 public:
  explicit OptionTable(po::options_description& desc) : desc_(desc) {}
  template <typename T>
  void add(const char* name, T* field, const char* help) {
    desc_.add_options()(name, po::value<T>(field)->default_value(*field, to_text(*field))->value_name(short_kind<T>()), help);
    printers_.emplace_back(name, [field] { return to_text(*field); });
    kinds_.emplace_back(name, kind<T>());
  }
  void add_flag(const char* name, bool* field, const char* help) {
    desc_.add_options()(name, po::value<bool>(field)->default_value(*field, to_text(*field))->implicit_value(true, "true"),
                        help);
    printers_.emplace_back(name, [field] { return to_text(*field); });
    kinds_.emplace_back(name, "true or false");
  }
  // What a value of the option must look like, for error messages.
  std::string kind_of(const std::string& option) const {
    for (const auto& [name, k] : kinds_)
      if ("--" + name == option || name == option) return k;
    return "";
  }
  std::vector<std::pair<std::string, std::string>> entries() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [name, print] : printers_) out.emplace_back(name, print());
    return out;
  }

 private:
  template <typename T>
  static const char* short_kind() {
    if constexpr (std::is_same_v<T, std::string>) return "TEXT";
    else if constexpr (std::is_integral_v<T>) return "INT";
    else return "NUM";
  }
  template <typename T>
  static const char* kind() {
    if constexpr (std::is_same_v<T, std::string>) return "text";
    else if constexpr (std::is_integral_v<T>) return "an integer";
    else return "a number";
  }
  po::options_description& desc_;
  std::vector<std::pair<std::string, std::function<std::string()>>> printers_;
  std::vector<std::pair<std::string, std::string>> kinds_;
};

void require(bool ok, const std::string& message) {
  if (!ok) throw UserError(message);
}

// A value with a NUL would be cut short where it is used as a C string (a
// --metrics of "a<NUL>b" wrote the file "a"), and a line break would end its
// line in the INI record of the run (config.ini, the checkpoint's config),
// where the rest could pose as another option. No option needs either, nor
// any other control character but tab (issue 17).
void refuse_control_characters(const std::vector<std::pair<std::string, std::string>>& entries) {
  for (const auto& [name, value] : entries)
    for (size_t i = 0; i < value.size(); ++i) {
      const auto ch = static_cast<unsigned char>(value[i]);
      if (ch >= 0x20 || ch == '\t') continue;
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", ch);
      throw UserError("--" + name + " contains the control character " + code + " at byte " + std::to_string(i + 1) +
                      " ('" + printable(value) + "'): write the value on one line, without control characters");
    }
}

// Boost.Program_options fills its messages by replacing these placeholders
// with the option's name and value; a name or value that holds one makes that
// replacement loop forever (Boost 1.74, found by fuzz_config). They are never
// part of a real option, so they are refused before Boost sees them.
void refuse_boost_placeholders(const std::string& text, const std::string& where) {
  for (const char* token : {"%canonical_option%", "%option%", "%original_token%", "%value%", "%prefix%"})
    if (text.find(token) != std::string::npos)
      throw UserError(where + "'" + printable(text) + "' contains '" + token +
                      "', which is not part of any option: remove it");
}

// A config file is a few KB of INI text; one past this bound is not one.
constexpr std::uintmax_t kMaxConfigBytes = 1u << 20;

// The same rule for the config file, before the INI reader sees it: a NUL
// would cut its error message short, binary would be echoed into it.
void refuse_control_characters_in_file(const std::string& text, const std::string& where) {
  long long line = 1;
  for (size_t i = 0, line_start = 0; i < text.size(); ++i) {
    const auto ch = static_cast<unsigned char>(text[i]);
    if (ch == '\n') {
      ++line;
      line_start = i + 1;
    }
    if (ch >= 0x20 || ch == '\t' || ch == '\n' || ch == '\r') continue;
    char code[8];
    std::snprintf(code, sizeof code, "0x%02x", ch);
    const size_t end = std::min(text.find('\n', line_start), text.size());
    throw UserError(where + "line " + std::to_string(line) + " contains the control character " + code + " ('" +
                    printable(text.substr(line_start, end - line_start)) +
                    "'): a config file is INI text, one 'key = value' per line");
  }
}

void check_deterministic_options(const Config& c) {
  if (!c.step.deterministic) return;
  const int u = c.step.unit_rows;
  require(u >= 1, "--deterministic-unit must be at least 1 row (got " + std::to_string(u) + ")");
  require(c.micro_batch == 0 || c.micro_batch >= u,
          "--micro-batch " + std::to_string(c.micro_batch) + " is smaller than a --deterministic unit (" +
              std::to_string(u) + " rows): use --micro-batch >= " + std::to_string(u) +
              " or a smaller --deterministic-unit");
  require(c.threads <= 1, "--deterministic runs BLAS on one thread per rank, but --threads is " +
                              std::to_string(c.threads) + ": drop --threads (or set 1), and use more ranks instead");
  require(c.global_batch <= kMaxUnits * u, "--global-batch " + std::to_string(c.global_batch) + " has more than " +
                                               std::to_string(kMaxUnits) + " units of " + std::to_string(u) +
                                               " rows: raise --deterministic-unit to at least " +
                                               std::to_string((c.global_batch + kMaxUnits - 1) / kMaxUnits));
}

// --global-batch N or auto; with auto the run starts at --ref-batch, brought into --batch-range.
void parse_global_batch(Config& c) {
  BatchAdaptOptions& a = c.batch_adapt;
  a.automatic = trim(c.global_batch_text) == "auto";
  if (!a.automatic) {
    require(parse_number(trim(c.global_batch_text), c.global_batch),
            "--global-batch must be a whole number of samples or auto (got '" + c.global_batch_text + "')");
    require(c.global_batch >= 1, "--global-batch must be at least 1 (got " + std::to_string(c.global_batch) + ")");
    require(trim(a.range_text).empty(), "--batch-range is for --global-batch auto: drop it, or use --global-batch auto");
    return;
  }
  require(!trim(a.range_text).empty(), "--global-batch auto needs --batch-range MIN:MAX, the batches it may choose, "
                                       "e.g. --batch-range 256:8192");
  const BatchRange r = parse_batch_range(trim(a.range_text));
  a.range_min = r.min;
  a.range_max = r.max;
  c.global_batch = std::clamp(c.schedule.ref_batch, r.min, r.max);
}

// The rules shared by --global-batch auto and --batch-changes: the rate
// follows the batch through AdaScale's gain, and one batch rule at a time.
void check_batch_adapt(const Config& c) {
  const BatchAdaptOptions& a = c.batch_adapt;
  const bool replay = !trim(a.changes_text).empty();
  if (replay) parse_batch_changes(a.changes_text);
  require(a.every_steps >= 1 && a.every_steps <= 1'000'000'000,
          "--goodput-every must be 1 to 1e9 steps (got " + std::to_string(a.every_steps) + ")");
  require(std::isfinite(a.noise_factor) && a.noise_factor > 0,
          "--goodput-noise-factor must be > 0 (1: the online noise scale as it is)");
  if (!a.automatic && !replay) return;
  const char* what = a.automatic ? "--global-batch auto" : "--batch-changes";
  require(!(a.automatic && replay), "--global-batch auto chooses the batch itself: drop --batch-changes");
  require(c.schedule.scaling == LrScaling::kAdaScale,
          std::string(what) + " changes the batch during an epoch, so the rate must follow it: add --lr-scaling adascale");
}

// The data, the model and its input, and the global batch.
void validate_model_and_batch(Config& c) {
  require(!c.data.empty(), "--data is empty: pass the HDF5 dataset file to train on");
  c.activation = parse_activation(c.activation_name);
  const ModelSummary model = summarize_model(c.model, c.activation);  // refused here, before any file is read
  c.augment = parse_augment(c.augment_name, c.augment_pad);
  require(!c.augment.enabled() || !model.input.is_flat(),
          "--augment " + c.augment_name + " needs images: start --model with the image shape, e.g. 1x28x28");
  require(c.epochs >= 1, "--epochs must be at least 1 (got " + std::to_string(c.epochs) + ")");
  parse_global_batch(c);
  require(c.micro_batch >= 0, "--micro-batch must be >= 0 (0: the whole shard at once)");
  check_deterministic_options(c);
}

// The learning-rate schedule, the optimizer, and what AdaScale and an
// adapting batch need of them.
void validate_rate(Config& c) {
  ScheduleOptions& s = c.schedule;
  s.scaling = parse_lr_scaling(c.lr_scaling_name);
  s.decay = parse_lr_decay(c.lr_decay_name);
  s.milestones = parse_milestones(c.milestones_text);
  check_schedule_options(s);
  require(c.batch_schedule_lr == "scale" || c.batch_schedule_lr == "hold",
          "--batch-schedule-lr must be scale or hold (got '" + c.batch_schedule_lr + "')");
  s.hold_lr_on_batch_change = c.batch_schedule_lr == "hold";
  s.epochs = c.epochs;
  parse_batch_schedule(c.batch_schedule_text, c.global_batch);

  OptimizerOptions& o = c.optim;
  o.kind = parse_optimizer(c.optimizer_name);
  o.weight_decay_mode = parse_weight_decay_mode(c.weight_decay_mode_name);
  check_optimizer_options(o);
  if (s.scaling == LrScaling::kAdaScale) {
    // AdaScale's gain assumes an update proportional to the gradient, as SGD's
    // is (Johnson et al. 2020 treat momentum the same way); adaptive methods
    // rescale every coordinate by their own statistics.
    require(o.kind == OptimizerKind::kSgd, std::string("--lr-scaling adascale works with --optimizer sgd (got ") +
                                               optimizer_name(o.kind) + "): use linear or sqrt scaling with it");
    require(c.batch_schedule_text.find_first_not_of(" \t") == std::string::npos,
            "--lr-scaling adascale runs one global batch: drop --batch-schedule");
  }

  check_batch_adapt(c);
}

// Evaluation, the target and the stopping rules.
void validate_eval_and_stop(const Config& c) {
  require(std::isfinite(c.eval.val_fraction) && c.eval.val_fraction >= 0 && c.eval.val_fraction < 1,
          "--val-fraction must be in [0, 1) (got " + to_text(c.eval.val_fraction) + ")");
  require(c.eval.split == "test" || c.eval.split == "val" || c.eval.split == "none",
          "--eval-split must be test, val or none (got '" + c.eval.split + "')");
  require(c.stop.early_stop_patience >= 0, "--early-stop-patience must be >= 0 (0: off)");
  check_metric_name(c.stop.early_stop_metric, "--early-stop-metric");
  if (!c.stop.target.empty()) parse_target(c.stop.target);
  require(!c.stop.stop_at_target || !c.stop.target.empty(), "--stop-at-target needs --target, e.g. --target val_acc>=0.88");
  require(c.stop.target_hold >= 1, "--target-hold must be at least 1 evaluation (got " +
                                       std::to_string(c.stop.target_hold) + ")");
  require(std::isfinite(c.stop.early_stop_min_delta) && c.stop.early_stop_min_delta >= 0, "--early-stop-min-delta must be >= 0");
  require(std::isfinite(c.stop.divergence_factor) && c.stop.divergence_factor >= 0,
          "--divergence-factor must be >= 0 (0: only non-finite values count as divergence)");
}

// Checkpoints, the watchdog, the noise scale, the step's resources, how often to evaluate, and the
// progress output.
void validate_runtime(const Config& c) {
  require(c.checkpoint.every_epochs >= 0 && c.checkpoint.every_steps >= 0 && c.checkpoint.keep_last >= 0,
          "--checkpoint-every-epochs, --checkpoint-every-steps and --keep-last must be >= 0");
  require(std::isfinite(c.checkpoint.every_s) && c.checkpoint.every_s >= 0, "--checkpoint-every-s must be >= 0");
  require(std::isfinite(c.stall_timeout_s) && c.stall_timeout_s >= 0, "--stall-timeout-s must be >= 0 (0: off)");
  require(c.checkpoint.resume != "latest" || !c.checkpoint_path().empty(),
          "--resume without a file needs --checkpoint-dir or --run-dir to find the latest checkpoint");
  require(std::isfinite(c.noise_window_samples) && c.noise_window_samples >= 0,
          "--noise-window-samples must be >= 0 (0: decay per step by --noise-ema-decay)");
  require(std::isfinite(c.noise_ema_decay) && c.noise_ema_decay >= 0 && c.noise_ema_decay < 1,
          "--noise-ema-decay must be in [0, 1)");
  require(c.log.every_steps >= 0, "--metrics-every-steps must be >= 0 (0: no step lines)");
  require(c.threads >= 0, "--threads must be >= 0 (0 chooses automatically)");
  require(std::isfinite(c.max_memory_mb) && c.max_memory_mb >= 0, "--max-memory-mb must be >= 0 (0: the node's memory)");
  require(c.step.bucket_bytes >= 0, "--bucket-bytes must be >= 0 (0: one all-reduce after backward)");
  require(c.step.overlap == "auto" || c.step.overlap == "on" || c.step.overlap == "off",
          "--overlap must be auto, on or off (got '" + c.step.overlap + "')");
  require(c.eval.every_steps >= 0, "--eval-every-steps must be >= 0 (0: evaluate at epoch ends only)");
  require(c.eval.every_samples >= 0, "--eval-every-samples must be >= 0 (0: off)");
  require(std::isfinite(c.progress.interval_s) && c.progress.interval_s > 0,
          "--progress-interval-s must be > 0");
  require(c.progress.mode == "auto" || c.progress.mode == "live" || c.progress.mode == "lines" || c.progress.mode == "none",
          "--progress must be auto, live, lines or none (got '" + c.progress.mode + "')");
}

// Every check, in this order: the first bad option is the one reported.
void validate(Config& c) {
  validate_model_and_batch(c);
  validate_rate(c);
  validate_eval_and_stop(c);
  validate_runtime(c);
}

}  // namespace

std::string Config::checkpoint_path() const {
  if (!checkpoint.dir.empty() || log.run_dir.empty()) return checkpoint.dir;
  return (std::filesystem::path(log.run_dir) / "checkpoints").string();
}

std::string Config::to_ini() const {
  std::string out = "# effective configuration of an mpitrain run; reuse with --config (and a new --run-dir)\n";
  for (const auto& [key, value] : entries)
    if (key != "config" && key != "run-dir" && key != "resume") out += key + " = " + value + "\n";
  return out;
}

std::map<std::string, std::string> parse_ini_entries(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  try {
    po::options_description none;  // every key is "unregistered": all are kept as text
    for (const auto& option : po::parse_config_file(in, none, /*allow_unregistered=*/true).options)
      out[option.string_key] = option.value.empty() ? std::string() : option.value.front();
  } catch (const po::error& e) {
    throw UserError(std::string("not an INI text of key = value lines: ") + e.what());
  }
  return out;
}

// `--resume` alone means the latest checkpoint and `--resume FILE` names one;
// Boost's implicit values cannot take a separate word, so join it here.
static std::vector<std::string> join_resume(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] != "--resume") {
      out.push_back(args[i]);
    } else if (i + 1 < args.size() && !args[i + 1].starts_with("-")) {
      out.push_back("--resume=" + args[++i]);
    } else {
      out.push_back("--resume=latest");
    }
  }
  return out;
}

namespace {

// The options, in the order --help and the headers list them, each bound to
// its field (the seed goes through a signed value so a negative one is refused).
void declare_run_options(OptionTable& t, Config& c, long long& seed) {
  t.add("data", &c.data, "HDF5 dataset file (see datasets/README.md)");
  t.add("model", &c.model,
        "layer widths joined by '-', input first, e.g. 784-256-10, or a layer list such as "
        "'1x28x28 conv5x5:32 relu maxpool2 dense:128 relu dense:10' (README, \"Models\")");
  t.add("activation", &c.activation_name, "hidden activation of the width form (784-256-10): relu | tanh | gelu");
  t.add("epochs", &c.epochs, "passes over the training set");
  t.add("global-batch", &c.global_batch_text,
        "samples per optimizer step, summed over all ranks; auto: chosen for goodput during training within "
        "--batch-range (with --lr-scaling adascale)");
  t.add("batch-range", &c.batch_adapt.range_text, "the batches an auto global batch may choose, MIN:MAX, e.g. 256:8192");
  t.add("goodput-every", &c.batch_adapt.every_steps, "steps between two choices of an auto global batch");
  t.add("goodput-noise-factor", &c.batch_adapt.noise_factor,
        "an auto global batch's efficiency takes this x the online noise scale (a scaling study's B_crit / B_simple)");
  t.add("batch-changes", &c.batch_adapt.changes_text,
        "change the global batch after given steps, STEP:B,... e.g. 200:1024 (an auto run's summary gives its own; "
        "with --lr-scaling adascale)");
  t.add("micro-batch", &c.micro_batch, "most rows one rank pushes through forward/backward at once (0: whole shard)");
  t.add("seed", &seed, "seed of weight init, sample order and held-out split, in [0, 2^63)");
  t.add_flag("drop-last", &c.drop_last, "drop the last partial global batch of each epoch");
  t.add_flag("deterministic", &c.step.deterministic,
             "bitwise-identical results for any rank count, host layout, --micro-batch and rerun (README, "
             "\"Deterministic training\"); one BLAS thread per rank");
  t.add("deterministic-unit", &c.step.unit_rows,
        "--deterministic: rows per unit, the piece of a global batch computed alike on any rank");
  t.add("augment", &c.augment_name, "image augmentation per (seed, epoch, row): none | flip | crop | crop+flip");
  t.add("augment-pad", &c.augment_pad, "crop: zero padding on each side before the random crop, in pixels");
}

// The learning rate (optim/schedule.hpp).
void declare_schedule_options(OptionTable& t, Config& c) {
  t.add("lr", &c.schedule.base_lr, "base learning rate, tuned at --ref-batch");
  t.add("ref-batch", &c.schedule.ref_batch, "global batch at which --lr was tuned");
  t.add("lr-scaling", &c.lr_scaling_name, "rate rule for the global batch: none | linear | sqrt | adascale (a gain measured every step; "
        "--epochs then counts epochs at --ref-batch)");
  t.add("warmup-epochs", &c.schedule.warmup_epochs, "epochs of linear per-step warmup (may be fractional)");
  t.add("warmup-steps", &c.schedule.warmup_steps, "steps of linear warmup (instead of --warmup-epochs)");
  t.add("warmup-start-factor", &c.schedule.warmup_start_factor,
        "fraction of the final rate warmup starts from (< 0: the reference-batch rate, or 0)");
  t.add("lr-decay", &c.lr_decay_name, "decay after warmup: none | step | cosine | poly | exponential");
  t.add("lr-milestones", &c.milestones_text, "step decay: epochs at which the rate is multiplied by --lr-gamma, e.g. 10,20");
  t.add("lr-gamma", &c.schedule.gamma, "step: factor per milestone; exponential: factor per epoch");
  t.add("lr-final-fraction", &c.schedule.final_fraction, "cosine/poly: final rate as a fraction of the peak");
  t.add("lr-poly-power", &c.schedule.poly_power, "poly: power p of (1 - t)^p");
  t.add("batch-schedule", &c.batch_schedule_text, "raise the global batch at epochs: EPOCH:B,... e.g. 5:512,10:1024");
  t.add("batch-schedule-lr", &c.batch_schedule_lr, "rate when the batch schedule raises B: scale (rule) | hold");
}

// The optimizer (optim/optimizer.hpp).
void declare_optimizer_options(OptionTable& t, Config& c) {
  t.add("optimizer", &c.optimizer_name, "sgd | adamw | lars | lamb");
  t.add("momentum", &c.optim.momentum, "SGD/LARS momentum in [0, 1)");
  t.add_flag("nesterov", &c.optim.nesterov, "SGD: Nesterov momentum");
  t.add_flag("momentum-correction", &c.optim.momentum_correction,
             "SGD/LARS: scale the velocity by lr_new/lr_old when the rate changes (Goyal et al. eq. 10)");
  t.add("weight-decay", &c.optim.weight_decay, "weight decay");
  t.add("weight-decay-mode", &c.weight_decay_mode_name, "SGD: l2 (added to the gradient) | decoupled");
  t.add("beta1", &c.optim.beta1, "AdamW/LAMB first-moment decay");
  t.add("beta2", &c.optim.beta2, "AdamW/LAMB second-moment decay");
  t.add("eps", &c.optim.eps, "AdamW/LAMB epsilon");
  t.add("lars-eta", &c.optim.lars_eta, "LARS trust coefficient");
  t.add_flag("exclude-bias", &c.optim.exclude_bias, "LARS/LAMB: biases get trust ratio 1 and no weight decay");
  t.add("trust-clip", &c.optim.trust_clip, "LARS/LAMB: upper bound of the trust ratio (0: none)");
}

// Evaluation and stopping (EvalOptions, StopOptions).
void declare_eval_options(OptionTable& t, Config& c) {
  t.add("val-fraction", &c.eval.val_fraction, "hold this fraction of /train out as validation, chosen by --seed");
  t.add("eval-split", &c.eval.split, "evaluated after each epoch: test (and val if any) | val | none");
  t.add("early-stop-patience", &c.stop.early_stop_patience, "stop after K epochs without improvement (0: off)");
  t.add("early-stop-metric", &c.stop.early_stop_metric, "val_loss | val_acc | test_loss | test_acc | train_loss | train_acc");
  t.add("early-stop-min-delta", &c.stop.early_stop_min_delta, "smallest change that counts as an improvement");
  t.add("target", &c.stop.target, "record when a metric first reaches a value, e.g. val_acc>=0.88");
  t.add_flag("stop-at-target", &c.stop.stop_at_target, "end the run when --target is reached");
  t.add("target-hold", &c.stop.target_hold,
        "the target counts once it holds at K evaluations in a row (epoch ends and --eval-every-steps), "
        "recorded at the first of them");
  t.add("eval-every-samples", &c.eval.every_samples,
        "also evaluate after the step whose samples pass a multiple of N: the same data between evaluations at "
        "every global batch (0: off)");
  t.add("eval-every-steps", &c.eval.every_steps,
        "also evaluate every N steps, so --target is found to the step (0: at epoch ends only)");
  t.add("noise-window-samples", &c.noise_window_samples,
        "EMA window of the gradient noise scale in samples: a step of b samples decays it by exp(-b/W), the same "
        "data at every B (0: decay per step by --noise-ema-decay)");
  t.add("noise-ema-decay", &c.noise_ema_decay, "with --noise-window-samples 0: EMA decay per step, in [0, 1)");
  t.add("divergence-factor", &c.stop.divergence_factor, "diverged when a step's loss exceeds this x the first step's (0: off)");
}

// Output and resources (RunLogOptions, CheckpointOptions, StepOptions, ProgressOptions).
void declare_output_options(OptionTable& t, Config& c) {
  t.add("run-dir", &c.log.run_dir, "this run's own directory (created): config.ini, metrics.jsonl, checkpoints/");
  t.add("metrics", &c.log.metrics, "JSON-lines metrics file written by rank 0 (default: <run-dir>/metrics.jsonl, else none)");
  t.add("checkpoint-dir", &c.checkpoint.dir, "checkpoint directory (default: <run-dir>/checkpoints, else none)");
  t.add("checkpoint-every-epochs", &c.checkpoint.every_epochs, "checkpoint every N epochs (0: not at epoch ends)");
  t.add("checkpoint-every-steps", &c.checkpoint.every_steps, "also checkpoint every N steps (0: off)");
  t.add("checkpoint-every-s", &c.checkpoint.every_s, "also checkpoint every T seconds of training (0: off)");
  t.add("keep-last", &c.checkpoint.keep_last, "keep the last K ckpt-*.h5 files (0: all); final.h5 and best.h5 stay");
  t.add("resume", &c.checkpoint.resume, "continue from a checkpoint: FILE, or 'latest' in the checkpoint directory (--resume alone)");
  t.add("stall-timeout-s", &c.stall_timeout_s, "abort the job when a rank makes no progress for this long (0: off)");
  t.add("metrics-every-steps", &c.log.every_steps, "also write a step line every N steps (0: none)");
  t.add("threads", &c.threads, "BLAS threads per rank (0: SLURM_CPUS_PER_TASK or cores per node / ranks per node)");
  t.add("max-memory-mb", &c.max_memory_mb,
        "most memory one rank may plan to use, checked before training (0: the node's memory / its ranks)");
  t.add("bucket-bytes", &c.step.bucket_bytes,
        "gradient all-reduce bucket size in bytes, started during backward (0: one all-reduce after backward)");
  t.add("overlap", &c.step.overlap,
        "reduce gradient buckets during backward on a communication thread: on, off, or auto (on when the job spans "
        "hosts or every rank has a spare core)");
  t.add_flag("prefetch", &c.step.prefetch, "read the next rows on a background thread while the current ones compute");
  t.add("progress", &c.progress.mode, "progress display: auto (live line on a terminal, else plain lines) | live | lines | none");
  t.add("progress-interval-s", &c.progress.interval_s, "seconds between progress lines when not on a terminal");
}

// Reads the command line, then the --config file (the command line wins:
// Boost keeps the first value stored). False for --help (help_text set).
// UserError names what to fix.
bool read_options(const std::vector<std::string>& args, const po::options_description& desc, const OptionTable& t,
                  std::string& help_text, bool& unit_on_command_line) {
  po::variables_map vm;
  std::string where;  // "" for the command line, else "in config file 'X': "
  try {
    // Words that belong to no option are collected and refused by name, not dropped.
    po::options_description hidden;
    std::vector<std::string> stray;
    hidden.add_options()("stray-words", po::value<std::vector<std::string>>(&stray));
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description positional;
    positional.add("stray-words", -1);
    for (const auto& arg : args) refuse_boost_placeholders(arg, "");
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    // Before the config file: a run's config.ini records every option, this one too.
    unit_on_command_line = vm.count("deterministic-unit") > 0 && !vm["deterministic-unit"].defaulted();
    if (vm.count("stray-words"))
      throw UserError("unexpected argument '" + vm["stray-words"].as<std::vector<std::string>>().front() +
                      "': options take the form --name value (see 'mpitrain train --help')");
    if (vm.count("help")) {
      std::ostringstream os;
      os << desc;
      help_text = os.str();
      return false;
    }
    if (vm.count("config")) {
      const auto path = vm["config"].as<std::string>();
      std::error_code ec;
      // Stat before opening: a FIFO would block the open, /dev/zero never ends.
      const auto st = std::filesystem::status(path, ec);
      if (std::filesystem::exists(st) && !std::filesystem::is_directory(st) && !std::filesystem::is_regular_file(st))
        throw UserError("config file '" + path + "' is not a regular file (a FIFO, socket or device): pass an INI file");
      if (std::filesystem::is_regular_file(st) && std::filesystem::file_size(path, ec) > kMaxConfigBytes)
        throw UserError("config file '" + path + "' is larger than " + std::to_string(kMaxConfigBytes >> 20) +
                        " MiB: pass the INI file of a run (a few KB)");
      std::ifstream in(path);
      if (!in || std::filesystem::is_directory(st))
        throw UserError("cannot read config file '" + path + "': check the path given to --config");
      where = "in config file '" + path + "': ";
      // Editors on some systems start UTF-8 files with a byte-order mark,
      // which would otherwise become part of the first option's name.
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);
      refuse_control_characters_in_file(text, where);
      refuse_boost_placeholders(text, where);
      std::istringstream config_text(text);
      const po::parsed_options parsed = po::parse_config_file(config_text, desc);
      for (const auto& option : parsed.options)  // the command line's --config came first and would win, silently
        if (option.string_key == "config")
          throw UserError(where + "'config = ...' names another config file, which is not read: put every option "
                                  "in this one file");
      po::store(parsed, vm);
    }
    po::notify(vm);
  } catch (const po::invalid_option_value& e) {  // messages escaped and bounded: they may quote the config file
    const std::string k = t.kind_of(e.get_option_name());
    throw UserError(where + printable(e.what(), 400) + (k.empty() ? "" : ": expected " + k) +
                    " (see 'mpitrain train --help')");
  } catch (const po::error& e) {
    throw UserError(where + printable(e.what(), 400) + " (see 'mpitrain train --help')");
  }
  return true;
}

}  // namespace

ParseResult parse_train_args(const std::vector<std::string>& raw_args) {
  const std::vector<std::string> args = join_resume(raw_args);
  ParseResult result;
  Config& c = result.config;
  long long seed = static_cast<long long>(c.seed);
  po::options_description desc("mpitrain train [options]   (every option also works in the --config INI file)");
  desc.add_options()("help,h", "print this help and exit");
  desc.add_options()("config", po::value<std::string>(&c.config_file),
                     "INI file of options (key = value); the command line wins");
  OptionTable t(desc);
  declare_run_options(t, c, seed);
  declare_schedule_options(t, c);
  declare_optimizer_options(t, c);
  declare_eval_options(t, c);
  declare_output_options(t, c);
  bool unit_on_command_line = false;
  if (!read_options(args, desc, t, result.help_text, unit_on_command_line)) {
    result.action = ParseResult::Action::kHelp;
    return result;
  }
  auto given = t.entries();
  given.emplace_back("config", c.config_file);
  refuse_control_characters(given);  // first: later messages quote these values
  require(seed >= 0, "--seed must be >= 0");
  c.seed = static_cast<std::uint64_t>(seed);
  validate(c);
  require(!unit_on_command_line || c.step.deterministic,
          "--deterministic-unit " + std::to_string(c.step.unit_rows) +
              " does nothing without --deterministic: add --deterministic, or drop --deterministic-unit");
  c.entries = t.entries();
  if (!c.config_file.empty()) c.entries.insert(c.entries.begin(), {"config", c.config_file});
  return result;
}

}  // namespace mpitrain
