// LeaseKeeper: a running unit's lease, renewed on a thread of its own.
//
// The lease is what lets exactly one worker run a unit, so its renewals must not wait behind
// anything else the slot does: a sync, an upload, a ledger write that hangs on a black-holed
// connection. The keeper renews every heartbeat (sooner after a failure), each renewal bounded
// by a deadline of one heartbeat, and tells the slot two things:
//   - Lost(): the ledger refused a renewal (the unit was taken over or changed state); the
//     `on_lost` callback runs once, on the keeper's thread.
//   - FenceTime(): when the slot must have stopped the unit unless a renewal lands first. It
//     is the last confirmed renewal's send time plus the lease, less a margin for clock skew
//     between workers (lease_until is judged by other workers' wall clocks): a worker that
//     cannot renew stops its unit before anyone may take it over (fencing by time), so a unit
//     never runs on two workers at once.
//
// Times are on the Clock; waits are real-time slices of at most `poll_slice`, so a test moves
// a FakeClock and the keeper notices within a slice.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "spotgrid/core/clock.h"
#include "spotgrid/ledger/unit_leases.h"

namespace spotgrid::agent {

// The part of the lease a worker keeps for skew between its clock and others': the unit is
// stopped this long before the lease could run out by the last renewal that was confirmed.
std::chrono::seconds FenceMargin(std::chrono::seconds heartbeat);

class LeaseKeeper {
 public:
  struct Settings {
    std::chrono::seconds lease{90};
    std::chrono::seconds heartbeat{30};
    std::chrono::milliseconds poll_slice{200};
  };
  struct Callbacks {
    std::function<std::optional<std::string>()> progress;  // what to report with a renewal
    std::function<void()> on_lost;                         // once, when a renewal is refused
    std::function<void()> on_cancel;                       // once, when cancel is requested
    // A time no renewal may outlive besides the fence (a drain's deadline), if any.
    std::function<std::optional<Clock::MonoTime>()> cap;
  };

  // `confirmed_at`: when the claim that granted the lease was sent.
  LeaseKeeper(std::shared_ptr<UnitLeases> ledger, Clock& clock, LeaseRef lease, Settings settings,
              Callbacks callbacks, Clock::MonoTime confirmed_at);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Starts the renewing thread; Stop() ends it (no renewal is sent after Stop returns).
  void Start();
  void Stop();

  // Renews now (before a sync writes to S3, before the final writes). True while the lease is
  // ours; false when it was refused or could not be confirmed.
  bool Renew();

  bool Lost() const { return lost_.load(); }
  bool CancelRequested() const { return cancel_requested_.load(); }
  Clock::MonoTime FenceTime() const;
  // The lease was confirmed by a renewal (or the claim) sent less than `age` ago.
  bool ConfirmedWithin(std::chrono::nanoseconds age) const;

 private:
  void Loop();
  void NoteConfirmed(Clock::MonoTime sent);

  std::shared_ptr<UnitLeases> ledger_;
  Clock& clock_;
  const LeaseRef lease_;
  const Settings settings_;
  const Callbacks callbacks_;
  std::atomic<std::int64_t> confirmed_at_ns_;
  std::atomic<bool> lost_{false};
  std::atomic<bool> cancel_requested_{false};
  StopSource stop_;
  std::thread thread_;
};

}  // namespace spotgrid::agent
