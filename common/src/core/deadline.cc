#include "spotgrid/core/deadline.h"

#include <algorithm>

namespace spotgrid {
namespace {

thread_local std::optional<Clock::MonoTime> current_deadline;

}  // namespace

ScopedDeadline::ScopedDeadline(Clock::MonoTime deadline) : previous_(current_deadline) {
  current_deadline = previous_ ? std::min(*previous_, deadline) : deadline;
}

ScopedDeadline::~ScopedDeadline() { current_deadline = previous_; }

std::optional<Clock::MonoTime> ScopedDeadline::Current() { return current_deadline; }

Error DeadlineExceeded(std::string service, std::string operation) {
  Error error;
  error.category = ErrorCategory::kTransient;
  error.service = std::move(service);
  error.operation = std::move(operation);
  error.code = "DeadlineExceeded";
  error.message = "abandoned at the deadline of what the call serves (no reply: it may or may "
                  "not have been applied)";
  return error;
}

}  // namespace spotgrid
