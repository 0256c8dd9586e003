// The sweeper (spotgrid/ledger/sweeper.h has the rules).
#include "spotgrid/ledger/sweeper.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <vector>

#include "spotgrid/core/log.h"
#include "spotgrid/core/parallel_for.h"

namespace spotgrid {
namespace {

// Stamps are made, then their messages sent, this many units at a time: a sweeper that dies
// midway leaves few units stamped without a message (they wait for resend_after).
constexpr std::size_t kStampChunk = 100;

// No lease at all is as good as a lapsed one: ClaimUnit takes such a unit over too.
bool Lapsed(const UnitRecord& unit, Clock::WallTime now, std::chrono::seconds grace) {
  return !unit.lease_until || *unit.lease_until < now - grace;
}

// One of GetQueueAttributes' counts; nullopt when absent or unreadable.
std::optional<long long> Count(const std::map<std::string, std::string>& attributes,
                               const std::string& name) {
  auto it = attributes.find(name);
  if (it == attributes.end()) return std::nullopt;
  long long value = 0;
  const char* end = it->second.data() + it->second.size();
  auto [ptr, ec] = std::from_chars(it->second.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

// Keeps the first failure of the steps, from any thread.
class Errors {
 public:
  void Note(const Status& status) {
    if (!status.ok()) first_.Set(status.error());
  }
  Status first() const { return first_.status(); }

 private:
  FirstError first_;
};

}  // namespace

SweepScope SweepScope::ForStack(const StackInfo& stack) {
  SweepScope scope;
  scope.queue_url = stack.queue_url;
  scope.dead_letter_url = stack.dlq_url;
  scope.max_receives = stack.max_receives;
  return scope;
}

std::string PoisonError(int max_receives) {
  return "its message was delivered " + std::to_string(max_receives) +
         " times without the unit completing (dead-letter queue)";
}

Sweeper::Sweeper(UnitLeases& leases, Sqs& sqs, Clock& clock, SweepOptions options)
    : leases_(leases), sqs_(sqs), clock_(clock), options_(options) {}

Result<SweepReport> Sweeper::Sweep(const SweepScope& scope) const {
  std::vector<JobRecord> jobs;
  if (scope.job) {
    auto job = leases_.GetJob(*scope.job);
    if (!job.ok()) return job.error();
    if (job->has_value() && IsActive(**job)) jobs.push_back(std::move(**job));
  } else {
    auto active = leases_.ListActiveJobs();
    if (!active.ok()) return active.error();
    jobs = std::move(*active);
  }
  SweepReport report;
  report.jobs = static_cast<int>(jobs.size());
  Errors errors;

  // 1. Dead letters, first: a unit they fail is then not sent again below.
  if (!scope.dead_letter_url.empty()) {
    for (int round = 0; round < options_.dead_letter_rounds; ++round) {
      ReceiveRequest request;
      request.max_messages = 10;
      request.wait_seconds = 0;
      request.visibility_timeout = static_cast<int>(options_.dead_letter_visibility.count());
      auto received = sqs_.ReceiveMessage(scope.dead_letter_url, request);
      if (!received.ok()) {
        errors.Note(received.status());
        break;
      }
      if (received->empty()) break;
      report.dead_letters += static_cast<int>(received->size());
      const Clock::WallTime now = clock_.Now();
      std::vector<std::string> settled;  // receipt handles of the dead letters to delete
      for (const SqsMessage& message : *received) {
        auto pointer = DecodeUnitMessage(message.body);
        if (!pointer) {
          Logger().warn("dead letter {} is not a unit message; deleting it", message.id);
          settled.push_back(message.receipt_handle);
          continue;
        }
        const auto& [job, unit_id] = *pointer;
        auto unit = leases_.GetUnit(job, unit_id);
        if (!unit.ok()) {
          errors.Note(unit.status());  // left for a later sweep
          continue;
        }
        if (!unit->has_value()) {
          Logger().warn("dead letter {} names {}/{}, which the ledger does not hold; deleting it",
                        message.id, job, unit_id);
          settled.push_back(message.receipt_handle);
          continue;
        }
        const UnitRecord& u = **unit;
        const bool poison =
            u.state == UnitState::kQueued ||
            (u.state == UnitState::kRunning && Lapsed(u, now, options_.lease_grace));
        if (poison) {
          Status failed = leases_.FailPoisoned(u, PoisonError(scope.max_receives));
          if (failed.ok()) {
            ++report.poisoned;
            Logger().warn("unit {}/{} is FAILED (poison): {}", job, unit_id,
                          PoisonError(scope.max_receives));
          } else if (!failed.error().IsConditionFailed()) {
            errors.Note(failed);  // no verdict: the dead letter stays for the retry
            continue;
          }
          // A failed condition: the unit moved meanwhile (claimed, finished); it needs no
          // message, and the ledger has the last word.
        }
        // Finished, or held under a live lease: the dead letter is a spent duplicate.
        settled.push_back(message.receipt_handle);
      }
      if (!settled.empty()) {
        auto deleted = sqs_.DeleteMessageBatch(scope.dead_letter_url, settled);
        if (!deleted.ok()) {
          errors.Note(deleted.status());
        } else {
          report.dead_letters_deleted +=
              static_cast<int>(settled.size() - deleted->failed.size());
          if (!deleted->failed.empty()) errors.Note(Status(deleted->failed.front().error));
        }
      }
      if (static_cast<int>(received->size()) < request.max_messages) break;
    }
  }
  if (jobs.empty()) {
    report.first_error = errors.first();
    return report;
  }

  // Whether the work queue is empty is asked before this sweep sends anything to it.
  const bool any_enqueued = std::any_of(jobs.begin(), jobs.end(), [](const JobRecord& job) {
    return job.enqueue_state == EnqueueState::kDone;
  });
  if (any_enqueued) {
    auto attributes = sqs_.GetQueueAttributes(
        scope.queue_url, {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                          "ApproximateNumberOfMessagesDelayed"});
    if (!attributes.ok()) {
      errors.Note(attributes.status());
    } else {
      report.queue_empty = true;
      for (const char* name :
           {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"}) {
        // An absent or unreadable count is not taken for zero.
        if (Count(*attributes, name).value_or(1) != 0) report.queue_empty = false;
      }
    }
  }

  // Stamps each unit, then sends one message per stamp that landed; returns the messages sent.
  auto stamp_and_send = [&](const std::vector<UnitRecord>& units) {
    int sent = 0;
    for (std::size_t begin = 0; begin < units.size(); begin += kStampChunk) {
      const std::size_t end = std::min(units.size(), begin + kStampChunk);
      std::vector<char> won(end - begin, 0);
      std::atomic<int> lost{0};
      ParallelFor(end - begin, options_.write_concurrency, [&](std::size_t i) {
        auto stamped = leases_.MarkSwept(units[begin + i], options_.resend_after);
        if (!stamped.ok()) {
          errors.Note(stamped.status());
          // No verdict: the stamp may have landed with its reply lost, and then no sweep would
          // send for resend_after. A duplicate message costs one delivery (claims are
          // conditional); a missing one strands the unit. Send.
          if (!stamped.error().IsConditionFailed()) won[i] = 1;
        } else if (*stamped) {
          won[i] = 1;
        } else {
          ++lost;
        }
      });
      report.already_swept += lost.load();
      std::vector<SendEntry> entries;
      for (std::size_t i = 0; i < won.size(); ++i) {
        if (!won[i]) continue;
        SendEntry entry;
        entry.body = EncodeUnitMessage(units[begin + i].job, units[begin + i].spec.id);
        entries.push_back(std::move(entry));
      }
      if (entries.empty()) continue;
      auto result = sqs_.SendMessageBatch(scope.queue_url, entries);
      if (!result.ok()) {
        errors.Note(result.status());
        continue;
      }
      sent += static_cast<int>(entries.size() - result->failed.size());
      if (!result->failed.empty()) errors.Note(Status(result->failed.front().error));
    }
    return sent;
  };

  // Intents of writers that died between their two writes: settled first, so counters that
  // made a job look finished while a unit still runs (or lapsed) are put right.
  for (const JobRecord& job : jobs) {
    if (job.inflight.empty()) continue;
    auto repaired = leases_.RepairJob(job.spec.id);
    errors.Note(repaired.ok() ? Status::Ok() : Status(repaired.error()));
  }

  // 2. Lapsed leases.
  const Clock::WallTime now = clock_.Now();
  std::vector<UnitRecord> lapsed;
  for (const JobRecord& job : jobs) {
    Status listed = leases_.ListUnitsInState(
        job.spec.id, UnitState::kRunning, std::nullopt, [&](const std::vector<UnitRecord>& page) {
          for (const UnitRecord& unit : page) {
            if (Lapsed(unit, now, options_.lease_grace)) lapsed.push_back(unit);
          }
          return true;
        });
    errors.Note(listed);
  }
  report.lapsed_resent = stamp_and_send(lapsed);

  // 3. Orphans.
  if (report.queue_empty) {
    std::vector<UnitRecord> orphans;
    const std::size_t most = static_cast<std::size_t>(std::max(0, options_.max_orphans_per_sweep));
    for (const JobRecord& job : jobs) {
      if (job.enqueue_state != EnqueueState::kDone || orphans.size() >= most) continue;
      Status listed = leases_.ListUnitsInState(
          job.spec.id, UnitState::kQueued, now - options_.orphan_grace,
          [&](const std::vector<UnitRecord>& page) {
            for (const UnitRecord& unit : page) {
              if (orphans.size() >= most) return false;
              orphans.push_back(unit);
            }
            return orphans.size() < most;
          });
      errors.Note(listed);
    }
    report.orphans_resent = stamp_and_send(orphans);
  }
  report.first_error = errors.first();
  return report;
}

}  // namespace spotgrid
