// controller enqueue: turns a grid file into unit items in the ledger and one message per
// unit in the work queue.
//
// The whole file is parsed and validated before anything is written. The protocol is
// idempotent (docs/ledger.md, "Job item"): the job item is created first (enqueue_state
// WRITING), then every unit item that does not exist yet and, as soon as a unit's item is in
// (the writes run on their own thread meanwhile), the messages in unit order, recording
// `sent_through` every few thousand units, and finally enqueue_state DONE. A rerun
// after a crash writes only the missing units and resumes the messages at `sent_through`, so
// at most the last checkpoint's worth of messages is sent twice (the agents' conditional claim
// makes a duplicate message harmless).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "grid.h"
#include "spotgrid/aws/aws_multi.h"
#include "spotgrid/core/digest.h"
#include "spotgrid/core/file_io.h"
#include "spotgrid/services/sqs_client.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

// The most messages a crash while sending makes a rerun send twice: no message goes more than
// this far past the `sent_through` checkpoint recorded in the ledger. Also the chunk whose
// items must all be in before its messages go (so a crash while writing resends nothing).
constexpr std::int64_t kCheckpointUnits = 5000;
// How often the checkpoint is recorded: well inside kCheckpointUnits, so the sends never wait
// for a checkpoint write (one round trip) to catch up. A write per 100 SendMessageBatch calls.
constexpr std::int64_t kCheckpointEvery = 1000;
// API limits: items per BatchWriteItem, entries per SendMessageBatch.
constexpr std::size_t kItemsPerWrite = 25;
constexpr std::size_t kMessagesPerSend = 10;
// The in-flight window: BatchWriteItem requests to DynamoDB, and SendMessageBatch requests to
// SQS, outstanding at once (each service its own window, all on one thread). A window
// covers a bandwidth-delay product: one client gets at most window / RTT requests a second
// from a service. Measured with bench/enqueue_bench.py --rtt-ms 20 (20,000 units through a
// 20 ms delay proxy in front of the emulators, machine loaded by compiles): 16 took 8.4 s,
// 32 7.0-7.4 s, 64 7.3-7.6 s with more client CPU (threads, connections). 32 is the knee: at
// 20 ms it allows 1,600 requests a second per service (40,000 items, 16,000 messages), and
// the emulators, not the round trips, bound the wall time. At 100 ms, a third of that.
constexpr int kInFlightWindow = 32;
// Changed units named in an error before "and N more".
constexpr std::size_t kListLimit = 20;

Status ValidateJobId(std::string_view job) {
  bool ok = !job.empty() && job.size() <= 64 && job != "." && job != "..";
  for (char c : job) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-')) {
      ok = false;
    }
  }
  if (ok) return Status::Ok();
  return Error::InvalidInput("invalid job id '" + std::string(job) +
                             "': use 1 to 64 of A-Z a-z 0-9 . _ -");
}

// "grid.csv" and "runs/grid.v2.csv" -> "grid", "grid.v2".
std::string DefaultJobId(const std::string& path) {
  std::string base =
      path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const auto dot = base.find_last_of('.');
  if (dot != std::string::npos && dot > 0) base.resize(dot);
  return base;
}

Result<std::vector<int>> ParseExitCodes(const Args& args, const std::string& name) {
  std::vector<int> codes;
  for (const std::string& list : args.GetAll(name)) {
    std::size_t start = 0;
    while (start <= list.size()) {
      std::size_t end = list.find(',', start);
      if (end == std::string::npos) end = list.size();
      std::string item = list.substr(start, end - start);
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      char* stop = nullptr;
      errno = 0;
      const long value = item.empty() ? -1 : std::strtol(item.c_str(), &stop, 10);
      if (item.empty() || errno != 0 || *stop != '\0' || value < 0 || value > 255) {
        return Error::InvalidInput("--" + name + ": '" + item +
                                   "' is not an exit code (0..255); give a list like 1,2,137");
      }
      codes.push_back(static_cast<int>(value));
      start = end + 1;
    }
  }
  std::sort(codes.begin(), codes.end());
  codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
  return codes;
}

