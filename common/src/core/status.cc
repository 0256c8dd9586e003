#include "spotgrid/core/status.h"

namespace spotgrid {

const char* ToString(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::kTransient: return "transient";
    case ErrorCategory::kThrottled: return "throttled";
    case ErrorCategory::kClockSkew: return "clock-skew";
    case ErrorCategory::kConditionFailed: return "condition-failed";
    case ErrorCategory::kNotFound: return "not-found";
    case ErrorCategory::kClient: return "client";
    case ErrorCategory::kInvalidInput: return "invalid-input";
    case ErrorCategory::kIo: return "io";
    case ErrorCategory::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string Error::ToString() const {
  std::string out;
  if (!service.empty()) out += service + " ";
  if (!operation.empty()) out += operation + " ";
  if (!out.empty()) out += "failed: ";
  if (http_status != 0) out += "HTTP " + std::to_string(http_status) + " ";
  if (!code.empty()) out += code + ": ";
  out += message.empty() ? std::string("(no message)") : message;
  if (!request_id.empty()) out += " (request id " + request_id + ")";
  return out;
}

Error Error::InvalidInput(std::string message) {
  Error e;
  e.category = ErrorCategory::kInvalidInput;
  e.message = std::move(message);
  return e;
}

Error Error::Io(std::string operation, std::string message) {
  Error e;
  e.category = ErrorCategory::kIo;
  e.operation = std::move(operation);
  e.message = std::move(message);
  return e;
}

Error Error::Cancelled(std::string operation) {
  Error e;
  e.category = ErrorCategory::kCancelled;
  e.operation = std::move(operation);
  e.message = "cancelled by shutdown";
  return e;
}

}  // namespace spotgrid
