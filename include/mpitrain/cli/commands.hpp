// The subcommands of the `mpitrain` binary. Each takes its arguments without
// "mpitrain <command>", prints its own errors and returns the exit code.
// src/cli/main.cpp only dispatches to these; the tests call them directly.
#pragma once
#include <string>
#include <vector>

namespace mpitrain {

// `mpitrain train`: the training run (under mpirun).
int train_command(const std::vector<std::string>& args);

// `mpitrain convert <idx|csv> [options]`: a dataset file from IDX or CSV.
int convert_command(const std::vector<std::string>& args);

// `mpitrain inspect FILE`: what a checkpoint or dataset file holds. Single
// process, no MPI. Exit code 0 ok, 1 checkpoint checksum BAD, 2 user error.
int inspect_command(const std::vector<std::string>& args);

// `mpitrain evaluate`: exact loss and accuracy of a checkpoint's model on a
// split, sharded across the ranks of the job (run under mpirun).
int evaluate_command(const std::vector<std::string>& args);

// `mpitrain bench`: compute time per sample and all-reduce cost (vs raw
// MPI_Allreduce) on the job's ranks, for the performance model.
int bench_command(const std::vector<std::string>& args);

}  // namespace mpitrain
