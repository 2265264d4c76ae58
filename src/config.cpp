#include "mpitrain/config.hpp"

#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <type_traits>
#include <fstream>
#include <functional>
#include <sstream>

#include "mpitrain/errors.hpp"
#include "mpitrain/model.hpp"

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
    desc_.add_options()(name, po::value<T>(field)->default_value(*field, to_text(*field))->value_name(kind<T>()), help);
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

void validate(Config& c) {
  require(!c.data.empty(), "--data is empty: pass the HDF5 dataset file to train on");
  parse_model_spec(c.model);
  c.activation = parse_activation(c.activation_name);
  c.lr_scaling = parse_lr_scaling(c.lr_scaling_name);
  require(c.epochs >= 1, "--epochs must be at least 1 (got " + std::to_string(c.epochs) + ")");
  require(c.global_batch >= 1, "--global-batch must be at least 1 (got " + std::to_string(c.global_batch) + ")");
  require(std::isfinite(c.lr) && c.lr > 0, "--lr must be a finite number > 0 (got " + to_text(c.lr) + ")");
  require(c.ref_batch >= 1, "--ref-batch must be at least 1 (got " + std::to_string(c.ref_batch) + ")");
  require(std::isfinite(c.warmup_epochs) && c.warmup_epochs >= 0,
          "--warmup-epochs must be a finite number >= 0 (got " + to_text(c.warmup_epochs) + ")");
  require(std::isfinite(c.momentum) && c.momentum >= 0 && c.momentum < 1,
          "--momentum must be in [0, 1) (got " + to_text(c.momentum) + ")");
  require(std::isfinite(c.weight_decay) && c.weight_decay >= 0,
          "--weight-decay must be a finite number >= 0 (got " + to_text(c.weight_decay) + ")");
  require(c.threads >= 0, "--threads must be >= 0 (0 chooses automatically)");
  require(std::isfinite(c.progress_interval_s) && c.progress_interval_s > 0,
          "--progress-interval-s must be > 0");
  require(c.progress == "auto" || c.progress == "live" || c.progress == "lines" || c.progress == "none",
          "--progress must be auto, live, lines or none (got '" + c.progress + "')");
  require(c.eval_split == "test" || c.eval_split == "val" || c.eval_split == "none",
          "--eval-split must be test, val or none (got '" + c.eval_split + "')");
}

}  // namespace

ParseResult parse_train_args(const std::vector<std::string>& args) {
  ParseResult result;
  Config& c = result.config;
  long long seed = static_cast<long long>(c.seed);
  po::options_description desc("mpitrain train [options]   (every option also works in the --config INI file)");
  desc.add_options()("help,h", "print this help and exit");
  desc.add_options()("config", po::value<std::string>(&c.config_file),
                     "INI file of options (key = value); the command line wins");
  OptionTable t(desc);
  t.add("data", &c.data, "HDF5 dataset file (see datasets/README.md)");
  t.add("model", &c.model, "layer widths joined by '-', input first, e.g. 784-256-10");
  t.add("activation", &c.activation_name, "hidden activation: relu | tanh | gelu");
  t.add("epochs", &c.epochs, "passes over the training set");
  t.add("global-batch", &c.global_batch, "samples per optimizer step, summed over all ranks");
  t.add("lr", &c.lr, "base learning rate, tuned at --ref-batch");
  t.add("ref-batch", &c.ref_batch, "global batch at which --lr was tuned");
  t.add("lr-scaling", &c.lr_scaling_name, "effective LR rule for the global batch: none | linear | sqrt");
  t.add("warmup-epochs", &c.warmup_epochs, "epochs of linear per-step LR warmup (may be fractional)");
  t.add("momentum", &c.momentum, "SGD momentum in [0, 1)");
  t.add_flag("nesterov", &c.nesterov, "use Nesterov momentum");
  t.add("weight-decay", &c.weight_decay, "L2 weight decay");
  t.add("seed", &seed, "seed of weight init and of every epoch's sample order, in [0, 2^63)");
  t.add_flag("drop-last", &c.drop_last, "drop the last partial global batch of each epoch");
  t.add("metrics", &c.metrics, "JSON-lines metrics file written by rank 0 (empty: none)");
  t.add("threads", &c.threads, "BLAS threads per rank (0: cores per node / ranks per node)");
  t.add("progress", &c.progress, "progress display: auto (live line on a terminal, else plain lines) | live | lines | none");
  t.add("progress-interval-s", &c.progress_interval_s, "seconds between progress lines when not on a terminal");
  t.add("eval-split", &c.eval_split, "split evaluated after each epoch: test | val | none");

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
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("stray-words"))
      throw UserError("unexpected argument '" + vm["stray-words"].as<std::vector<std::string>>().front() +
                      "': options take the form --name value (see 'mpitrain train --help')");
    if (vm.count("help")) {
      std::ostringstream os;
      os << desc;
      result.action = ParseResult::Action::kHelp;
      result.help_text = os.str();
      return result;
    }
    if (vm.count("config")) {
      const auto path = vm["config"].as<std::string>();
      std::error_code ec;
      std::ifstream in(path);
      if (!in || std::filesystem::is_directory(path, ec))
        throw UserError("cannot read config file '" + path + "': check the path given to --config");
      where = "in config file '" + path + "': ";
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::invalid_option_value& e) {
    const std::string k = t.kind_of(e.get_option_name());
    throw UserError(where + e.what() + (k.empty() ? "" : ": expected " + k) + " (see 'mpitrain train --help')");
  } catch (const po::error& e) {
    throw UserError(where + e.what() + " (see 'mpitrain train --help')");
  }
  require(seed >= 0, "--seed must be >= 0");
  c.seed = static_cast<std::uint64_t>(seed);
  validate(c);
  c.entries = t.entries();
  if (!c.config_file.empty()) c.entries.insert(c.entries.begin(), {"config", c.config_file});
  return result;
}

}  // namespace mpitrain
