#include "mpitrain/comm/progress_board.hpp"

#include <unistd.h>

#include <new>

namespace mpitrain {

ProgressBoard::ProgressBoard(const Comm& comm) {
  check_mpi(MPI_Comm_split_type(comm.get(), MPI_COMM_TYPE_SHARED, comm.rank(), MPI_INFO_NULL, &node_),
            "MPI_Comm_split_type");
  check_mpi(MPI_Comm_rank(node_, &local_rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(node_, &local_size_), "MPI_Comm_size");
  void* mine = nullptr;
  check_mpi(MPI_Win_allocate_shared(static_cast<MPI_Aint>(sizeof(ProgressSlot)), static_cast<int>(sizeof(ProgressSlot)),
                                    MPI_INFO_NULL, node_, &mine, &win_),
            "MPI_Win_allocate_shared");
  MPI_Aint size = 0;
  int disp = 0;
  void* first = nullptr;
  check_mpi(MPI_Win_shared_query(win_, 0, &size, &disp, &first), "MPI_Win_shared_query");
  slots_ = static_cast<ProgressSlot*>(first);  // the slots are contiguous, in local rank order
  auto* own = new (mine) ProgressSlot{};
  own->rank.store(comm.rank());
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  host_ = name;
  check_mpi(MPI_Barrier(node_), "MPI_Barrier");  // every slot is initialised before anyone reads one
}

ProgressBoard::~ProgressBoard() {
  if (win_ != MPI_WIN_NULL) MPI_Win_free(&win_);
  if (node_ != MPI_COMM_NULL) MPI_Comm_free(&node_);
}

}  // namespace mpitrain
