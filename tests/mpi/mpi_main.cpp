// main() for the MPI test binary: initialises MPI, runs every test on every
// rank, prints results from rank 0 only, and exits non-zero on every rank if
// any rank failed (so mpiexec reports the failure whichever rank saw it).
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/io/h5.hpp"

int main(int argc, char** argv) {
  mpitrain::MpiEnvironment env(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  mpitrain::h5::silence_errors();
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (failed && rank != 0) std::fprintf(stderr, "rank %d: some tests failed on this rank\n", rank);
  return any_failed;
}
