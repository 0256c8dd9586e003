// AwsMulti: many AWS calls at once on the calling thread.
//
// A caller that keeps a window of calls in flight (enqueue keeps 32 BatchWriteItem and 32
// SendMessageBatch calls going) would otherwise need a thread per call, and every call would
// then cost a thread wake-up and two context switches: more client CPU than signing and
// encoding it. Here the calls share one HttpMulti. Each goes through AwsClient::Call, so it is
// signed, retried, backed off and bounded by its deadline exactly as AwsClient::Send would
// do it; its `done` runs on this thread when it has ended.
//
// Work with no asynchronous form (a ledger write through an interface that only blocks) runs
// beside the calls with Offload(): on a thread of its own, with its `done` back on this one.
//
// A retry's backoff is a timer of the loop; while only timers are pending, the loop sleeps
// on the context's clock (so a FakeClock drives it in tests).
//
// Thread-safety: one thread uses an AwsMulti; every callback runs on it, inside RunOnce().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/http/http.h"

namespace spotgrid {

class AwsMulti {
 public:
  explicit AwsMulti(AwsContext& context);
  // Waits for offloaded work to return; calls still in flight are abandoned (their `done`
  // never runs).
  ~AwsMulti();
  AwsMulti(const AwsMulti&) = delete;
  AwsMulti& operator=(const AwsMulti&) = delete;

  using Done = std::function<void(Result<HttpResponse>)>;
  // Starts a call of `client` (which outlives it); `done` gets what AwsClient::Send would
  // have returned.
  void Start(AwsClient& client, AwsRequest request, Done done);
  // Runs `fn` on the loop once `delay` has passed.
  void After(std::chrono::milliseconds delay, std::function<void()> fn);
  // Runs `work` on a thread of its own, then `done` with its result on the loop.
  template <typename Work, typename DoneFn>
  void Offload(Work work, DoneFn done) {
    auto result = std::make_shared<std::optional<std::invoke_result_t<Work&>>>();
    OffloadVoid([result, work = std::move(work)]() mutable { result->emplace(work()); },
                [result, done = std::move(done)]() mutable { done(std::move(**result)); });
  }

  // Runs the loop until at least one callback has run; false at once when nothing is pending
  // (no call, timer or offloaded work).
  bool RunOnce();
  // Calls, timers (After) and offloaded work not yet ended.
  std::size_t pending() const;

 private:
  struct PendingCall {
    AwsRequest request;
    std::optional<AwsClient::Call> call;  // refers to `request`: a PendingCall never moves
    Done done;
  };
  void Send(std::uint64_t tag);
  void AddTimer(std::chrono::milliseconds delay, std::function<void()> fn, bool of_call);
  void Ended(std::uint64_t tag, Result<HttpResponse> outcome);
  void OffloadVoid(std::function<void()> work, std::function<void()> done);
  bool RunReady();

  Clock& clock_;
  std::unique_ptr<HttpMulti> http_;
  std::uint64_t next_tag_ = 1;
  std::map<std::uint64_t, std::unique_ptr<PendingCall>> calls_;
  struct Timer {
    std::function<void()> fn;
    bool of_call;  // a call's backoff (the call is pending already)
  };
  std::multimap<Clock::MonoTime, Timer> timers_;
  std::size_t own_timers_ = 0;                // timers_ from After()
  std::vector<std::function<void()>> ready_;  // calls that ended unsent, to report in order

  struct Offloaded {
    std::thread thread;
    std::function<void()> done;
  };
  std::map<std::uint64_t, Offloaded> offloaded_;
  std::mutex finished_mu_;
  std::vector<std::uint64_t> finished_;  // offloaded work that returned (guarded)
};

}  // namespace spotgrid