std::vector<int> Sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::string JoinCodes(const std::vector<int>& codes) {
  std::string out;
  for (int code : codes) out += (out.empty() ? "" : ",") + std::to_string(code);
  return out.empty() ? "(none)" : out;
}

// What differs between an existing job's settings and this run's; a job's rules cannot change
// under units that may already be running.
std::vector<std::string> SettingDifferences(const JobSpec& old_spec, const JobSpec& spec) {
  std::vector<std::string> out;
  if (old_spec.command_template != spec.command_template) {
    out.push_back("--command '" + old_spec.command_template + "' (now '" + spec.command_template +
                  "')");
  }
  if (old_spec.chunk != spec.chunk) {
    out.push_back("--chunk " + std::to_string(old_spec.chunk) + " (now " +
                  std::to_string(spec.chunk) + ")");
  }
  if (old_spec.retry.max_attempts != spec.retry.max_attempts) {
    out.push_back("--max-attempts " + std::to_string(old_spec.retry.max_attempts) + " (now " +
                  std::to_string(spec.retry.max_attempts) + ")");
  }
  if (Sorted(old_spec.retry.retry_exit_codes) != Sorted(spec.retry.retry_exit_codes)) {
    out.push_back("--retry-exit-codes " + JoinCodes(Sorted(old_spec.retry.retry_exit_codes)) +
                  " (now " + JoinCodes(Sorted(spec.retry.retry_exit_codes)) + ")");
  }
  if (Sorted(old_spec.retry.fail_exit_codes) != Sorted(spec.retry.fail_exit_codes)) {
    out.push_back("--fail-exit-codes " + JoinCodes(Sorted(old_spec.retry.fail_exit_codes)) +
                  " (now " + JoinCodes(Sorted(spec.retry.fail_exit_codes)) + ")");
  }
  if (old_spec.timeout_s != spec.timeout_s) {
    out.push_back("--timeout " + std::to_string(old_spec.timeout_s) + "s (now " +
                  std::to_string(spec.timeout_s) + "s)");
  }
  return out;
}

