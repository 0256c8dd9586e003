// Ledger records <-> DynamoDB items in AttributeValue JSON (docs/ledger.md), private to
// spotgrid_common. Decoders never throw: a missing or mistyped attribute leaves the field at
// its default, so an item written by an older version still reads.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "spotgrid/ledger/types.h"

namespace spotgrid::ledger_codec {

// "2026-11-21T05:00:00.123Z": fixed width, so the strings sort as the times do.
std::string FormatTime(Clock::WallTime time);
std::optional<Clock::WallTime> ParseTime(std::string_view text);

inline constexpr std::string_view kStackKey = "STACK";
inline constexpr std::string_view kJobSk = "#JOB";
inline constexpr std::string_view kJobsGsiPk = "JOBS";
inline constexpr std::string_view kWorkerPk = "WORKER";
inline constexpr std::string_view kUnitSkPrefix = "U#";
inline constexpr std::string_view kByStateIndex = "by_state";

std::string JobPk(std::string_view job);                            // "JOB#<job>"
std::string UnitSk(std::string_view unit);                          // "U#<unit>"
std::string StatePk(std::string_view job, UnitState state);         // "<job>#<STATE>"
std::string StateSk(Clock::WallTime since, std::string_view unit);  // "<since>#<unit>"
nlohmann::json Key(std::string_view pk, std::string_view sk);
nlohmann::json JobKey(std::string_view job);
nlohmann::json UnitKey(std::string_view job, std::string_view unit);

nlohmann::json EncodeStack(const StackInfo& stack);
StackInfo DecodeStack(const nlohmann::json& item);

// A new job item: spec, enqueue_state WRITING, zero counters, empty `inflight`.
nlohmann::json EncodeJob(const JobSpec& spec);
JobRecord DecodeJob(const nlohmann::json& item);

// The rows of a unit ("rows": L of M) and a new QUEUED unit item.
nlohmann::json EncodeRows(const std::vector<GridRow>& rows);
nlohmann::json EncodeNewUnit(std::string_view job, const UnitSpec& unit, Clock::WallTime now);
// The item EncodeNewUnit builds, appended to `out` as compact AttributeValue JSON (the same
// bytes json_writer::AppendValue writes for it) without a JSON tree in between: the bulk path
// of PutNewUnits. `now_text` is FormatTime(now). Returns false (leaving `out` partly written)
// when a string is not valid UTF-8.
bool AppendNewUnit(std::string& out, std::string_view job, const UnitSpec& unit,
                   std::string_view now_text);
// `columns` (the job's) restores the column order of each row's params, which a map loses.
UnitRecord DecodeUnit(const nlohmann::json& item, const std::vector<std::string>& columns = {});

nlohmann::json EncodeWorker(const WorkerRecord& worker);
WorkerRecord DecodeWorker(const nlohmann::json& item);

// An intent in the job's `inflight` map, keyed there by unit. `id` is unique per transition;
// the unit item carries it as `last_intent` once the transition is made.
nlohmann::json EncodeIntent(const CountIntent& intent, std::string_view id);
CountIntent DecodeIntent(std::string_view unit, const nlohmann::json& value, std::string* id);

}  // namespace spotgrid::ledger_codec
