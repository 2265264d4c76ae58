#include "mpitrain/comm/communicator.hpp"

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mpitrain/core/errors.hpp"

namespace mpitrain {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  int rank = -1;
  int init = 0;
  MPI_Initialized(&init);
  if (init) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  throw SystemError(std::string(call) + " failed on rank " + std::to_string(rank) + ": " +
                    std::string(text, static_cast<size_t>(len)));
}

MpiEnvironment::MpiEnvironment(int* argc, char*** argv) {
  int init = 0;
  MPI_Initialized(&init);
  if (!init) {
    setenv(kTcpEagerLimitVar, std::to_string(kTcpEagerLimitBytes).c_str(), 0);  // 0: the user's setting wins
    int provided = 0;
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    initialized_here_ = true;
  }
}

MpiEnvironment::~MpiEnvironment() {
  if (!initialized_here_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

Comm::Comm(MPI_Comm parent) {
  check_mpi(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
  check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

Comm::~Comm() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
}

void Comm::allreduce_sum(float* data, long long count) const {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_int(count, "allreduce count"), MPI_FLOAT,
                          MPI_SUM, comm_), "MPI_Allreduce");
}

void Comm::allreduce_sum(double* data, long long count) const {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_int(count, "allreduce count"), MPI_DOUBLE,
                          MPI_SUM, comm_), "MPI_Allreduce");
}

void Comm::allreduce_sum(std::int32_t* data, long long count) const {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_int(count, "allreduce count"), MPI_INT32_T,
                          MPI_SUM, comm_), "MPI_Allreduce");
}

void Comm::allreduce_sum(std::int64_t* data, long long count) const {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_int(count, "allreduce count"), MPI_INT64_T,
                          MPI_SUM, comm_), "MPI_Allreduce");
}

void Comm::allreduce_max(double* data, long long count) const {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_int(count, "allreduce count"), MPI_DOUBLE,
                          MPI_MAX, comm_), "MPI_Allreduce");
}

void Comm::allreduce_min(double* data, long long count) const {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_int(count, "allreduce count"), MPI_DOUBLE,
                          MPI_MIN, comm_), "MPI_Allreduce");
}

void Comm::broadcast(void* data, long long bytes, int root) const {
  check_mpi(MPI_Bcast(data, checked_int(bytes, "broadcast bytes"), MPI_BYTE, root, comm_), "MPI_Bcast");
}

void Comm::broadcast(std::string& s, int root) const {
  long long n = static_cast<long long>(s.size());
  broadcast(&n, sizeof n, root);
  s.resize(static_cast<size_t>(n));
  if (n > 0) broadcast(s.data(), n, root);
}

void Comm::barrier() const { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

void Comm::abort_all(const std::string& message, int code) const {
  std::fprintf(stderr, "mpitrain: fatal error on rank %d: %s\n", rank_, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

void Comm::collective_check(const std::function<void()>& fn) const {
  std::string message;
  double failed = 0.0;
  try {
    fn();
  } catch (const UserError& e) {
    message = e.what();
    failed = 1.0;
  }
  // The lowest failing rank speaks: send its message to rank 0.
  double first_failed = failed > 0 ? rank_ : static_cast<double>(size_);
  allreduce_min(&first_failed, 1);
  if (first_failed >= size_) return;
  const int speaker = static_cast<int>(first_failed);
  broadcast(message, speaker);
  if (rank_ == 0) {
    std::fprintf(stderr, "mpitrain: error: %s\n", message.c_str());
    std::fflush(stderr);
  }
  throw ReportedError(kExitUserError);
}

int run_on_all_ranks(const Comm& comm, const std::function<int()>& body) {
  try {
    return body();
  } catch (const ReportedError& e) {
    return e.exit_code;
  } catch (const UserError& e) {
    comm.abort_all(e.what(), kExitUserError);
  } catch (const std::exception& e) {
    comm.abort_all(e.what(), kExitSystemError);
  }
}

}  // namespace mpitrain
