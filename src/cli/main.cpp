// mpitrain: parse the subcommand and hand over to the library.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "blas_pin.hpp"
#include "mpitrain/cli/commands.hpp"
#include "mpitrain/comm/communicator.hpp"

namespace {
void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: mpitrain <command> [options]\n"
               "commands:\n"
               "  train     data-parallel training (run under mpirun/srun); 'mpitrain train --help'\n"
               "  convert   idx|csv -> HDF5 dataset; 'mpitrain convert idx --help'\n"
               "  inspect   FILE: what a checkpoint or dataset file holds; --model SPEC [--json]: a model's layout\n"
               "  evaluate  --checkpoint FILE --data FILE [--split test]: exact loss/accuracy (under mpirun)\n"
               "  bench     compute time per sample and all-reduce cost vs raw MPI_Allreduce (under mpirun)\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    usage(stdout);
    return 0;
  }
  if (command == "convert") return mpitrain::convert_command(args);
  if (command == "inspect") return mpitrain::inspect_command(args);
  if (command == "bench") {
    mpitrain::MpiEnvironment mpi(&argc, &argv);
    return mpitrain::bench_command(args);
  }
  if (command == "evaluate") {
    mpitrain::MpiEnvironment mpi(&argc, &argv);
    return mpitrain::evaluate_command(args);
  }
  if (command == "train") {
    mpitrain::pin_blas_kernel_if_deterministic(argv, args);  // before MPI starts: may re-execute
    mpitrain::MpiEnvironment mpi(&argc, &argv);
    return mpitrain::train_command(args);
  }
  std::fprintf(stderr, "mpitrain: error: unknown command '%s'\n", command.c_str());
  usage(stderr);
  return 2;
}
