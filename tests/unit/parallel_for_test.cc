// ParallelFor over its pool of reused threads.
#include "spotgrid/core/parallel_for.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace spotgrid {
namespace {

TEST(ParallelForTest, CallsEveryIndexExactlyOnceAndReturnsAfterTheLastCallEnds) {
  for (int round = 0; round < 50; ++round) {  // later rounds run on reused threads
    std::vector<std::atomic<int>> calls(257);
    std::atomic<int> running{0};
    ParallelFor(calls.size(), 8, [&](std::size_t i) {
      ++running;
      calls[i]++;
      --running;
    });
    EXPECT_EQ(running.load(), 0);
    for (std::size_t i = 0; i < calls.size(); ++i) ASSERT_EQ(calls[i].load(), 1) << i;
  }
}

TEST(ParallelForTest, UsesAtMostTheGivenNumberOfThreadsIncludingTheCaller) {
  std::mutex mu;
  std::set<std::thread::id> threads;
  ParallelFor(1000, 3, [&](std::size_t) {
    std::lock_guard<std::mutex> lock(mu);
    threads.insert(std::this_thread::get_id());
  });
  EXPECT_LE(threads.size(), 3u);
}

TEST(ParallelForTest, ConcurrencyOfOneRunsInOrderOnTheCallingThread) {
  std::vector<std::size_t> order;
  const auto caller = std::this_thread::get_id();
  bool elsewhere = false;
  ParallelFor(5, 1, [&](std::size_t i) {
    order.push_back(i);
    elsewhere |= std::this_thread::get_id() != caller;
  });
  EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2, 3, 4}));
  EXPECT_FALSE(elsewhere);
}

TEST(ParallelForTest, NestedCallsFinishEvenWhenThePoolIsBusy) {
  std::atomic<int> inner_calls{0};
  ParallelFor(16, 16,
              [&](std::size_t) { ParallelFor(16, 16, [&](std::size_t) { ++inner_calls; }); });
  EXPECT_EQ(inner_calls.load(), 16 * 16);
}

TEST(ParallelForTest, CallsFromManyThreadsAtOnceEachSeeAllTheirIndices) {
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int c = 0; c < 8; ++c) {
    callers.emplace_back([&] {
      for (int round = 0; round < 20; ++round) {
        std::vector<std::atomic<int>> calls(64);
        ParallelFor(calls.size(), 4, [&](std::size_t i) { calls[i]++; });
        for (auto& n : calls) wrong += n.load() != 1;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(ParallelForStatusTest, RunAllAttemptsEveryIndexAndReturnsTheFirstFailureInTime) {
  std::vector<std::atomic<int>> calls(100);
  Status status = ParallelForStatus(calls.size(), 1, OnError::kRunAll, [&](std::size_t i) {
    calls[i]++;
    if (i == 7 || i == 42) return Status(Error::InvalidInput("failed at " + std::to_string(i)));
    return Status::Ok();
  });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().message, "failed at 7");  // concurrency 1: index order is time order
  for (std::size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].load(), 1) << i;
}

TEST(ParallelForStatusTest, StopStartingRunsNoIndexAfterAFailure) {
  std::vector<std::atomic<int>> calls(100);
  Status status = ParallelForStatus(calls.size(), 1, OnError::kStopStarting, [&](std::size_t i) {
    calls[i]++;
    return i == 10 ? Status(Error::InvalidInput("stop")) : Status::Ok();
  });
  ASSERT_FALSE(status.ok());
  for (std::size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].load(), i <= 10 ? 1 : 0) << i;
}

TEST(ParallelForStatusTest, AllSucceedingIsOk) {
  std::atomic<int> calls{0};
  EXPECT_TRUE(ParallelForStatus(64, 4, OnError::kRunAll, [&](std::size_t) {
                ++calls;
                return Status::Ok();
              }).ok());
  EXPECT_EQ(calls.load(), 64);
}

}  // namespace
}  // namespace spotgrid
