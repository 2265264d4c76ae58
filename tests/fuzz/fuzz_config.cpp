// Fuzz target: the options of `mpitrain train` (train/config.cpp): an INI
// config file and command-line words, parsed and validated as the trainer
// does, and the one INI reader (parse_ini_entries) on the same text and on
// the effective configuration the run records (Config::to_ini).
//
// Input: parts separated by the byte 0xff (never in UTF-8 text): the first
// is the config file's text, the others are command-line words (they may
// hold any other byte, NUL and line breaks included). The file is passed
// first, as --config FILE, so a word naming another config file is refused
// as a second --config rather than read.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "fuzz_input.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/train/config.hpp"

namespace {

using namespace mpitrain;

const std::string& config_path() {
  static const std::string path = [] {
    const std::string p = (access("/dev/shm", W_OK) == 0 ? std::string("/dev/shm") : std::string("/tmp")) +
                          "/mpitrain-fuzz-config-" + std::to_string(getpid()) + ".ini";
    std::atexit([] { std::remove(config_path().c_str()); });
    return p;
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0xff) parts.emplace_back();
    else parts.back() += static_cast<char>(data[i]);
  }
  if (parts.size() > 64) return 0;  // the command line of a person, not of a fuzzer
  // Boost's placeholders ('%value%', ...) in a name or value once hung the
  // parser (regressions/fuzz_config/): they are refused now, so they are fuzzed.
  {
    std::ofstream out(config_path(), std::ios::binary | std::ios::trunc);
    out << parts[0];
  }
  std::vector<std::string> args = {"--config", config_path()};
  args.insert(args.end(), parts.begin() + 1, parts.end());
  try {
    parse_ini_entries(parts[0]);
  } catch (const UserError&) {
  }
  try {
    const ParseResult r = parse_train_args(args);
    if (r.action == ParseResult::Action::kTrain) {
      // The run's config.ini, read back as a checkpoint's config is.
      parse_ini_entries(r.config.to_ini());
      (void)r.config.checkpoint_path();
    }
    fuzz::report("accepted");
  } catch (const UserError& e) {
    fuzz::report(e.what());
  }
  return 0;
}
