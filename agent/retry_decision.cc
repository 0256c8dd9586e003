#include "agent/retry_decision.h"

#include <algorithm>

namespace spotgrid::agent {

Verdict DecideAfterExit(const RetryRules& rules, std::int64_t failures_before,
                        std::optional<int> exit_code, bool timed_out) {
  if (!timed_out && exit_code && *exit_code == 0) return Verdict::kSucceed;
  auto listed = [](const std::vector<int>& codes, std::optional<int> code) {
    return code && std::find(codes.begin(), codes.end(), *code) != codes.end();
  };
  std::optional<int> code = timed_out ? std::nullopt : exit_code;
  if (listed(rules.fail_exit_codes, code)) return Verdict::kFail;
  // A timeout has no exit code to match, so only the attempt limit governs it.
  if (!timed_out && !rules.retry_exit_codes.empty() && !listed(rules.retry_exit_codes, code)) {
    return Verdict::kFail;
  }
  return failures_before + 1 < rules.max_attempts ? Verdict::kRetry : Verdict::kFail;
}

std::chrono::seconds RetryBackoff(std::int64_t failures) {
  constexpr std::chrono::seconds kFirst{10}, kCap{15 * 60};
  std::int64_t shift = std::clamp<std::int64_t>(failures - 1, 0, 16);
  return std::min<std::chrono::seconds>(kFirst * (std::int64_t{1} << shift), kCap);
}

}  // namespace spotgrid::agent
