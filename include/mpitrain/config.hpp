// All options of `mpitrain train`, parsed with Boost.Program_options from the
// command line and an INI file (--config; the command line wins), validated
// once, and kept as one struct. Every option is also kept as text in
// `entries`, in declaration order, for the run header and the metrics header.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mpitrain/layers.hpp"
#include "mpitrain/schedule.hpp"

namespace mpitrain {

struct Config {
  std::string config_file;
  std::string data = "datasets/fashion-mnist.h5";
  std::string model = "784-256-128-100-10";
  std::string activation_name = "relu";
  Activation activation = Activation::kRelu;
  long long epochs = 15;
  long long global_batch = 256;
  double lr = 0.05;
  long long ref_batch = 256;
  std::string lr_scaling_name = "linear";
  LrScaling lr_scaling = LrScaling::kLinear;
  double warmup_epochs = 0.0;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0.0;
  std::uint64_t seed = 1;
  bool drop_last = false;
  std::string metrics;             // empty: no metrics file
  int threads = 0;                 // BLAS threads per rank; 0 = automatic
  std::string progress = "auto";   // auto | live | lines | none
  double progress_interval_s = 5;  // plain progress line period when not a TTY
  std::string eval_split = "test";

  std::vector<std::pair<std::string, std::string>> entries;  // name -> value text
};

struct ParseResult {
  enum class Action { kTrain, kHelp } action = Action::kTrain;
  Config config;
  std::string help_text;
};

// Parses `args` (the words after "mpitrain train"). Throws UserError with a
// message that says what to change on any bad option, value or config file.
ParseResult parse_train_args(const std::vector<std::string>& args);

}  // namespace mpitrain
