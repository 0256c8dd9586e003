// RetryPolicy: AWS standard-mode settings, full-jitter backoff and the retry quota.
#include "spotgrid/aws/retry.h"

#include <gtest/gtest.h>

#include <set>

namespace spotgrid {
namespace {

using std::chrono::milliseconds;

Error Transient(std::string code = "ConnectionFailed") {
  Error e;
  e.category = ErrorCategory::kTransient;
  e.code = std::move(code);
  return e;
}

TEST(RetryOptionsTest, DefaultsAreStandardMode) {
  MapEnvironment env;
  RetryOptions o = RetryOptions::FromEnvironment(env);
  EXPECT_EQ(o.max_attempts, 3);
  EXPECT_EQ(o.base, milliseconds(1000));
  EXPECT_EQ(o.cap, milliseconds(20000));
  EXPECT_EQ(o.quota_capacity, 500);
}

TEST(RetryOptionsTest, MaxAttemptsAndModeComeFromEnvironment) {
  MapEnvironment env;
  env.Set("AWS_MAX_ATTEMPTS", "7");
  EXPECT_EQ(RetryOptions::FromEnvironment(env).max_attempts, 7);
  MapEnvironment legacy;
  legacy.Set("AWS_RETRY_MODE", "legacy");
  EXPECT_EQ(RetryOptions::FromEnvironment(legacy).max_attempts, 5);
  MapEnvironment both;
  both.Set("AWS_RETRY_MODE", "legacy");
  both.Set("AWS_MAX_ATTEMPTS", "2");
  EXPECT_EQ(RetryOptions::FromEnvironment(both).max_attempts, 2);
}

TEST(RetryOptionsTest, InvalidMaxAttemptsKeepsDefault) {
  for (const char* bad : {"0", "-1", "three", "3x"}) {
    MapEnvironment env;
    env.Set("AWS_MAX_ATTEMPTS", bad);
    EXPECT_EQ(RetryOptions::FromEnvironment(env).max_attempts, 3) << bad;
  }
}

TEST(RetryPolicyTest, BackoffIsFullJitterOfCappedExponential) {
  double r = 0.5;
  RetryPolicy policy(RetryOptions{}, [&] { return r; });
  EXPECT_EQ(policy.Backoff(1), milliseconds(500));
  EXPECT_EQ(policy.Backoff(2), milliseconds(1000));
  EXPECT_EQ(policy.Backoff(3), milliseconds(2000));
  EXPECT_EQ(policy.Backoff(6), milliseconds(10000));  // 0.5 * min(32 s, 20 s)
  EXPECT_EQ(policy.Backoff(100), milliseconds(10000));
  r = 0.0;
  EXPECT_EQ(policy.Backoff(3), milliseconds(0));
  r = 0.999;
  EXPECT_EQ(policy.Backoff(1), milliseconds(999));
}

TEST(RetryPolicyTest, BaseIsConfigurable) {
  RetryOptions options;
  options.base = milliseconds(50);
  RetryPolicy policy(options, [] { return 0.5; });
  EXPECT_EQ(policy.Backoff(1), milliseconds(25));
  EXPECT_EQ(policy.Backoff(3), milliseconds(100));
}

TEST(RetryPolicyTest, DefaultRandomStaysWithinBoundsAndVaries) {
  RetryPolicy policy(RetryOptions{});
  std::set<long long> seen;
  for (int i = 0; i < 200; ++i) {
    for (int retry = 1; retry <= 6; ++retry) {
      milliseconds d = policy.Backoff(retry);
      long long ceiling = std::min<long long>(1000LL << (retry - 1), 20000);
      EXPECT_GE(d.count(), 0);
      EXPECT_LT(d.count(), ceiling);
      seen.insert(d.count());
    }
  }
  EXPECT_GT(seen.size(), 50u);
}

TEST(RetryPolicyTest, QuotaChargesFivePerRetryAndTenAfterTimeout) {
  RetryPolicy policy(RetryOptions{});
  EXPECT_EQ(policy.AcquireRetry(Transient()), 5);
  EXPECT_EQ(policy.available_tokens(), 495);
  EXPECT_EQ(policy.AcquireRetry(Transient("Timeout")), 10);
  EXPECT_EQ(policy.available_tokens(), 485);
}

TEST(RetryPolicyTest, QuotaRefusesWhenEmptyAndSuccessRefunds) {
  RetryOptions options;
  options.quota_capacity = 12;
  RetryPolicy policy(options);
  EXPECT_TRUE(policy.AcquireRetry(Transient()));
  EXPECT_TRUE(policy.AcquireRetry(Transient()));
  EXPECT_FALSE(policy.AcquireRetry(Transient()));
  EXPECT_FALSE(policy.AcquireRetry(Transient("Timeout")));
  EXPECT_EQ(policy.available_tokens(), 2);
  policy.OnSuccess(5);  // success after a retry returns what that retry cost
  EXPECT_EQ(policy.available_tokens(), 7);
  policy.OnSuccess(0);  // a first-try success returns one token
  EXPECT_EQ(policy.available_tokens(), 8);
  for (int i = 0; i < 10; ++i) policy.OnSuccess(5);
  EXPECT_EQ(policy.available_tokens(), 12);  // never above capacity
}

TEST(RetryPolicyTest, NonRetryableErrorsNeverTakeTokens) {
  RetryPolicy policy(RetryOptions{});
  Error client;
  client.category = ErrorCategory::kClient;
  Error condition;
  condition.category = ErrorCategory::kConditionFailed;
  EXPECT_FALSE(policy.AcquireRetry(client));
  EXPECT_FALSE(policy.AcquireRetry(condition));
  EXPECT_EQ(policy.available_tokens(), 500);
}

}  // namespace
}  // namespace spotgrid
