// What happens after an attempt, by the job's retry rules (AWS Batch's evaluateOnExit as our
// users know it). Pure functions: the rules are tested exhaustively without a process.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "spotgrid/ledger/types.h"

namespace spotgrid::agent {

enum class Verdict {
  kSucceed,  // exit 0: SUCCEEDED
  kRetry,    // release to QUEUED; the message comes back after RetryBackoff
  kFail,     // FAILED for good
};

// `failures_before`: failed attempts before this one. A timeout counts as a failure with no
// exit code (so only max_attempts applies to it). A code in fail_exit_codes fails at once; a
// non-empty retry_exit_codes retries only the codes it lists.
Verdict DecideAfterExit(const RetryRules& rules, std::int64_t failures_before,
                        std::optional<int> exit_code, bool timed_out);

// Visibility delay before a failed unit is tried again: 10 s, doubling with each failure,
// capped at 15 minutes so a flaky unit is not parked for hours.
std::chrono::seconds RetryBackoff(std::int64_t failures);

}  // namespace spotgrid::agent
