// The one retry policy of the client core: AWS "standard" retry mode.
//
//  - What is retried: transient errors (no response, 500/502/503/504, RequestTimeout...),
//    throttling codes, and clock-skew errors once after correcting the clock. Never other 4xx,
//    never a failed conditional write.
//  - Backoff: full jitter, delay = random[0,1) * min(base * 2^(retry-1), cap).
//  - A retry quota (token bucket, 500 tokens; 5 per retry, 10 after a timeout; a success
//    refunds) so a failing endpoint does not get hammered by every thread at once.
// Batch calls retry only their failed entries on top of this (SQS Failed[], DynamoDB
// UnprocessedItems), using the same Backoff().
//
// Thread-safety: RetryPolicy is shared by all threads of a client; all methods are safe.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>

#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"

namespace spotgrid {

struct RetryOptions {
  int max_attempts = 3;                  // total, including the first; AWS_MAX_ATTEMPTS overrides
  std::chrono::milliseconds base{1000};  // full-jitter base; tests may lower it
  std::chrono::milliseconds cap{20000};  // upper bound of one delay before jitter
  int quota_capacity = 500;              // retry tokens per RetryPolicy (per AwsContext)

  static RetryOptions FromEnvironment(const Environment& env);
};

// Classifies an AWS error code + HTTP status (code may be empty; status 0 = no response) into
// a category, per the table in CONTRACTS.md. `message` matters only for the signature/auth
// codes (InvalidSignatureException, SignatureDoesNotMatch, AuthFailure), which mean clock skew
// when the message talks about time ("Signature expired: ...") and a client error otherwise.
ErrorCategory ClassifyAwsError(int http_status, std::string_view code,
                               std::string_view message = {});

class RetryPolicy {
 public:
  // `random01` returns a uniform value in [0,1); injectable for deterministic tests.
  explicit RetryPolicy(RetryOptions options, std::function<double()> random01 = {});

  const RetryOptions& options() const { return options_; }

  // Delay before retry number `retry` (1 = first retry).
  std::chrono::milliseconds Backoff(int retry);

  // Asks the quota for a retry after `error`: the tokens taken, or nullopt to give up now.
  std::optional<int> AcquireRetry(const Error& error);
  // Called once per successful call with what its last retry cost (0 if it needed none):
  // a first-try success refunds 1 token, a success after retries refunds that cost.
  void OnSuccess(int last_retry_cost);
  // Tokens left in the quota (for tests and diagnostics).
  int available_tokens() const;

 private:
  RetryOptions options_;
  std::function<double()> random01_;
  mutable std::mutex mu_;
  int tokens_;
  std::mt19937_64 rng_;
};

}  // namespace spotgrid
