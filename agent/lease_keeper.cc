#include "agent/lease_keeper.h"

#include <algorithm>

#include "agent/systemd.h"
#include "spotgrid/core/deadline.h"
#include "spotgrid/core/log.h"

namespace spotgrid::agent {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// After a renewal that got no verdict, the next try comes this much sooner than a heartbeat.
constexpr int kRetryDivisor = 4;
constexpr seconds kMinRetry{1};

}  // namespace

seconds FenceMargin(seconds heartbeat) { return std::max(seconds(5), heartbeat / 2); }

LeaseKeeper::LeaseKeeper(std::shared_ptr<UnitLeases> ledger, Clock& clock, LeaseRef lease,
                         Settings settings, Callbacks callbacks, Clock::MonoTime confirmed_at)
    : ledger_(std::move(ledger)),
      clock_(clock),
      lease_(std::move(lease)),
      settings_(settings),
      callbacks_(std::move(callbacks)),
      confirmed_at_ns_(confirmed_at.time_since_epoch().count()) {}

LeaseKeeper::~LeaseKeeper() { Stop(); }

void LeaseKeeper::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    LogContext context(lease_.job, lease_.unit, lease_.attempt);
    Loop();
  });
}

void LeaseKeeper::Stop() {
  stop_.Request();
  if (thread_.joinable()) thread_.join();
}

Clock::MonoTime LeaseKeeper::FenceTime() const {
  const Clock::MonoTime confirmed{std::chrono::nanoseconds(confirmed_at_ns_.load())};
  return confirmed + settings_.lease - FenceMargin(settings_.heartbeat);
}

bool LeaseKeeper::ConfirmedWithin(std::chrono::nanoseconds age) const {
  const Clock::MonoTime confirmed{std::chrono::nanoseconds(confirmed_at_ns_.load())};
  return clock_.Monotonic() - confirmed < age;
}

void LeaseKeeper::NoteConfirmed(Clock::MonoTime sent) {
  const std::int64_t ns = sent.time_since_epoch().count();
  std::int64_t seen = confirmed_at_ns_.load();
  while (seen < ns && !confirmed_at_ns_.compare_exchange_weak(seen, ns)) {
  }
}

bool LeaseKeeper::Renew() {
  if (lost_) return false;
  const Clock::MonoTime sent = clock_.Monotonic();
  Result<RenewResult> renewed = Error::Cancelled("RenewLease");
  {
    // A renewal is worth waiting for one heartbeat at most (the next one goes out then), and
    // never past the fence (the unit is stopped then anyway) or the caller's cap.
    Clock::MonoTime until = std::min(sent + settings_.heartbeat, FenceTime());
    if (callbacks_.cap) {
      if (auto cap = callbacks_.cap()) until = std::min(until, *cap);
    }
    ScopedDeadline deadline(until);
    renewed = ledger_->RenewLease(lease_, settings_.lease,
                                  callbacks_.progress ? callbacks_.progress() : std::nullopt);
  }
  if (!renewed.ok()) {
    if (renewed.error().IsConditionFailed()) {
      if (!lost_.exchange(true) && callbacks_.on_lost) callbacks_.on_lost();
    } else {
      Logger().warn("lease renewal failed: {}", renewed.error().ToString());
    }
    return false;
  }
  NoteConfirmed(sent);
  if (renewed->cancel_requested && !cancel_requested_.exchange(true)) {
    Logger().info("cancel requested by the controller; stopping the unit");
    if (callbacks_.on_cancel) callbacks_.on_cancel();
  }
  return true;
}

void LeaseKeeper::Loop() {
  Clock::MonoTime next = clock_.Monotonic() + settings_.heartbeat;
  while (!stop_.Requested() && !lost_) {
    const Clock::MonoTime now = clock_.Monotonic();
    if (now >= next) {
      const bool renewed = Renew();
      // Counted from the send, so a slow renewal does not push the cadence back; after one
      // that timed out, the next try is due at once.
      const seconds pause =
          renewed ? settings_.heartbeat
                  : std::max<seconds>(kMinRetry, settings_.heartbeat / kRetryDivisor);
      next = now + pause;
      continue;
    }
    const auto until = std::chrono::duration_cast<milliseconds>(next - now);
    stop_.WaitFor(std::clamp(until, milliseconds(1), settings_.poll_slice));
  }
}

}  // namespace spotgrid::agent
