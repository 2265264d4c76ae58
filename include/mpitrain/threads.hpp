// BLAS threads per rank, chosen before the first BLAS call: --threads if
// given, else SLURM_CPUS_PER_TASK, else the node's cores divided by the ranks
// on the node (found with an MPI shared-memory split), at least 1.
#pragma once
#include <string>

#include "mpitrain/comm.hpp"

namespace mpitrain {

struct Placement {
  int threads_per_rank = 1;
  int ranks_on_node = 1;
  int node_count = 1;
  int cores_on_node = 1;
  std::string how;  // which rule chose threads_per_rank
};

// Collective over comm. Sets OpenBLAS's thread count.
Placement configure_threads(const Comm& comm, int requested_threads);

}  // namespace mpitrain
