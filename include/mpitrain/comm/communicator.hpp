// MPI for mpitrain: an RAII environment, and a private duplicated
// communicator (Horovod style) with MPI_ERRORS_RETURN so every call is
// checked and a failure names the call and the rank (KaMPIng style).
#pragma once
#include <cstdint>
#include <mpi.h>

#include <functional>
#include <string>

namespace mpitrain {

// Initialises MPI (thread level SERIALIZED: the gradient reducer's thread calls
// MPI while the main thread does not) if it is not yet initialised, and
// finalises it on destruction only if it initialised it. Never throws from
// the destructor.
//
// Before MPI_Init it sets Open MPI's TCP eager limit to kTcpEagerLimitBytes
// unless the environment (mpirun --mca, OMPI_MCA_btl_tcp_eager_limit)
// already sets it. (An environment variable outranks Open MPI's parameter
// files, so a value in openmpi-mca-params.conf is overridden: set it through
// the environment or --mca instead.) Why: above the default 64 KiB a message
// needs a rendezvous handshake, and the two directions of a ring all-reduce
// between hosts then often run one after the other; 4 MiB keeps the ring
// blocks of gradient buckets up to 8 MiB (at P = 2) below it (figures:
// docs/performance.md).
class MpiEnvironment {
 public:
  static constexpr const char* kTcpEagerLimitVar = "OMPI_MCA_btl_tcp_eager_limit";
  static constexpr long long kTcpEagerLimitBytes = 4 << 20;

  MpiEnvironment(int* argc, char*** argv);
  ~MpiEnvironment();
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;

 private:
  bool initialized_here_ = false;
};

class Comm {
 public:
  // Duplicates `parent` (MPI_COMM_WORLD by default).
  explicit Comm(MPI_Comm parent = MPI_COMM_WORLD);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm get() const { return comm_; }

  // In-place sums over all ranks.
  void allreduce_sum(float* data, long long count) const;
  void allreduce_sum(double* data, long long count) const;
  void allreduce_sum(std::int32_t* data, long long count) const;  // exact: integer sums do not depend on order
  void allreduce_sum(std::int64_t* data, long long count) const;  // exact too
  void allreduce_max(double* data, long long count) const;
  void allreduce_min(double* data, long long count) const;
  void broadcast(void* data, long long bytes, int root) const;
  void broadcast(std::string& s, int root) const;
  void barrier() const;

  // Ends every rank of the job after printing `message` (with this rank's
  // number) to stderr: for faults after start-up, where other ranks may be
  // blocked in a collective and an exception would leave them hanging.
  [[noreturn]] void abort_all(const std::string& message, int code) const;

  // Runs `fn` on every rank; if it throws UserError on any rank, rank 0 prints
  // one message (the lowest failing rank's) as "mpitrain: error: ..." and
  // every rank throws ReportedError. This is how bad input found before
  // training is reported once and ends all ranks without a hang.
  void collective_check(const std::function<void()>& fn) const;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

// Runs a command's body on every rank and turns what it throws into the
// process exit code: ReportedError (already reported by rank 0) gives its
// code; any other error was found on one rank after the collective checks,
// where the others may be blocked in a collective, so it ends them all.
int run_on_all_ranks(const Comm& comm, const std::function<int()>& body);

// Throws SystemError naming `call` and the MPI error string when rc != MPI_SUCCESS.
void check_mpi(int rc, const char* call);

}  // namespace mpitrain
