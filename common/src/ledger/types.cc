#include "spotgrid/ledger/types.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "services/json_writer.h"
#include "spotgrid/ledger/unit_leases.h"

namespace spotgrid {
namespace {

bool SameLetters(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'a' && a[i] <= 'z' ? static_cast<char>(a[i] - 'a' + 'A') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

// The length of the well-formed UTF-8 sequence at the start of `text` (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 when it is not one.
std::size_t Utf8SequenceLength(std::string_view text) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  if (byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace

std::string ClipUtf8(std::string_view text, std::size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t length = Utf8SequenceLength(text.substr(i));
    std::string_view piece = length > 0 ? text.substr(i, length) : kReplacement;
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    i += length > 0 ? length : 1;
  }
  return out;
}

std::string_view ToString(UnitState state) {
  switch (state) {
    case UnitState::kQueued:
      return "QUEUED";
    case UnitState::kRunning:
      return "RUNNING";
    case UnitState::kSucceeded:
      return "SUCCEEDED";
    case UnitState::kFailed:
      return "FAILED";
    case UnitState::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

std::optional<UnitState> ParseUnitState(std::string_view text) {
  for (UnitState state : kAllUnitStates) {
    if (SameLetters(text, ToString(state))) return state;
  }
  return std::nullopt;
}

std::string_view ToString(EnqueueState state) {
  return state == EnqueueState::kDone ? "DONE" : "WRITING";
}

EnqueueState ParseEnqueueState(std::string_view text) {
  return text == "DONE" ? EnqueueState::kDone : EnqueueState::kWriting;
}

std::string_view ToString(WorkerState state) {
  switch (state) {
    case WorkerState::kRunning:
      return "running";
    case WorkerState::kDraining:
      return "draining";
    case WorkerState::kEnded:
      return "ended";
  }
  return "running";
}

WorkerState ParseWorkerState(std::string_view text) {
  if (text == "draining") return WorkerState::kDraining;
  if (text == "ended") return WorkerState::kEnded;
  return WorkerState::kRunning;
}

bool IsTerminal(UnitState state) {
  return state == UnitState::kSucceeded || state == UnitState::kFailed ||
         state == UnitState::kCancelled;
}

std::string UnitKeyPrefix(const StackInfo& stack, std::string_view job, std::string_view unit) {
  std::string key;
  if (!stack.prefix.empty()) {
    key += stack.prefix;
    key += '/';
  }
  key += job;
  key += '/';
  key += unit;
  key += '/';
  return key;
}

std::string OutputPrefix(const StackInfo& stack, std::string_view job, std::string_view unit) {
  return UnitKeyPrefix(stack, job, unit) + "output/";
}

std::string CheckpointPrefix(const StackInfo& stack, std::string_view job, std::string_view unit) {
  return UnitKeyPrefix(stack, job, unit) + "checkpoint/";
}

std::string LogsPrefix(const StackInfo& stack, std::string_view job, std::string_view unit,
                       std::int64_t attempt) {
  return UnitKeyPrefix(stack, job, unit) + "logs/" + std::to_string(attempt) + "/";
}

std::string EncodeUnitMessage(std::string_view job, std::string_view unit) {
  // Written directly (one per unit on enqueue), in the member order nlohmann's dump() uses.
  std::string out;
  out.reserve(32 + job.size() + unit.size());
  out += "{\"job\":";
  if (json_writer::AppendString(out, job)) {
    out += ",\"unit\":";
    if (json_writer::AppendString(out, unit)) {
      out += ",\"v\":1}";
      return out;
    }
  }
  nlohmann::json body = {{"v", 1}, {"job", std::string(job)}, {"unit", std::string(unit)}};
  // Ids are validated ASCII; `replace` only guards against a caller that skipped validation,
  // so no exception can leave here.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<std::pair<std::string, std::string>> DecodeUnitMessage(std::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return std::nullopt;
  auto v = doc.find("v");
  auto job = doc.find("job");
  auto unit = doc.find("unit");
  if (v == doc.end() || !v->is_number_integer() || v->get<std::int64_t>() != 1) return std::nullopt;
  if (job == doc.end() || !job->is_string() || unit == doc.end() || !unit->is_string()) {
    return std::nullopt;
  }
  std::string job_id = job->get<std::string>();
  std::string unit_id = unit->get<std::string>();
  if (job_id.empty() || unit_id.empty()) return std::nullopt;
  return std::make_pair(std::move(job_id), std::move(unit_id));
}

bool IsActive(const JobRecord& job) {
  return job.enqueue_state != EnqueueState::kDone ||
         job.succeeded + job.failed + job.cancelled < job.spec.total || !job.inflight.empty();
}

}  // namespace spotgrid
