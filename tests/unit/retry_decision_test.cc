// The verdict after an attempt (agent/retry_decision.h): a table of the cases users rely on,
// and properties checked over every combination of a small domain.
#include "agent/retry_decision.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace spotgrid::agent {
namespace {

using std::chrono::seconds;

RetryRules Rules(int max_attempts, std::vector<int> retry = {}, std::vector<int> fail = {}) {
  RetryRules rules;
  rules.max_attempts = max_attempts;
  rules.retry_exit_codes = std::move(retry);
  rules.fail_exit_codes = std::move(fail);
  return rules;
}

struct Case {
  std::string name;
  RetryRules rules;
  std::int64_t failures_before;
  std::optional<int> exit_code;
  bool timed_out;
  Verdict expected;
};

TEST(RetryDecisionTest, TableOfCases) {
  const std::vector<Case> cases = {
      {"exit 0 succeeds", Rules(3), 0, 0, false, Verdict::kSucceed},
      {"exit 0 succeeds even after failures", Rules(3), 2, 0, false, Verdict::kSucceed},
      {"exit 0 succeeds even when listed as a fail code", Rules(3, {}, {0}), 0, 0, false,
       Verdict::kSucceed},
      {"first failure of three retries", Rules(3), 0, 1, false, Verdict::kRetry},
      {"second failure of three retries", Rules(3), 1, 1, false, Verdict::kRetry},
      {"third failure of three fails", Rules(3), 2, 1, false, Verdict::kFail},
      {"a single attempt fails at once", Rules(1), 0, 1, false, Verdict::kFail},
      {"listed fail code fails at once", Rules(3, {}, {2}), 0, 2, false, Verdict::kFail},
      {"unlisted code still retries beside fail codes", Rules(3, {}, {2}), 0, 3, false,
       Verdict::kRetry},
      {"listed retry code retries", Rules(3, {75}), 0, 75, false, Verdict::kRetry},
      {"unlisted code fails when retry codes are given", Rules(3, {75}), 0, 1, false,
       Verdict::kFail},
      {"listed retry code still obeys the attempt limit", Rules(3, {75}), 2, 75, false,
       Verdict::kFail},
      {"fail code beats retry code", Rules(3, {4}, {4}), 0, 4, false, Verdict::kFail},
      {"timeout retries with attempts left", Rules(3), 0, std::nullopt, true, Verdict::kRetry},
      {"timeout retries though retry codes are given", Rules(3, {75}), 0, std::nullopt, true,
       Verdict::kRetry},
      {"timeout ignores the exit code of the killed shell", Rules(3, {}, {143}), 0, 143, true,
       Verdict::kRetry},
      {"timeout with an exit code 0 is no success", Rules(3), 0, 0, true, Verdict::kRetry},
      {"timeout on the last attempt fails", Rules(2), 1, std::nullopt, true, Verdict::kFail},
      {"no exit code (could not start) retries", Rules(3), 0, std::nullopt, false, Verdict::kRetry},
      {"no exit code fails when retry codes are given", Rules(3, {75}), 0, std::nullopt, false,
       Verdict::kFail},
      {"signal status 137 is an ordinary failure", Rules(3), 0, 137, false, Verdict::kRetry},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(DecideAfterExit(c.rules, c.failures_before, c.exit_code, c.timed_out), c.expected)
        << c.name;
  }
}

// Over every combination of a small domain: exit 0 always succeeds; nothing else ever does;
// a retry happens only with an attempt left; a listed fail code never retries; with retry
// codes given, an exit code outside them never retries.
TEST(RetryDecisionTest, PropertiesHoldOverSmallDomain) {
  const std::vector<std::vector<int>> code_lists = {{}, {1}, {2}, {1, 2}};
  const std::vector<std::optional<int>> exits = {std::nullopt, 0, 1, 2, 3, 137};
  int combinations = 0;
  for (int max_attempts : {1, 2, 3, 5}) {
    for (const auto& retry_codes : code_lists) {
      for (const auto& fail_codes : code_lists) {
        RetryRules rules = Rules(max_attempts, retry_codes, fail_codes);
        for (std::int64_t failures = 0; failures < max_attempts; ++failures) {
          for (std::optional<int> code : exits) {
            for (bool timed_out : {false, true}) {
              ++combinations;
              Verdict v = DecideAfterExit(rules, failures, code, timed_out);
              bool success = !timed_out && code == 0;
              EXPECT_EQ(v == Verdict::kSucceed, success);
              if (v == Verdict::kRetry) {
                EXPECT_LT(failures + 1, max_attempts);
              }
              if (success || timed_out) continue;
              auto listed = [&](const std::vector<int>& list) {
                return code && std::find(list.begin(), list.end(), *code) != list.end();
              };
              if (listed(fail_codes)) {
                EXPECT_EQ(v, Verdict::kFail);
              }
              if (!retry_codes.empty() && !listed(retry_codes)) {
                EXPECT_EQ(v, Verdict::kFail);
              }
              if (!listed(fail_codes) && (retry_codes.empty() || listed(retry_codes))) {
                EXPECT_EQ(v, failures + 1 < max_attempts ? Verdict::kRetry : Verdict::kFail);
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(combinations, 1000);
}

TEST(RetryDecisionTest, BackoffDoublesFromTenSecondsAndCapsAtFifteenMinutes) {
  EXPECT_EQ(RetryBackoff(1), seconds(10));
  EXPECT_EQ(RetryBackoff(2), seconds(20));
  EXPECT_EQ(RetryBackoff(3), seconds(40));
  EXPECT_EQ(RetryBackoff(4), seconds(80));
  EXPECT_EQ(RetryBackoff(7), seconds(640));
  EXPECT_EQ(RetryBackoff(8), seconds(900));
  EXPECT_EQ(RetryBackoff(1000), seconds(900));
}

TEST(RetryDecisionTest, BackoffOfNoFailureIsTheFirstStep) {
  EXPECT_EQ(RetryBackoff(0), seconds(10));
  EXPECT_EQ(RetryBackoff(-5), seconds(10));
}

TEST(RetryDecisionTest, BackoffNeverShrinksAsFailuresGrow) {
  for (std::int64_t f = 1; f < 100; ++f) EXPECT_LE(RetryBackoff(f), RetryBackoff(f + 1)) << f;
}

}  // namespace
}  // namespace spotgrid::agent