std::string WithCommas(std::int64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && digits[0] != '-' && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

struct Summary {
  std::string job;
  std::int64_t units = 0;
  std::int64_t written = 0;
  std::int64_t replaced = 0;
  std::int64_t sent = 0;
  std::int64_t already_present = 0;
  double seconds = 0;
};

void PrintSummary(Controller& controller, const Summary& s, bool json, bool nothing_new) {
  if (json) {
    nlohmann::ordered_json doc = {{"job", s.job},         {"units", s.units},
                                  {"written", s.written}, {"replaced", s.replaced},
                                  {"sent", s.sent},       {"already_present", s.already_present},
                                  {"seconds", s.seconds}};
    std::fprintf(controller.out(), "%s\n", doc.dump().c_str());
    return;
  }
  if (nothing_new) {
    std::fprintf(controller.out(), "job %s: nothing new to enqueue (%s units already enqueued)\n",
                 s.job.c_str(), WithCommas(s.already_present).c_str());
    return;
  }
  std::fprintf(controller.out(),
               "job %s: %s units: %s written, %s replaced, %s already present; %s messages "
               "sent in %.1f s\n",
               s.job.c_str(), WithCommas(s.units).c_str(), WithCommas(s.written).c_str(),
               WithCommas(s.replaced).c_str(), WithCommas(s.already_present).c_str(),
               WithCommas(s.sent).c_str(), s.seconds);
}

void PrintDryRun(Controller& controller, const std::string& job, const std::vector<UnitSpec>& units,
                 bool json) {
  std::FILE* out = controller.out();
  if (json) {
    nlohmann::ordered_json doc = nlohmann::ordered_json::array();
    for (const UnitSpec& unit : units) {
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (const GridRow& row : unit.rows) {
        nlohmann::ordered_json params = nlohmann::ordered_json::object();
        for (const auto& [name, value] : row.params) params[name] = value;
        rows.push_back({{"line", row.line}, {"command", row.command}, {"params", params}});
      }
      doc.push_back({{"id", unit.id}, {"rows", rows}});
    }
    // Invalid UTF-8 cannot reach here: ParseCsv rejected it.
    std::fprintf(out, "%s\n", doc.dump(2).c_str());
    return;
  }
  std::string text;
  for (const UnitSpec& unit : units) {
    for (const GridRow& row : unit.rows) {
      text += unit.id;
      text += '\t';
      text += row.command;
      text += '\n';
    }
  }
  std::fputs(text.c_str(), out);
  std::fprintf(controller.err(), "dry run: job %s would have %s units; nothing was enqueued\n",
               job.c_str(), WithCommas(static_cast<std::int64_t>(units.size())).c_str());
}

int RunEnqueue(const Args& args, Controller& controller) {
  const Clock::MonoTime started = controller.clock().Monotonic();
  const std::string path = args.positionals().at(0);
  const bool json = args.Has("json");
  const bool dry_run = args.Has("dry-run");
  const bool replace = args.Has("replace");

  JobSpec spec;
  spec.id = args.GetOr("job", DefaultJobId(path));
  if (Status valid = ValidateJobId(spec.id); !valid.ok()) {
    Error error = valid.error();
    if (!args.Has("job")) error.message += " (derived from the file name; name it with --job)";
    return ReportError(controller, error);
  }
  auto chunk = args.GetInt("chunk", 1, 100000);
  if (!chunk.ok()) return ReportError(controller, chunk.error());
  auto max_attempts = args.GetInt("max-attempts", 1, 1000);
  if (!max_attempts.ok()) return ReportError(controller, max_attempts.error());
  auto retry_codes = ParseExitCodes(args, "retry-exit-codes");
  if (!retry_codes.ok()) return ReportError(controller, retry_codes.error());
  auto fail_codes = ParseExitCodes(args, "fail-exit-codes");
  if (!fail_codes.ok()) return ReportError(controller, fail_codes.error());
  for (int code : *retry_codes) {
    if (std::binary_search(fail_codes->begin(), fail_codes->end(), code)) {
      return ReportError(
          controller, Error::InvalidInput("exit code " + std::to_string(code) +
                                          " is in both --retry-exit-codes and --fail-exit-codes"));
    }
  }
  auto timeout = args.GetDuration("timeout");
  if (!timeout.ok()) return ReportError(controller, timeout.error());
  const auto stack_name = args.Get("stack");
  if (!dry_run && !stack_name) {
    return ReportError(controller,
                       Error::InvalidInput("enqueue: --stack is required (or set SPOTGRID_STACK)"));
  }

  auto data = ReadFile(path, "read grid file");
  if (!data.ok()) {
    // A grid that is missing or unreadable is bad input (exit 2), like a malformed one.
    Error error = data.error();
    error.category = ErrorCategory::kInvalidInput;
    return ReportError(controller, error);
  }
  auto table = ParseCsv(*data, path);
  if (!table.ok()) return ReportError(controller, table.error());
  GridOptions grid_options;
  grid_options.command_template = args.GetOr("command", "");
  grid_options.chunk = static_cast<int>(chunk->value_or(1));
  auto built = BuildUnits(*table, grid_options, path);
  if (!built.ok()) return ReportError(controller, built.error());
  // Not const: the units this run writes are moved into their BatchWriteItem slices below.
  std::vector<UnitSpec>& units = *built;
  if (units.empty()) {
    return ReportError(controller, Error::InvalidInput(path + ": the grid has no data rows"));
  }

  if (dry_run) {
    PrintDryRun(controller, spec.id, units, json);
    return kExitOk;
  }

  spec.command_template = grid_options.command_template;
  spec.grid_file = path;
  spec.grid_sha256 = Sha256Hex(*data);
  spec.columns = table->header;
  spec.chunk = grid_options.chunk;
  spec.retry.max_attempts = static_cast<int>(max_attempts->value_or(spec.retry.max_attempts));
  spec.retry.retry_exit_codes = *retry_codes;
  spec.retry.fail_exit_codes = *fail_codes;
  spec.timeout_s = timeout->has_value() ? (*timeout)->count() : 0;
  spec.total = static_cast<std::int64_t>(units.size());
  spec.created_at = controller.clock().Now();

  auto stack = controller.stack(*stack_name);
  if (!stack.ok()) return ReportError(controller, stack.error());
  auto ledger_or = controller.ledger(*stack_name);
  if (!ledger_or.ok()) return ReportError(controller, ledger_or.error());
  Ledger& ledger = **ledger_or;
  auto sqs = controller.sqs();
  if (!sqs.ok()) return ReportError(controller, sqs.error());

  Summary summary;
  summary.job = spec.id;
  summary.units = static_cast<std::int64_t>(units.size());

  auto created = ledger.CreateJob(spec);
  if (!created.ok()) return ReportError(controller, created.error());
  std::optional<JobRecord> record;
  if (!*created) {
    auto found = ledger.GetJob(spec.id);
    if (!found.ok()) return ReportError(controller, found.error());
    if (!found->has_value()) {
      return ReportError(controller,
                         Error::Io("enqueue", "job " + spec.id + " exists but could not be read"));
    }
    record = std::move(**found);
    auto differences = SettingDifferences(record->spec, spec);
    if (!differences.empty()) {
      std::string message = "job " + spec.id + " already exists with other settings: ";
      for (std::size_t i = 0; i < differences.size(); ++i) {
        message += (i > 0 ? ", " : "") + differences[i];
      }
      message += "; enqueue it under another --job, or repeat the original settings";
      return ReportError(controller, Error::InvalidInput(message));
    }
    if (record->spec.grid_sha256 == spec.grid_sha256 && record->enqueue_state == EnqueueState::kDone) {
      summary.already_present = summary.units;
      summary.seconds =
          std::chrono::duration<double>(controller.clock().Monotonic() - started).count();
      PrintSummary(controller, summary, json, /*nothing_new=*/true);
      return kExitOk;
    }
  }

  // Which units exist already, and with what content.
  std::vector<UnitSpec*> missing;
  std::vector<const UnitSpec*> changed;
  std::int64_t units_in_ledger = 0;
  if (record) {
    auto hashes = ledger.UnitHashes(spec.id);
    if (!hashes.ok()) return ReportError(controller, hashes.error());
    units_in_ledger = static_cast<std::int64_t>(hashes->size());
    for (UnitSpec& unit : units) {
      auto it = hashes->find(unit.id);
      if (it == hashes->end()) {
        missing.push_back(&unit);
      } else if (it->second != unit.content_sha256) {
        changed.push_back(&unit);
      } else {
        ++summary.already_present;
      }
    }
  } else {
    missing.reserve(units.size());
    for (UnitSpec& unit : units) missing.push_back(&unit);
  }
  if (!changed.empty() && !replace) {
    std::string message = "job " + spec.id + ": " + WithCommas(std::int64_t(changed.size())) +
                          " unit(s) already enqueued with other content: ";
    for (std::size_t i = 0; i < changed.size() && i < kListLimit; ++i) {
      message += (i > 0 ? ", " : "") + changed[i]->id;
    }
    if (changed.size() > kListLimit) {
      message += " and " + std::to_string(changed.size() - kListLimit) + " more";
    }
    message += " (rerun with --replace to replace units that are not running or done)";
    return ReportError(controller, Error::InvalidInput(message));
  }

  // Which messages to send, in unit order. A fresh job, or a rerun of the same grid after a
  // crash, sends units [sent_through, n). A job whose enqueue had completed and that now gets
  // a changed grid sends only for the units this run writes or replaces; it is marked WRITING
  // first, so a crash in between makes the next run resend every unit rather than lose some.
  std::int64_t send_from = 0;
  bool subset = false;
  if (record && record->enqueue_state != EnqueueState::kDone &&
      record->spec.grid_sha256 == spec.grid_sha256) {
    send_from = std::min<std::int64_t>(record->sent_through, summary.units);
  } else if (record && record->enqueue_state == EnqueueState::kDone) {
    subset = true;
  }
  const std::int64_t total_after = units_in_ledger + static_cast<std::int64_t>(missing.size());
  if (subset && missing.empty() && changed.empty()) {
    summary.seconds =
        std::chrono::duration<double>(controller.clock().Monotonic() - started).count();
    PrintSummary(controller, summary, json, /*nothing_new=*/true);
    return kExitOk;
  }
  if (subset) {
    if (Status mark = ledger.SetEnqueueProgress(spec.id, 0, total_after, false); !mark.ok()) {
      return ReportError(controller, mark);
    }
  }

  for (const UnitSpec* unit : changed) {
    if (Status replaced = ledger.ReplaceUnit(spec.id, *unit); !replaced.ok()) {
      Error error = replaced.error();
      if (error.IsConditionFailed()) {
        error.message = "unit " + unit->id + " of job " + spec.id +
                        " is running or has succeeded; it cannot be replaced now";
      }
      return ReportError(controller, error);
    }
    ++summary.replaced;
  }

  std::vector<const UnitSpec*> to_send;
  if (subset) {
    std::set<const UnitSpec*> touched(missing.begin(), missing.end());
    touched.insert(changed.begin(), changed.end());
    for (const UnitSpec& unit : units) {
      if (touched.count(&unit)) to_send.push_back(&unit);
    }
  } else {
    to_send.reserve(units.size() - static_cast<std::size_t>(send_from));
    for (std::size_t i = static_cast<std::size_t>(send_from); i < units.size(); ++i) {
      to_send.push_back(&units[i]);
    }
  }
  // The missing units in slices of one BatchWriteItem each, in unit order.
  std::vector<std::vector<UnitSpec>> slices((missing.size() + kItemsPerWrite - 1) / kItemsPerWrite);
  // A message goes only once its unit's item is in: to_send[i] needs the first needed[i] items
  // of `missing` written (the writer below keeps the written prefix). Both lists point into
  // `units` in unit order, so one pass over both finds each unit's place in `missing`, and
  // `needed` never decreases.
  std::vector<std::int64_t> needed(to_send.size(), 0);
  std::vector<std::int64_t> moved_to(to_send.size(), -1);  // index in `missing`, or -1
  for (std::size_t i = 0, j = 0; i < to_send.size(); ++i) {
    while (j < missing.size() && missing[j] < to_send[i]) ++j;
    if (j < missing.size() && missing[j] == to_send[i]) moved_to[i] = static_cast<std::int64_t>(j);
    needed[i] = static_cast<std::int64_t>(j) + (moved_to[i] >= 0 ? 1 : 0);
  }
  // The specs are moved into the slices, not copied (nothing reads the grid's copy after
  // this); to_send follows them to their new place.
  for (std::size_t j = 0; j < missing.size(); ++j) {
    std::vector<UnitSpec>& slice = slices[j / kItemsPerWrite];
    if (slice.empty()) slice.reserve(kItemsPerWrite);
    slice.push_back(std::move(*missing[j]));
  }
  for (std::size_t i = 0; i < to_send.size(); ++i) {
    if (moved_to[i] < 0) continue;
    const auto j = static_cast<std::size_t>(moved_to[i]);
    to_send[i] = &slices[j / kItemsPerWrite][j % kItemsPerWrite];
  }
  const std::int64_t to_write = static_cast<std::int64_t>(missing.size());

  // The items are written while the messages of the units already written go out, both
  // services with kInFlightWindow calls outstanding, all on this thread (AwsMulti: a thread per
  // call would cost more CPU than the calls). Calls complete out of order; what the protocol
  // needs is kept as prefixes: `written` counts the units of the slices written without a gap
  // before them, `sent_through` the messages of the batches sent likewise.
  auto aws = controller.aws();
  if (!aws.ok()) return ReportError(controller, aws.error());
  const std::size_t window = kInFlightWindow;
  const std::size_t batches = (to_send.size() + kMessagesPerSend - 1) / kMessagesPerSend;
  // The messages of to_send's kCheckpointUnits chunk c go once every item of the chunk is in,
  // i.e. `written` >= chunk_need[c]: a crash during the first chunk's writes has sent no
  // message.
  std::vector<std::int64_t> chunk_need;
  const auto chunk_units = static_cast<std::size_t>(kCheckpointUnits);
  for (std::size_t end = chunk_units;; end += chunk_units) {
    chunk_need.push_back(needed.empty() ? 0 : needed[std::min(end, needed.size()) - 1]);
    if (end >= needed.size()) break;
  }
  struct Writes {
    std::vector<char> done;       // per slice
    std::size_t next = 0;         // the next slice to start
    std::size_t in_flight = 0;
    std::size_t through = 0;      // slices [0, through) are written
    std::int64_t written = 0;     // units in those slices
    std::int64_t total = 0;       // units written, prefix or not (the progress bar's)
    std::optional<Error> error;   // no new write after the first failure
  } writes;
  writes.done.assign(slices.size(), 0);
  struct Sends {
    std::vector<char> done;           // per batch
    std::size_t next = 0;             // the next batch to start
    std::size_t in_flight = 0;
    std::size_t through = 0;          // batches [0, through) are sent
    std::int64_t sent_through = 0;    // their messages (relative to send_from)
    std::int64_t recorded = 0;        // the sent_through checkpoint in the ledger (relative)
    bool checkpointing = false;       // a checkpoint write is under way
    std::int64_t total = 0;           // messages sent, prefix or not (the summary's)
    std::optional<Error> error;
  } sends;
  sends.done.assign(batches, 0);
  ProgressBar bar(controller, "enqueue", to_write + static_cast<std::int64_t>(to_send.size()),
                  !json);
  AwsMulti multi(**aws);

  auto start_writes = [&] {
    while (!writes.error && writes.in_flight < window && writes.next < slices.size()) {
      const std::size_t s = writes.next++;
      ++writes.in_flight;
      ledger.StartPutNewUnits(multi, spec.id, slices[s], [&, s](Status put) {
        --writes.in_flight;
        if (!put.ok()) {
          if (!writes.error) writes.error = put.error();
          return;
        }
        writes.done[s] = 1;
        while (writes.through < slices.size() && writes.done[writes.through]) {
          writes.written += static_cast<std::int64_t>(slices[writes.through++].size());
        }
        writes.total += static_cast<std::int64_t>(slices[s].size());
        bar.Update(writes.total + sends.total);
      });
    }
  };

  // Batches start in order. Batch b waits until its chunk's items are in, and while it would
  // go more than kCheckpointUnits past the recorded checkpoint (a crash then makes a rerun
  // resend at most that many). Neither wait holds up a healthy run for long: a chunk's items
  // take 200 requests, its messages 500, and the checkpoint trails the sends by about 1,000
  // messages. After a failed write, the batches whose items are missing never start.
  auto start_sends = [&] {
    while (!sends.error && sends.in_flight < window && sends.next < batches) {
      const std::size_t b = sends.next;
      const std::size_t begin = b * kMessagesPerSend;
      const std::size_t end = std::min(to_send.size(), begin + kMessagesPerSend);
      if (writes.written < chunk_need[begin / chunk_units]) return;
      if (!subset && static_cast<std::int64_t>(end) - kCheckpointUnits > sends.recorded) return;
      ++sends.next;
      ++sends.in_flight;
      std::vector<SendEntry> entries(end - begin);
      for (std::size_t i = begin; i < end; ++i) {
        entries[i - begin].body = EncodeUnitMessage(spec.id, to_send[i]->id);
      }
      (*sqs)->StartSendMessageBatch(
          multi, stack->queue_url, std::move(entries),
          [&, b, begin, end](Result<SendMessageBatchResult> sent) {
            --sends.in_flight;
            if (!sent.ok() || !sent->ok()) {
              if (sends.error) return;
              if (!sent.ok()) {
                sends.error = sent.error();
                return;
              }
              const BatchEntryFailure& first = sent->failed.front();
              Error error = first.error;
              error.message = std::to_string(sent->failed.size()) + " of " +
                              std::to_string(end - begin) + " messages were not sent (unit " +
                              to_send[begin + first.index]->id + ": " + first.error.message +
                              "); rerun the same command to finish the job";
              sends.error = std::move(error);
              return;
            }
            sends.total += static_cast<std::int64_t>(end - begin);
            bar.Update(writes.total + sends.total);
            sends.done[b] = 1;
            while (sends.through < batches && sends.done[sends.through]) {
              sends.sent_through = static_cast<std::int64_t>(
                  std::min(to_send.size(), ++sends.through * kMessagesPerSend));
            }
          });
    }
  };

  // Records the sent_through checkpoint every kCheckpointEvery messages of the sent prefix,
  // one write at a time and in order, beside the calls (the ledger's write blocks, so it runs
  // on a thread of its own). The last one is left to the final DONE write.
  auto record_checkpoint = [&] {
    if (subset || sends.checkpointing || sends.error) return;
    const std::int64_t target = sends.sent_through / kCheckpointEvery * kCheckpointEvery;
    if (target <= sends.recorded || target >= static_cast<std::int64_t>(to_send.size())) return;
    sends.checkpointing = true;
    multi.Offload(
        [&ledger, &spec, send_from, target, total_after] {
          return ledger.SetEnqueueProgress(spec.id, send_from + target, total_after, false);
        },
        [&, target](Status checkpoint) {
          sends.checkpointing = false;
          if (checkpoint.ok()) {
            sends.recorded = target;
          } else if (!sends.error) {
            sends.error = checkpoint.error();
          }
        });
  };

  do {
    start_writes();
    start_sends();
    record_checkpoint();
  } while (multi.RunOnce());
  bar.Finish();
  summary.sent = sends.total;
  // A failed send leaves the writes to finish: the rerun then only has to send.
  if (writes.error) return ReportError(controller, *writes.error);
  if (sends.error) return ReportError(controller, *sends.error);
  summary.written = to_write;
  if (Status done = ledger.SetEnqueueProgress(spec.id, summary.units, total_after, true);
      !done.ok()) {
    return ReportError(controller, done);
  }
  summary.seconds = std::chrono::duration<double>(controller.clock().Monotonic() - started).count();
  PrintSummary(controller, summary, json, /*nothing_new=*/false);
  return kExitOk;
}

}  // namespace

