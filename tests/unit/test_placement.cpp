// The default BLAS threads rule of comm/placement: the cores divided by the
// ranks that share them, the node's ranks, or the machine's when nodes share
// one kernel (emulated or containerised hosts), at least one thread.
#include <gtest/gtest.h>

#include <string>

#include "mpitrain/comm/placement.hpp"

namespace mpitrain {
namespace {

TEST(DefaultThreads, CoresPerNodeOverRanksPerNode) {
  EXPECT_EQ(default_threads(64, 8, 8).threads, 8);  // 8 ranks of 8 threads on a 64-core node
  EXPECT_EQ(default_threads(2, 2, 2).threads, 1);
  EXPECT_EQ(default_threads(2, 1, 1).threads, 2);
  EXPECT_EQ(std::string(default_threads(64, 8, 8).how), "cores per node / ranks per node");
}

TEST(DefaultThreads, NodesSharingOneKernelShareItsCores) {
  // 4 emulated hosts of 1 rank on a 2-core machine: 1 thread each, not 2.
  const ThreadRule r = default_threads(2, 1, 4);
  EXPECT_EQ(r.threads, 1);
  EXPECT_EQ(std::string(r.how), "cores / ranks on the machine, whose nodes share one kernel");
  EXPECT_EQ(default_threads(16, 2, 4).threads, 4);  // 2 hosts x 2 ranks on 16 cores
}

TEST(DefaultThreads, AtLeastOneThread) {
  EXPECT_EQ(default_threads(2, 4, 4).threads, 1);   // oversubscribed node
  EXPECT_EQ(default_threads(2, 1, 16).threads, 1);  // 16 emulated hosts on 2 cores
  EXPECT_EQ(default_threads(1, 0, 0).threads, 1);   // no rank count: no division by zero
}

}  // namespace
}  // namespace mpitrain
