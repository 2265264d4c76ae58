// Where the ranks run and how many BLAS threads each gets. Threads are chosen
// before the first BLAS call: --threads if given, else SLURM_CPUS_PER_TASK,
// else the node's cores divided by the ranks on the node (found with an MPI
// shared-memory split), at least 1. Nodes that share one kernel (emulated
// or containerised hosts on one machine: the same boot id) share its cores,
// so the ranks on the machine divide them then. Rank 0 also gathers every
// rank's host name, and the Slurm allocation (if any) is read from the
// environment.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "mpitrain/comm/communicator.hpp"

namespace mpitrain {

struct Placement {
  int threads_per_rank = 1;
  int ranks_on_node = 1;
  int node_count = 1;
  int cores_on_node = 1;
  // Ranks on this rank's machine: those whose kernel has the same boot id
  // (/proc/sys/kernel/random/boot_id), at least ranks_on_node; the ranks
  // that share this rank's cores and memory. More than ranks_on_node when
  // nodes are emulated or containerised on one machine (scripts/netns-cluster.sh).
  int ranks_on_machine = 1;
  std::string how;  // which rule chose threads_per_rank
  // The kernel set OpenBLAS runs (openblas_get_corename, e.g. "Haswell" for
  // AVX2, "SkylakeX" for AVX-512: their sgemm differs 2x), and the
  // OPENBLAS_CORETYPE that chose it ("" when OpenBLAS detected the CPU).
  std::string blas_core, blas_coretype_env;
  bool blas_pinned = false;  // OPENBLAS_CORETYPE was set by mpitrain --deterministic (cli/blas_pin.hpp)
  // Rank 0 only: each host name with the world ranks on it, in rank order.
  std::vector<std::pair<std::string, std::vector<int>>> hosts;
  // Slurm job id, nodes, tasks per node, cpus per task ("" outside Slurm).
  std::string slurm_job_id, slurm_nodes, slurm_tasks_per_node, slurm_cpus_per_task;
};

// The default BLAS threads per rank (no --threads, no SLURM_CPUS_PER_TASK):
// the cores divided by the ranks sharing them, at least 1; `how` names the
// rule.
struct ThreadRule {
  int threads;
  const char* how;
};
ThreadRule default_threads(int cores, int ranks_on_node, int ranks_on_machine);

// Collective over comm. Sets OpenBLAS's thread count.
Placement configure_threads(const Comm& comm, int requested_threads);

}  // namespace mpitrain
