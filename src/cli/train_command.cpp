// `mpitrain train`: parse options on every rank, train, and turn every
// failure into an exit code without leaving a rank hanging.
#include <cstdio>

#include "mpitrain/cli/commands.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/h5.hpp"
#include "mpitrain/train/trainer.hpp"

namespace mpitrain {

int train_command(const std::vector<std::string>& args) {
  Comm comm;
  return run_on_all_ranks(comm, [&] {
    ParseResult parsed;
    comm.collective_check([&] { parsed = parse_train_args(args); });
    if (parsed.action == ParseResult::Action::kHelp) {
      if (comm.rank() == 0) std::printf("%s", parsed.help_text.c_str());
      return 0;
    }
    h5::silence_errors();
    run_training(parsed.config, comm);
    return 0;
  });
}

}  // namespace mpitrain
