#include "spotgrid/ledger/types.h"

#include <nlohmann/json.hpp>

#include "services/json_writer.h"

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

}  // namespace

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

}  // namespace spotgrid
