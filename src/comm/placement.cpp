#include "mpitrain/comm/placement.hpp"

#include <cblas.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "mpitrain/core/errors.hpp"

namespace mpitrain {
namespace {

// The ranks whose kernel has this rank's boot id: one machine, whatever the
// host names say. Without a readable boot id, each rank counts as its own
// machine (the node split then decides alone).
int count_ranks_on_machine(const Comm& comm) {
  constexpr int kId = 48;
  char id[kId] = {};
  if (std::FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
    if (!std::fgets(id, kId, f)) id[0] = '\0';
    std::fclose(f);
  }
  if (id[0] == '\0') std::snprintf(id, kId, "unknown-%d", comm.rank());
  std::vector<char> all(static_cast<size_t>(kId) * comm.size());
  check_mpi(MPI_Allgather(id, kId, MPI_CHAR, all.data(), kId, MPI_CHAR, comm.get()), "MPI_Allgather");
  int same = 0;
  for (int r = 0; r < comm.size(); ++r)
    if (std::strncmp(all.data() + static_cast<size_t>(r) * kId, id, kId) == 0) ++same;
  return same;
}

}  // namespace

ThreadRule default_threads(int cores, int ranks_on_node, int ranks_on_machine) {
  if (ranks_on_machine > ranks_on_node)
    return {std::max(1, cores / ranks_on_machine), "cores / ranks on the machine, whose nodes share one kernel"};
  return {std::max(1, cores / std::max(ranks_on_node, 1)), "cores per node / ranks per node"};
}

Placement configure_threads(const Comm& comm, int requested_threads) {
  Placement p;
  MPI_Comm node_comm = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(comm.get(), MPI_COMM_TYPE_SHARED, comm.rank(), MPI_INFO_NULL, &node_comm),
            "MPI_Comm_split_type");
  int node_rank = 0;
  check_mpi(MPI_Comm_size(node_comm, &p.ranks_on_node), "MPI_Comm_size");
  check_mpi(MPI_Comm_rank(node_comm, &node_rank), "MPI_Comm_rank");
  MPI_Comm_free(&node_comm);
  double leaders = node_rank == 0 ? 1.0 : 0.0;
  comm.allreduce_sum(&leaders, 1);
  p.node_count = static_cast<int>(leaders);
  p.cores_on_node = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  p.ranks_on_machine = std::max(count_ranks_on_machine(comm), p.ranks_on_node);

  if (requested_threads > 0) {
    p.threads_per_rank = requested_threads;
    p.how = "--threads";
  } else if (const char* s = std::getenv("SLURM_CPUS_PER_TASK"); s && std::atoi(s) > 0) {
    p.threads_per_rank = std::atoi(s);
    p.how = "SLURM_CPUS_PER_TASK";
  } else {
    const ThreadRule rule = default_threads(p.cores_on_node, p.ranks_on_node, p.ranks_on_machine);
    p.threads_per_rank = rule.threads;
    p.how = rule.how;
  }
  openblas_set_num_threads(p.threads_per_rank);

  auto env = [](const char* name) { const char* v = std::getenv(name); return std::string(v ? v : ""); };
  p.blas_core = openblas_get_corename();
  p.blas_coretype_env = env("OPENBLAS_CORETYPE");
  p.blas_pinned = !env("MPITRAIN_PINNED_OPENBLAS_CORETYPE").empty() && p.blas_coretype_env == env("MPITRAIN_PINNED_OPENBLAS_CORETYPE");
  p.slurm_job_id = env("SLURM_JOB_ID");
  p.slurm_nodes = env("SLURM_JOB_NUM_NODES");
  p.slurm_tasks_per_node = env("SLURM_TASKS_PER_NODE");
  p.slurm_cpus_per_task = env("SLURM_CPUS_PER_TASK");

  // Rank 0 gathers fixed-size host names (one small collective at start-up).
  constexpr int kName = 256;
  char name[kName] = {};
  gethostname(name, kName - 1);
  // Slurm's emulated or containerised nodes may share a host name; the node
  // name Slurm gave this rank's slurmd is the readable label then.
  if (const char* node = std::getenv("SLURMD_NODENAME"); node && *node) std::snprintf(name, kName, "%s", node);
  std::vector<char> all(comm.rank() == 0 ? static_cast<size_t>(kName) * comm.size() : 0);
  check_mpi(MPI_Gather(name, kName, MPI_CHAR, all.data(), kName, MPI_CHAR, 0, comm.get()), "MPI_Gather");
  for (int r = 0; comm.rank() == 0 && r < comm.size(); ++r) {
    const std::string host(all.data() + static_cast<size_t>(r) * kName);
    auto it = std::find_if(p.hosts.begin(), p.hosts.end(), [&](const auto& h) { return h.first == host; });
    if (it == p.hosts.end()) p.hosts.push_back({host, {r}});
    else it->second.push_back(r);
  }
  return p;
}

}  // namespace mpitrain