Verb EnqueueVerb() {
  VerbSpec spec;
  spec.name = "enqueue";
  spec.summary = "turn every row of a grid.csv into a work unit";
  spec.positionals = "GRID.csv";
  spec.min_positionals = 1;
  spec.max_positionals = 1;
  spec.options = {
      {"job", "J", "the job id (default: the grid file's name without extension)", false, ""},
      {"command", "TEMPLATE",
       "the command, with {column} placeholders (default: the grid's `command` column)", false, ""},
      {"chunk", "N", "consecutive rows per unit, run one after another (default 1)", false, ""},
      {"max-attempts", "N", "attempts before a failing unit is FAILED (default 3)", false, ""},
      {"retry-exit-codes", "LIST", "retry only these exit codes, e.g. 1,75", true, ""},
      {"fail-exit-codes", "LIST", "these exit codes fail a unit at once, e.g. 2,64", true, ""},
      {"timeout", "DURATION", "time limit per attempt: 90s, 15m, 2h, 1d (default: none)", false,
       ""},
      {"replace", "", "replace units whose row changed (unless running or succeeded)", false, ""},
      {"dry-run", "", "print the units that would be enqueued; touch nothing", false, ""},
      {"json", "", "print a JSON summary (with --dry-run: the units as JSON)", false, ""},
  };
  spec.details =
      "The grid is CSV (RFC 4180) with a header row. A unit's command is the `command`\n"
      "column or --command TEMPLATE, whose {column} placeholders are replaced by the row's\n"
      "values shell-quoted; every value also reaches the command as an environment variable.\n"
      "An `id` column names the units (otherwise the 1-based row number does).\n"
      "\n"
      "The whole file is validated before anything is written. Enqueue is idempotent: running\n"
      "it again adds only what is missing, and a rerun after a failure completes the job\n"
      "without duplicate units.\n";
  return Verb{std::move(spec), RunEnqueue};
}

}  // namespace spotgrid
