// A deadline for every AWS call made on this thread within a scope.
//
// A call is worth making only while what it serves still stands: a lease renewal is pointless
// once the lease has run out, a release after the drain's deadline, an upload after the Spot
// reclaim. The ledger, queue and storage interfaces don't carry deadlines through each method
// (they are small on purpose); instead the code that knows the deadline opens a scope, and the
// client core (AwsClient::Send) ends each exchange, retry and backoff by it, returning
// a kTransient "DeadlineExceeded" error: no verdict, exactly like a reply that never came.
// Scopes nest and only ever narrow: an inner scope can make the deadline earlier, never later.
//
// Deadlines are points on the monotonic time of the Clock the caller and the client share
// (Clock::System() in the product).
//
// Thread-safety: the deadline is per thread; a scope must end on the thread that opened it.
#pragma once

#include <optional>

#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"

namespace spotgrid {

class ScopedDeadline {
 public:
  explicit ScopedDeadline(Clock::MonoTime deadline);
  ~ScopedDeadline();
  ScopedDeadline(const ScopedDeadline&) = delete;
  ScopedDeadline& operator=(const ScopedDeadline&) = delete;

  // This thread's deadline: the earliest of the open scopes; nullopt outside any scope.
  static std::optional<Clock::MonoTime> Current();

 private:
  std::optional<Clock::MonoTime> previous_;
};

// The error of a call abandoned at its deadline.
Error DeadlineExceeded(std::string service, std::string operation);

}  // namespace spotgrid
