#include "spotgrid/aws/aws_multi.h"

#include <algorithm>

namespace spotgrid {
namespace {

// How long one wait may last when nothing is due sooner: the loop is woken by the network, an
// offload's end or a timer, so this only bounds a wait that nothing ends.
constexpr std::chrono::milliseconds kMaxWait{1000};

}  // namespace

AwsMulti::AwsMulti(AwsContext& context)
    : clock_(context.clock()), http_(context.transport().NewMulti()) {}

AwsMulti::~AwsMulti() {
  for (auto& [id, work] : offloaded_) {
    if (work.thread.joinable()) work.thread.join();
  }
}

void AwsMulti::Start(AwsClient& client, AwsRequest request, Done done) {
  const std::uint64_t tag = next_tag_++;
  auto pending = std::make_unique<PendingCall>();
  pending->request = std::move(request);
  pending->done = std::move(done);
  pending->call.emplace(client, pending->request);
  calls_.emplace(tag, std::move(pending));
  Send(tag);
}

void AwsMulti::Send(std::uint64_t tag) {
  PendingCall& pending = *calls_.at(tag);
  Result<HttpRequest> http = pending.call->Attempt();
  if (!http.ok()) {
    // Ended before anything was sent; `done` still runs from the loop, never inside Start().
    ready_.push_back([this, tag, error = http.error()] {
      auto it = calls_.find(tag);
      std::unique_ptr<PendingCall> ended = std::move(it->second);
      calls_.erase(it);
      ended->done(error);
    });
    return;
  }
  http_->Start(tag, std::move(http).value());
}

void AwsMulti::Ended(std::uint64_t tag, Result<HttpResponse> outcome) {
  auto it = calls_.find(tag);
  if (it == calls_.end()) return;
  AwsClient::Call::Verdict verdict = it->second->call->Judge(std::move(outcome));
  if (verdict.result) {
    std::unique_ptr<PendingCall> ended = std::move(it->second);
    calls_.erase(it);
    ended->done(std::move(*verdict.result));
    return;
  }
  if (verdict.at_once) {
    Send(tag);
    return;
  }
  AddTimer(verdict.retry_after, [this, tag] { Send(tag); }, /*of_call=*/true);
}

void AwsMulti::After(std::chrono::milliseconds delay, std::function<void()> fn) {
  AddTimer(delay, std::move(fn), /*of_call=*/false);
}

void AwsMulti::AddTimer(std::chrono::milliseconds delay, std::function<void()> fn, bool of_call) {
  timers_.emplace(clock_.Monotonic() + delay, Timer{std::move(fn), of_call});
  if (!of_call) ++own_timers_;
}

void AwsMulti::OffloadVoid(std::function<void()> work, std::function<void()> done) {
  const std::uint64_t id = next_tag_++;
  Offloaded& entry = offloaded_[id];
  entry.done = std::move(done);
  entry.thread = std::thread([this, id, work = std::move(work)] {
    work();
    {
      std::lock_guard<std::mutex> lock(finished_mu_);
      finished_.push_back(id);
    }
    http_->Wake();
  });
}

std::size_t AwsMulti::pending() const {
  return calls_.size() + own_timers_ + offloaded_.size();
}

// Runs what is due now: ready callbacks, expired timers, returned offloads. True if any ran.
bool AwsMulti::RunReady() {
  bool ran = false;
  while (!ready_.empty()) {
    std::vector<std::function<void()>> now = std::exchange(ready_, {});
    for (auto& fn : now) fn();
    ran = true;
  }
  const Clock::MonoTime now = clock_.Monotonic();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    Timer timer = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    if (!timer.of_call) --own_timers_;
    timer.fn();
    ran = true;
  }
  std::vector<std::uint64_t> finished;
  {
    std::lock_guard<std::mutex> lock(finished_mu_);
    finished.swap(finished_);
  }
  for (std::uint64_t id : finished) {
    auto it = offloaded_.find(id);
    it->second.thread.join();
    std::function<void()> done = std::move(it->second.done);
    offloaded_.erase(it);
    done();
    ran = true;
  }
  return ran;
}

bool AwsMulti::RunOnce() {
  while (pending() > 0) {
    if (RunReady()) return true;
    std::chrono::milliseconds wait = kMaxWait;
    if (!timers_.empty()) {
      wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first -
                                                                     clock_.Monotonic()),
                        std::chrono::milliseconds(0), kMaxWait);
    }
    if (http_->active() == 0 && offloaded_.empty()) {
      // Only timers (calls in their backoff among them): sleep on the clock, which a FakeClock
      // advances instead.
      clock_.SleepFor(wait);
      continue;
    }
    bool ended = false;
    for (HttpMulti::Ended& end : http_->Poll(wait)) {
      Ended(end.tag, std::move(end.result));
      ended = true;
    }
    if (ended) return true;
  }
  return false;
}

}  // namespace spotgrid
