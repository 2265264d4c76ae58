#include "mpitrain/threads.hpp"

#include <cblas.h>

#include <cstdlib>
#include <thread>

#include "mpitrain/errors.hpp"

namespace mpitrain {

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

  if (requested_threads > 0) {
    p.threads_per_rank = requested_threads;
    p.how = "--threads";
  } else if (const char* s = std::getenv("SLURM_CPUS_PER_TASK"); s && std::atoi(s) > 0) {
    p.threads_per_rank = std::atoi(s);
    p.how = "SLURM_CPUS_PER_TASK";
  } else {
    p.threads_per_rank = std::max(1, p.cores_on_node / p.ranks_on_node);
    p.how = "cores per node / ranks per node";
  }
  openblas_set_num_threads(p.threads_per_rank);
  return p;
}

}  // namespace mpitrain
