#include "spotgrid/aws/retry.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <string>

#include "core/strings.h"
#include "spotgrid/core/log.h"

namespace spotgrid {
namespace {

// botocore "standard" mode: retries/standard.py (plus HTTP 429, as JS v3 and Java v2 do).
constexpr std::array<std::string_view, 15> kThrottlingCodes = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "EC2ThrottledException",
    "KmsThrottled",  // SQS: KMS throttled the queue's data key request; retryable
    "KMS.ThrottlingException",
};

constexpr std::array<std::string_view, 13> kTransientCodes = {
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",                 // EC2
    "ResourceContention",          // Auto Scaling, HTTP 500
    "IDPCommunicationError",       // STS: botocore retries it
    "ConditionalRequestConflict",  // S3 If-None-Match race: retry
    "BadGateway",
};

constexpr std::array<std::string_view, 2> kConditionCodes = {
    "ConditionalCheckFailedException",
    "PreconditionFailed",
};

constexpr std::array<std::string_view, 8> kNotFoundCodes = {
    "ResourceNotFoundException",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchUpload",
    "NotFound",  // what ParseAwsError names a body-less 404 (S3 HEAD)
    "NoSuchEntity",
};

// Always clock skew.
constexpr std::array<std::string_view, 3> kSkewCodes = {
    "RequestTimeTooSkewed",
    "RequestExpired",
    "RequestInTheFuture",
};

// Clock skew when the message talks about time; otherwise a real signature/auth problem.
constexpr std::array<std::string_view, 4> kSignatureCodes = {
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "InvalidSignature",
};

template <std::size_t N>
bool Contains(const std::array<std::string_view, N>& set, std::string_view code) {
  return std::find(set.begin(), set.end(), code) != set.end();
}

bool MentionsTime(std::string_view message) {
  std::string m = Lower(message);
  for (std::string_view word : {"expired", "skew", "time", "in the future", "date"}) {
    if (m.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

RetryOptions RetryOptions::FromEnvironment(const Environment& env) {
  RetryOptions options;
  std::string mode = Lower(env.GetOr("AWS_RETRY_MODE", "standard"));
  if (mode == "legacy") {
    // botocore's legacy mode makes 5 attempts; "adaptive" adds client-side rate limiting we
    // do not implement, so it behaves as standard.
    options.max_attempts = 5;
  } else if (mode != "standard" && mode != "adaptive") {
    Logger().warn("AWS_RETRY_MODE={} is not standard|adaptive|legacy; using standard", mode);
  }
  std::string attempts = env.GetOr("AWS_MAX_ATTEMPTS", "");
  if (!attempts.empty()) {
    int value = 0;
    auto [end, ec] = std::from_chars(attempts.data(), attempts.data() + attempts.size(), value);
    if (ec == std::errc() && end == attempts.data() + attempts.size() && value >= 1) {
      options.max_attempts = value;
    } else {
      Logger().warn("AWS_MAX_ATTEMPTS={} is not a positive integer; using {}", attempts,
                    options.max_attempts);
    }
  }
  return options;
}

ErrorCategory ClassifyAwsError(int http_status, std::string_view code, std::string_view message) {
  if (Contains(kConditionCodes, code)) return ErrorCategory::kConditionFailed;
  if (Contains(kNotFoundCodes, code)) return ErrorCategory::kNotFound;
  if (Contains(kThrottlingCodes, code) || http_status == 429) return ErrorCategory::kThrottled;
  if (Contains(kSkewCodes, code)) return ErrorCategory::kClockSkew;
  if (Contains(kSignatureCodes, code)) {
    return MentionsTime(message) ? ErrorCategory::kClockSkew : ErrorCategory::kClient;
  }
  if (Contains(kTransientCodes, code)) return ErrorCategory::kTransient;
  if (http_status == 0) return ErrorCategory::kTransient;  // no response at all
  if (http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504) {
    return ErrorCategory::kTransient;
  }
  if (http_status == 404 && code.empty()) return ErrorCategory::kNotFound;
  if (http_status == 412 && code.empty()) return ErrorCategory::kConditionFailed;
  return ErrorCategory::kClient;
}

RetryPolicy::RetryPolicy(RetryOptions options, std::function<double()> random01)
    : options_(options),
      random01_(std::move(random01)),
      tokens_(options.quota_capacity),
      rng_(std::random_device{}()) {
  if (options_.max_attempts < 1) options_.max_attempts = 1;
}

std::chrono::milliseconds RetryPolicy::Backoff(int retry) {
  if (retry < 1) retry = 1;
  double r;
  if (random01_) {
    r = random01_();
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    r = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }
  r = std::clamp(r, 0.0, 1.0);
  // In double so that 2^(retry-1) cannot overflow for large retry numbers.
  double ceiling =
      std::min(static_cast<double>(options_.base.count()) * std::pow(2.0, std::min(retry - 1, 62)),
               static_cast<double>(options_.cap.count()));
  return std::chrono::milliseconds(static_cast<long long>(r * ceiling));
}

std::optional<int> RetryPolicy::AcquireRetry(const Error& error) {
  if (!error.IsRetryable()) return std::nullopt;
  // A timeout suggests an overloaded endpoint: it costs twice as much (botocore quota.py).
  int cost = error.code == "Timeout" ? 10 : 5;
  std::lock_guard<std::mutex> lock(mu_);
  if (tokens_ < cost) return std::nullopt;
  tokens_ -= cost;
  return cost;
}

void RetryPolicy::OnSuccess(int last_retry_cost) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_ =
      std::min(options_.quota_capacity, tokens_ + (last_retry_cost > 0 ? last_retry_cost : 1));
}

int RetryPolicy::available_tokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_;
}

}  // namespace spotgrid
