// Errors as values at every I/O boundary.
//
// An Error describes one failed operation well enough for a user to act on it: which AWS
// service and operation failed, the HTTP status, the AWS error code, the message and the
// request id to quote to AWS support. `category` is what callers branch on (retry? give up?
// was it a lost conditional write?), so nobody string-matches codes outside the client core.
//
// Thread-safety: plain values; copy freely.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace spotgrid {

enum class ErrorCategory {
  kTransient,        // no response, reset, timeout, 5xx: safe to retry with backoff
  kThrottled,        // the service asked us to slow down: retry with backoff
  kClockSkew,        // our signing time is too far from the server's: correct and retry once
  kConditionFailed,  // a conditional write found the item in another state (never retried)
  kNotFound,         // the named resource does not exist (queue, table, bucket, key, item)
  kClient,           // any other 4xx: the request itself is wrong, retrying will not help
  kInvalidInput,     // rejected locally before anything was sent (bad argument, bad file)
  kIo,               // a local file or process operation failed
  kCancelled,        // stopped by shutdown
};

const char* ToString(ErrorCategory category);

struct Error {
  ErrorCategory category = ErrorCategory::kClient;
  std::string service;    // "SQS", "DynamoDB", "S3", "EC2", "AutoScaling", "IMDS"; empty if local
  std::string operation;  // "SendMessageBatch", "PutObject", ...
  int http_status = 0;    // 0 when no HTTP response was received
  std::string code;       // AWS error code ("ConditionalCheckFailedException") or a transport
                          // code ("ConnectionFailed", "Timeout", "TlsError")
  std::string message;
  std::string request_id;
  // The service's error document as received (at most 64 KiB), for callers that need more
  // than code and message, e.g. the item DynamoDB returns with a failed condition. Never
  // logged and not part of ToString().
  std::string response_body;

  // One line for logs and CLI output, e.g.
  // "DynamoDB UpdateItem failed: HTTP 400 ConditionalCheckFailedException: The conditional
  //  request failed (request id 5U0...)". Never contains credentials: clients never put
  // them into an Error in the first place.
  std::string ToString() const;

  bool IsConditionFailed() const { return category == ErrorCategory::kConditionFailed; }
  bool IsNotFound() const { return category == ErrorCategory::kNotFound; }
  bool IsRetryable() const {
    return category == ErrorCategory::kTransient || category == ErrorCategory::kThrottled ||
           category == ErrorCategory::kClockSkew;
  }

  static Error InvalidInput(std::string message);
  static Error Io(std::string operation, std::string message);
  static Error Cancelled(std::string operation);
};

// Status: success, or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design
  static Status Ok() { return Status(); }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }
  std::string ToString() const { return ok_ ? "OK" : error_.ToString(); }

 private:
  Error error_;
  bool ok_ = true;
};

// Result<T>: a T, or an Error. C++20 has no std::expected; this is the small subset we use.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(status.error()) {}  // NOLINT: only from a failed Status

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<Error>(v_); }
  Status status() const { return ok() ? Status() : Status(error()); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace spotgrid
