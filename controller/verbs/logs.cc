// controller logs UNIT: an attempt's stdout.log and stderr.log from S3 (the command's stdout
// to stdout, its stderr to stderr). --follow keeps polling with ranged GETs from the last
// offset, printing what the agent uploaded since, until the attempt is no longer running.
#include <limits>

#include "job_selection.h"
#include "spotgrid/services/s3_client.h"
#include "verb_options.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

constexpr std::chrono::seconds kFollowInterval{2};

struct LogStream {
  std::string name;  // "stdout.log"
  std::string key;
  std::FILE* sink = nullptr;
  std::uint64_t offset = 0;  // bytes printed so far
  bool seen = false;
};

// Prints the bytes of `stream` beyond its offset. A log that does not exist yet is not an
// error: the agent uploads it as the command writes.
Status PrintNew(S3& s3, const std::string& bucket, LogStream& stream) {
  auto head = s3.HeadObject(bucket, stream.key);
  if (!head.ok()) return head.error().IsNotFound() ? Status::Ok() : head.status();
  stream.seen = true;
  if (head->size < stream.offset) stream.offset = 0;  // replaced by a shorter upload: restart
  if (head->size == stream.offset) return Status::Ok();
  auto body = s3.GetObject(bucket, stream.key, ByteRange{stream.offset, head->size - 1});
  if (!body.ok()) return body.error().IsNotFound() ? Status::Ok() : body.status();
  std::fwrite(body->data(), 1, body->size(), stream.sink);
  std::fflush(stream.sink);
  stream.offset += body->size();
  return Status::Ok();
}

int RunLogs(const Args& args, Controller& controller) {
  const std::string unit_id = args.positionals().at(0);
  auto wanted = args.GetInt("attempt", 1, std::numeric_limits<int>::max());
  if (!wanted.ok()) return ReportError(controller, wanted.error());
  const bool follow = args.Has("follow");
  auto stack = OpenStack(args, controller);
  if (!stack.ok()) return ReportError(controller, stack.error());
  auto job = SelectJob(args, controller, *stack->ledger, stack->info, false);
  if (!job.ok()) return ReportError(controller, job.error());
  auto unit = RequireUnit(*stack->ledger, job->spec.id, unit_id);
  if (!unit.ok()) return ReportError(controller, unit.error());
  if (unit->attempt == 0) {
    return ReportError(controller,
                       Error::InvalidInput("unit '" + unit_id + "' has not started yet: no logs"));
  }
  const std::int64_t attempt = wanted->value_or(unit->attempt);
  if (attempt > unit->attempt) {
    return ReportError(
        controller,
        Error::InvalidInput("unit '" + unit_id + "' has " + std::to_string(unit->attempt) +
                            " attempt(s); there is no attempt " + std::to_string(attempt)));
  }
  auto s3 = controller.s3();
  if (!s3.ok()) return ReportError(controller, s3.error());

  const std::string prefix = LogsPrefix(stack->info, job->spec.id, unit_id, attempt);
  LogStream streams[] = {{"stdout.log", prefix + "stdout.log", controller.out()},
                         {"stderr.log", prefix + "stderr.log", controller.err()}};
  auto print_all = [&]() -> Status {
    for (LogStream& stream : streams) {
      if (Status status = PrintNew(**s3, stack->info.bucket, stream); !status.ok()) return status;
    }
    return Status::Ok();
  };

  if (!follow) {
    if (Status status = print_all(); !status.ok()) return ReportError(controller, status);
    for (const LogStream& stream : streams) {
      if (!stream.seen) {
        std::fprintf(controller.err(),
                     "controller: no %s for attempt %lld of unit %s (s3://%s/%s)\n",
                     stream.name.c_str(), static_cast<long long>(attempt), unit_id.c_str(),
                     stack->info.bucket.c_str(), stream.key.c_str());
      }
    }
    return kExitOk;
  }
  for (;;) {
    // Look at the state before reading, so the last read happens after the attempt ended and
    // sees the agent's final upload.
    auto now = RequireUnit(*stack->ledger, job->spec.id, unit_id);
    if (!now.ok()) return ReportError(controller, now.error());
    const bool running = now->state == UnitState::kRunning && now->attempt == attempt;
    if (Status status = print_all(); !status.ok()) return ReportError(controller, status);
    if (!running) break;
    controller.clock().SleepFor(kFollowInterval);
  }
  return kExitOk;
}

}  // namespace

Verb LogsVerb() {
  Verb verb;
  verb.spec.name = "logs";
  verb.spec.summary = "print a unit's stdout and stderr from S3";
  verb.spec.positionals = "UNIT";
  verb.spec.min_positionals = 1;
  verb.spec.max_positionals = 1;
  verb.spec.options = {
      JobOption(),
      ValueOption("attempt", "N", "the attempt (default: the latest)"),
      FlagOption("follow", "keep printing as the agent uploads more, until the attempt ends"),
  };
  verb.spec.details =
      "The command's stdout goes to stdout and its stderr to stderr, from "
      "s3://BUCKET/PREFIX/JOB/UNIT/logs/ATTEMPT/{stdout,stderr}.log.";
  verb.run = RunLogs;
  return verb;
}

}  // namespace spotgrid
