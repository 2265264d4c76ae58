// Collectives of mpitrain::Comm on every rank count: sums, max/min and
// broadcasts check values that differ per rank, collective_check must end
// every rank with ReportedError when any rank fails (and let rank 0 report
// the lowest failing rank's message once), and the communicator must be a
// private duplicate of its parent with MPI_ERRORS_RETURN.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/comm/exact_sum.hpp"
#include "mpitrain/comm/placement.hpp"
#include "mpitrain/core/errors.hpp"

namespace mpitrain {
namespace {

TEST(Comm, DuplicatesParentAndMatchesItsRanks) {
  Comm comm;
  int world_rank = -1, world_size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  EXPECT_NE(comm.get(), MPI_COMM_WORLD);
  int cmp = -1;
  MPI_Comm_compare(comm.get(), MPI_COMM_WORLD, &cmp);
  EXPECT_EQ(cmp, MPI_CONGRUENT);
  EXPECT_EQ(comm.rank(), world_rank);
  EXPECT_EQ(comm.size(), world_size);

  // Two Comm objects never share a communicator (library traffic stays private).
  Comm other;
  EXPECT_NE(other.get(), comm.get());

  MPI_Errhandler handler = MPI_ERRHANDLER_NULL;
  MPI_Comm_get_errhandler(comm.get(), &handler);
  EXPECT_EQ(handler, MPI_ERRORS_RETURN);
  if (handler != MPI_ERRHANDLER_NULL) MPI_Errhandler_free(&handler);
}

TEST(Comm, SecondEnvironmentNeitherReinitialisesNorFinalises) {
  { MpiEnvironment nested(nullptr, nullptr); }
  int finalized = 1;
  MPI_Finalized(&finalized);
  EXPECT_EQ(finalized, 0);
  Comm comm;  // MPI must still work after the nested environment is gone
  double one = 1.0;
  comm.allreduce_sum(&one, 1);
  EXPECT_EQ(one, static_cast<double>(comm.size()));
}

// MpiEnvironment raised Open MPI's TCP eager limit before MPI_Init (ctest
// does not set OMPI_MCA_btl_tcp_eager_limit), and Open MPI took it: its
// control variable, read through the MPI tool interface, says so.
TEST(Comm, TcpEagerLimitIsRaisedBeforeInit) {
  const char* env = std::getenv(MpiEnvironment::kTcpEagerLimitVar);
  ASSERT_NE(env, nullptr);
  EXPECT_EQ(std::string(env), std::to_string(MpiEnvironment::kTcpEagerLimitBytes));
#ifndef OPEN_MPI
  GTEST_SKIP() << "not Open MPI: no btl_tcp_eager_limit";
#endif
  int provided = 0;
  ASSERT_EQ(MPI_T_init_thread(MPI_THREAD_SINGLE, &provided), MPI_SUCCESS);
  int num = 0;
  MPI_T_cvar_get_num(&num);
  long long value = -1;
  for (int i = 0; i < num && value < 0; ++i) {
    char name[256], desc[1024];
    int name_len = sizeof name, desc_len = sizeof desc, verbosity = 0, bind = 0, scope = 0;
    MPI_Datatype type = MPI_DATATYPE_NULL;
    MPI_T_enum enumtype = MPI_T_ENUM_NULL;
    if (MPI_T_cvar_get_info(i, name, &name_len, &verbosity, &type, &enumtype, desc, &desc_len, &bind, &scope) !=
            MPI_SUCCESS ||
        std::string(name) != "btl_tcp_eager_limit")
      continue;
    MPI_T_cvar_handle handle;
    int count = 0;
    if (MPI_T_cvar_handle_alloc(i, nullptr, &handle, &count) != MPI_SUCCESS) {
      ADD_FAILURE() << "cannot read btl_tcp_eager_limit";
      break;
    }
    if (type == MPI_UNSIGNED_LONG) {
      unsigned long v = 0;
      MPI_T_cvar_read(handle, &v);
      value = static_cast<long long>(v);
    } else if (type == MPI_UNSIGNED_LONG_LONG) {
      unsigned long long v = 0;
      MPI_T_cvar_read(handle, &v);
      value = static_cast<long long>(v);
    } else if (type == MPI_INT) {
      int v = 0;
      MPI_T_cvar_read(handle, &v);
      value = v;
    } else {
      ADD_FAILURE() << "btl_tcp_eager_limit has an unexpected MPI datatype";
    }
    MPI_T_cvar_handle_free(&handle);
  }
  MPI_T_finalize();
  // -1: the TCP transport is not loaded (e.g. OMPI_MCA_btl=self,vader), so there is nothing to check.
  if (value == -1) GTEST_SKIP() << "Open MPI's TCP transport is not loaded: btl_tcp_eager_limit not registered";
  EXPECT_EQ(value, MpiEnvironment::kTcpEagerLimitBytes) << "Open MPI's btl_tcp_eager_limit";
}

// mpiexec puts every rank on this machine: one node, one kernel, so the
// ranks on the machine are those on the node and the default threads divide
// the node's cores among them; --threads wins over the rule.
TEST(Placement, RanksOnOneMachineAreTheNodesRanks) {
  Comm comm;
  const Placement p = configure_threads(comm, 0);
  EXPECT_EQ(p.ranks_on_node, comm.size());
  EXPECT_EQ(p.ranks_on_machine, comm.size());
  if (std::getenv("SLURM_CPUS_PER_TASK") == nullptr) {
    EXPECT_EQ(p.how, "cores per node / ranks per node");
    EXPECT_EQ(p.threads_per_rank, std::max(1, p.cores_on_node / comm.size()));
  }
  const Placement q = configure_threads(comm, 3);
  EXPECT_EQ(q.threads_per_rank, 3);
  EXPECT_EQ(q.how, "--threads");
  configure_threads(comm, 1);  // the tests' one thread per rank again
}

TEST(Comm, AllreduceSumFloat) {
  Comm comm;
  const int p = comm.size(), r = comm.rank();
  // Small (latency algorithm) and large (bandwidth algorithm) messages; every
  // value and sum is exact in float, so the result must match exactly.
  for (const long long count : {5LL, 1LL << 17}) {
    std::vector<float> v(static_cast<size_t>(count));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(r + 1) + 0.5f * static_cast<float>(i % 64);
    comm.allreduce_sum(v.data(), count);
    long long wrong = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      // sum over ranks of (r + 1) is p(p+1)/2
      const float want =
          static_cast<float>(p * (p + 1) / 2) + static_cast<float>(p) * 0.5f * static_cast<float>(i % 64);
      if (v[i] != want) ++wrong;
    }
    EXPECT_EQ(wrong, 0) << "count " << count << " on rank " << r;
  }
}

TEST(Comm, AllreduceSumDouble) {
  Comm comm;
  const int p = comm.size(), r = comm.rank();
  // Values where float precision would lose the low part.
  double v[3] = {1e10 * r + 0.25, static_cast<double>(r * r), r == p - 1 ? 3.5 : 0.0};
  comm.allreduce_sum(v, 3);
  EXPECT_EQ(v[0], 1e10 * (p * (p - 1) / 2) + 0.25 * p);
  EXPECT_EQ(v[1], static_cast<double>((p - 1) * p * (2 * p - 1) / 6));
  EXPECT_EQ(v[2], 3.5);
}

TEST(Comm, AllreduceSumIntegers) {
  Comm comm;
  const int p = comm.size(), r = comm.rank();
  // Far beyond a float's 24 bits, with signs (room for 64 ranks): integer sums are exact.
  std::int32_t a[2] = {(1 << 24) + r, -(1 << 24) - 2 * r};
  std::int64_t b[2] = {(1LL << 56) + r, -(1LL << 56)};
  comm.allreduce_sum(a, 2);
  comm.allreduce_sum(b, 2);
  EXPECT_EQ(a[0], p * (1 << 24) + p * (p - 1) / 2);
  EXPECT_EQ(a[1], -p * (1 << 24) - p * (p - 1));
  EXPECT_EQ(b[0], p * (1LL << 56) + p * (p - 1) / 2);
  EXPECT_EQ(b[1], -p * (1LL << 56));
}

// The exact gradient sum over ranks, each holding a share of 11 units (some
// ranks none), gives the bits of one process holding them all.
TEST(Comm, ExactGradientSumOverRanksEqualsOneProcess) {
  Comm comm;
  const int p = comm.size(), r = comm.rank();
  const long long units = 11, n = 1000;
  std::vector<std::vector<float>> g(units, std::vector<float>(n));
  for (long long u = 0; u < units; ++u)
    for (long long i = 0; i < n; ++i)
      g[u][i] = std::sin(static_cast<float>(u * n + i)) * (i % 7 == 0 ? 1e-4f : 1.0f) / static_cast<float>(u + 1);
  auto sum = [&](const Comm* c, long long from, long long to) {
    ExactGradientSum s({{0, 600}, {600, 400}}, n, units);
    s.begin(to - from, units);
    for (long long u = from; u < to; ++u) {
      std::copy(g[u].begin(), g[u].end(), s.unit(u - from));
      s.add(u - from, 0, 600);
      s.add(u - from, 600, 400);
    }
    std::vector<float> out(n);
    std::vector<double> sq(units);
    s.reduce_into(c, out.data(), sq.data());
    return out;
  };
  const std::vector<float> alone = sum(nullptr, 0, units);
  const std::vector<float> shared = sum(&comm, units * r / p, units * (r + 1) / p);
  EXPECT_EQ(std::memcmp(alone.data(), shared.data(), n * sizeof(float)), 0) << "rank " << r << " of " << p;
}

TEST(Comm, AllreduceMaxMin) {
  Comm comm;
  const int p = comm.size(), r = comm.rank();
  // Rank order scrambled so max/min are not simply the last/first rank.
  const double scrambled = static_cast<double>((r * 3 + 1) % (p + 1));
  double mx[3] = {r + 1.5, -2.0 * r, scrambled};
  double mn[3] = {r + 1.5, -2.0 * r, scrambled};
  comm.allreduce_max(mx, 3);
  comm.allreduce_min(mn, 3);
  double want_max = -1e300, want_min = 1e300;
  for (int q = 0; q < p; ++q) {
    const double s = static_cast<double>((q * 3 + 1) % (p + 1));
    want_max = std::max(want_max, s);
    want_min = std::min(want_min, s);
  }
  EXPECT_EQ(mx[0], p + 0.5);
  EXPECT_EQ(mx[1], 0.0);
  EXPECT_EQ(mx[2], want_max);
  EXPECT_EQ(mn[0], 1.5);
  EXPECT_EQ(mn[1], -2.0 * (p - 1));
  EXPECT_EQ(mn[2], want_min);
}

TEST(Comm, BroadcastStringFromLastRank) {
  Comm comm;
  const int root = comm.size() - 1;  // non-zero whenever size > 1
  const std::string sent = std::string("hello from rank ") + std::to_string(root) + std::string(1, '\0') + "tail";
  std::string s = comm.rank() == root ? sent : std::string(100, 'x');  // longer: must shrink
  comm.broadcast(s, root);
  EXPECT_EQ(s, sent);
  EXPECT_EQ(s.size(), sent.size());

  std::string empty = comm.rank() == root ? std::string() : std::string("junk");
  comm.broadcast(empty, root);
  EXPECT_TRUE(empty.empty()) << "rank " << comm.rank() << " kept '" << empty << "'";

  long long raw[2] = {comm.rank() == root ? 42LL : -1LL, comm.rank() == root ? -7LL : 0LL};
  comm.broadcast(raw, sizeof raw, root);
  EXPECT_EQ(raw[0], 42);
  EXPECT_EQ(raw[1], -7);
}

TEST(Comm, CheckMpiNamesTheCallAndRank) {
  EXPECT_NO_THROW(check_mpi(MPI_SUCCESS, "MPI_Fine"));
  try {
    check_mpi(MPI_ERR_COUNT, "MPI_Pretend");
    ADD_FAILURE() << "check_mpi did not throw";
  } catch (const SystemError& e) {
    const std::string m = e.what();
    int rank = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    EXPECT_NE(m.find("MPI_Pretend"), std::string::npos) << m;
    EXPECT_NE(m.find("rank " + std::to_string(rank)), std::string::npos) << m;
  }
}

TEST(Comm, FailedCollectiveThrowsInsteadOfAborting) {
  Comm comm;
  // Every rank passes the same invalid root: MPI_ERRORS_RETURN turns it into
  // a SystemError on every rank, not an abort of the job.
  int byte = 0;
  EXPECT_THROW(comm.broadcast(&byte, 1, comm.size() + 3), SystemError);
  // A count beyond int is refused before MPI sees it (no wrap to a small count).
  float dummy = 0.0f;
  EXPECT_THROW(comm.allreduce_sum(&dummy, 1LL << 33), SystemError);
  comm.barrier();  // the communicator still works afterwards
  double one = 1.0;
  comm.allreduce_sum(&one, 1);
  EXPECT_EQ(one, static_cast<double>(comm.size()));
}

TEST(Comm, CollectiveCheckPassesWhenNoRankThrows) {
  Comm comm;
  double ran = 0.0;
  EXPECT_NO_THROW(comm.collective_check([&] { ran = 1.0; }));
  comm.allreduce_sum(&ran, 1);
  EXPECT_EQ(ran, static_cast<double>(comm.size()));  // fn ran on every rank
}

// Runs collective_check(fn) with rank 0's stderr captured; returns what rank
// 0 printed (empty on other ranks) and whether this rank got ReportedError.
struct CheckOutcome {
  bool reported = false;
  int exit_code = -1;
  std::string rank0_stderr;
};

CheckOutcome run_check(const Comm& comm, const std::function<void()>& fn) {
  CheckOutcome out;
  if (comm.rank() == 0) testing::internal::CaptureStderr();
  try {
    comm.collective_check(fn);
  } catch (const ReportedError& e) {
    out.reported = true;
    out.exit_code = e.exit_code;
  }
  if (comm.rank() == 0) out.rank0_stderr = testing::internal::GetCapturedStderr();
  return out;
}

TEST(Comm, CollectiveCheckWhenOnlyLastRankThrows) {
  Comm comm;
  const int last = comm.size() - 1;
  const CheckOutcome o = run_check(comm, [&] {
    if (comm.rank() == last) throw UserError("boom from rank " + std::to_string(comm.rank()));
  });
  EXPECT_TRUE(o.reported) << "rank " << comm.rank() << " did not get ReportedError";
  EXPECT_EQ(o.exit_code, kExitUserError);
  if (comm.rank() == 0) {
    EXPECT_EQ(o.rank0_stderr, "mpitrain: error: boom from rank " + std::to_string(last) + "\n");
  }
}

TEST(Comm, CollectiveCheckReportsLowestOfSeveralFailingRanks) {
  Comm comm;
  // Ranks 1.. fail (rank 0 too when it is alone); the lowest failing rank speaks.
  const int lowest = comm.size() > 1 ? 1 : 0;
  const CheckOutcome o = run_check(comm, [&] {
    if (comm.rank() >= lowest) throw UserError("boom from rank " + std::to_string(comm.rank()));
  });
  EXPECT_TRUE(o.reported) << "rank " << comm.rank() << " did not get ReportedError";
  EXPECT_EQ(o.exit_code, kExitUserError);
  if (comm.rank() == 0) {
    EXPECT_EQ(o.rank0_stderr, "mpitrain: error: boom from rank " + std::to_string(lowest) + "\n");
  }

  // The communicator is usable after a reported error, and a later check passes.
  const CheckOutcome ok = run_check(comm, [] {});
  EXPECT_FALSE(ok.reported);
  if (comm.rank() == 0) {
    EXPECT_EQ(ok.rank0_stderr, "");
  }
}

}  // namespace
}  // namespace mpitrain
