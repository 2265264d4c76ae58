// `mpitrain inspect FILE` and `mpitrain evaluate --checkpoint FILE --data FILE`.
#pragma once
#include <string>
#include <vector>

namespace mpitrain {

// Prints what a checkpoint or dataset file holds. Single process, no MPI.
// Returns the exit code (0 ok, 1 checkpoint checksum BAD, 2 user error).
int inspect_command(const std::vector<std::string>& args);

// Exact loss and accuracy of a checkpoint's model on a split, sharded across
// the ranks of the job (run under mpirun). Returns the exit code.
int evaluate_command(const std::vector<std::string>& args);

// Compute time per sample and all-reduce cost (vs raw MPI_Allreduce) on the
// job's ranks, for the performance model. Returns the exit code.
int bench_command(const std::vector<std::string>& args);

}  // namespace mpitrain
