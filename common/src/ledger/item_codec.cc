#include "ledger/item_codec.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "services/json_writer.h"
#include "spotgrid/core/iso8601.h"
#include "spotgrid/services/dynamodb_client.h"

namespace spotgrid::ledger_codec {
namespace {

using nlohmann::json;

std::string Str(const json& item, std::string_view name) {
  return ddb::GetS(item, name).value_or("");
}

std::int64_t Int(const json& item, std::string_view name, std::int64_t fallback = 0) {
  return ddb::GetInt(item, name).value_or(fallback);
}

std::optional<Clock::WallTime> Time(const json& item, std::string_view name) {
  auto text = ddb::GetS(item, name);
  if (!text) return std::nullopt;
  return ParseTime(*text);
}

Clock::WallTime TimeOr0(const json& item, std::string_view name) {
  return Time(item, name).value_or(Clock::WallTime{});
}

Clock::WallTime EpochSeconds(std::int64_t s) { return Clock::WallTime(std::chrono::seconds(s)); }

json NumberSet(const std::vector<int>& values) {
  json list = json::array();
  for (int v : values) list.push_back(std::to_string(v));
  return {{"NS", list}};
}

std::vector<int> DecodeNumberSet(const json& item, std::string_view name) {
  std::vector<int> out;
  const json* value = ddb::Get(item, name);
  if (value == nullptr || !value->is_object()) return out;
  auto ns = value->find("NS");
  if (ns == value->end() || !ns->is_array()) return out;
  for (const json& n : *ns) {
    if (n.is_string()) out.push_back(std::atoi(n.get_ref<const std::string&>().c_str()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The members of an M or L attribute value (nullptr when absent or of another type).
const json* Members(const json* value, const char* type) {
  if (value == nullptr || !value->is_object()) return nullptr;
  auto it = value->find(type);
  if (it == value->end()) return nullptr;
  if (std::string_view(type) == "M" ? !it->is_object() : !it->is_array()) return nullptr;
  return &*it;
}

void SetTime(json& item, const char* name, const std::optional<Clock::WallTime>& time) {
  if (time) item[name] = ddb::S(FormatTime(*time));
}

}  // namespace

std::string FormatTime(Clock::WallTime time) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  auto whole = Clock::WallTime(std::chrono::seconds(ms >= 0 ? ms / 1000 : (ms - 999) / 1000));
  int millis = static_cast<int>(((ms % 1000) + 1000) % 1000);
  std::string text = FormatIso8601(whole);  // "...:SSZ"
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", millis);
  text.pop_back();
  text += frac;
  return text;
}

std::optional<Clock::WallTime> ParseTime(std::string_view text) {
  auto t = ParseIso8601(text);
  if (!t) return std::nullopt;
  return std::chrono::time_point_cast<Clock::WallTime::duration>(*t);
}

std::string JobPk(std::string_view job) { return "JOB#" + std::string(job); }
std::string UnitSk(std::string_view unit) { return std::string(kUnitSkPrefix) + std::string(unit); }
std::string StatePk(std::string_view job, UnitState state) {
  return std::string(job) + "#" + std::string(ToString(state));
}
std::string StateSk(Clock::WallTime since, std::string_view unit) {
  return FormatTime(since) + "#" + std::string(unit);
}
json Key(std::string_view pk, std::string_view sk) {
  return {{"pk", ddb::S(pk)}, {"sk", ddb::S(sk)}};
}
json JobKey(std::string_view job) { return Key(JobPk(job), kJobSk); }
json UnitKey(std::string_view job, std::string_view unit) { return Key(JobPk(job), UnitSk(unit)); }

json EncodeStack(const StackInfo& stack) {
  json item = Key(kStackKey, kStackKey);
  item["name"] = ddb::S(stack.name);
  item["table"] = ddb::S(stack.table);
  item["bucket"] = ddb::S(stack.bucket);
  item["prefix"] = ddb::S(stack.prefix);
  item["queue_url"] = ddb::S(stack.queue_url);
  item["queue_arn"] = ddb::S(stack.queue_arn);
  item["dlq_url"] = ddb::S(stack.dlq_url);
  item["dlq_arn"] = ddb::S(stack.dlq_arn);
  item["region"] = ddb::S(stack.region);
  item["visibility_s"] = ddb::N(std::int64_t{stack.visibility_s});
  item["max_receives"] = ddb::N(std::int64_t{stack.max_receives});
  item["created_at"] = ddb::S(FormatTime(stack.created_at));
  item["version"] = ddb::N(std::int64_t{1});
  return item;
}

StackInfo DecodeStack(const json& item) {
  StackInfo stack;
  stack.name = Str(item, "name");
  stack.table = Str(item, "table");
  stack.bucket = Str(item, "bucket");
  stack.prefix = Str(item, "prefix");
  stack.queue_url = Str(item, "queue_url");
  stack.queue_arn = Str(item, "queue_arn");
  stack.dlq_url = Str(item, "dlq_url");
  stack.dlq_arn = Str(item, "dlq_arn");
  stack.region = Str(item, "region");
  stack.visibility_s = static_cast<int>(Int(item, "visibility_s", 900));
  stack.max_receives = static_cast<int>(Int(item, "max_receives", 10));
  stack.created_at = TimeOr0(item, "created_at");
  return stack;
}

json EncodeJob(const JobSpec& spec) {
  json item = JobKey(spec.id);
  item["gsi1pk"] = ddb::S(kJobsGsiPk);
  item["gsi1sk"] = ddb::S(FormatTime(spec.created_at) + "#" + spec.id);
  item["job"] = ddb::S(spec.id);
  item["command"] = ddb::S(spec.command_template);
  item["grid_file"] = ddb::S(spec.grid_file);
  item["grid_sha256"] = ddb::S(spec.grid_sha256);
  item["chunk"] = ddb::N(std::int64_t{spec.chunk});
  item["max_attempts"] = ddb::N(std::int64_t{spec.retry.max_attempts});
  // A DynamoDB set may not be empty: an absent attribute means "none".
  if (!spec.retry.retry_exit_codes.empty()) {
    item["retry_exit_codes"] = NumberSet(spec.retry.retry_exit_codes);
  }
  if (!spec.retry.fail_exit_codes.empty()) {
    item["fail_exit_codes"] = NumberSet(spec.retry.fail_exit_codes);
  }
  item["timeout_s"] = ddb::N(spec.timeout_s);
  item["created_at"] = ddb::S(FormatTime(spec.created_at));
  json columns = json::array();
  for (const std::string& c : spec.columns) columns.push_back(ddb::S(c));
  item["columns"] = ddb::L(columns);
  item["enqueue_state"] = ddb::S(ToString(EnqueueState::kWriting));
  item["sent_through"] = ddb::N(std::int64_t{0});
  item["total"] = ddb::N(spec.total);
  item["succeeded"] = ddb::N(std::int64_t{0});
  item["failed"] = ddb::N(std::int64_t{0});
  item["cancelled"] = ddb::N(std::int64_t{0});
  item["inflight"] = ddb::M(json::object());
  return item;
}

JobRecord DecodeJob(const json& item) {
  JobRecord record;
  JobSpec& spec = record.spec;
  spec.id = Str(item, "job");
  spec.command_template = Str(item, "command");
  spec.grid_file = Str(item, "grid_file");
  spec.grid_sha256 = Str(item, "grid_sha256");
  spec.chunk = static_cast<int>(Int(item, "chunk", 1));
  spec.retry.max_attempts = static_cast<int>(Int(item, "max_attempts", 3));
  spec.retry.retry_exit_codes = DecodeNumberSet(item, "retry_exit_codes");
  spec.retry.fail_exit_codes = DecodeNumberSet(item, "fail_exit_codes");
  spec.timeout_s = Int(item, "timeout_s");
  spec.total = Int(item, "total");
  spec.created_at = TimeOr0(item, "created_at");
  if (const json* columns = Members(ddb::Get(item, "columns"), "L")) {
    for (const json& c : *columns) {
      if (c.is_object() && c.contains("S") && c["S"].is_string()) {
        spec.columns.push_back(c["S"].get<std::string>());
      }
    }
  }
  record.enqueue_state = ParseEnqueueState(Str(item, "enqueue_state"));
  record.sent_through = Int(item, "sent_through");
  record.succeeded = Int(item, "succeeded");
  record.failed = Int(item, "failed");
  record.cancelled = Int(item, "cancelled");
  if (const json* inflight = Members(ddb::Get(item, "inflight"), "M")) {
    for (auto it = inflight->begin(); it != inflight->end(); ++it) {
      record.inflight.push_back(DecodeIntent(it.key(), it.value(), nullptr));
    }
  }
  return record;
}

json EncodeRows(const std::vector<GridRow>& rows) {
  json list = json::array();
  for (const GridRow& row : rows) {
    json params = json::object();
    for (const auto& [name, value] : row.params) params[name] = ddb::S(value);
    list.push_back(ddb::M({{"line", ddb::N(std::int64_t{row.line})},
                           {"command", ddb::S(row.command)},
                           {"params", ddb::M(std::move(params))}}));
  }
  return ddb::L(std::move(list));
}

json EncodeNewUnit(std::string_view job, const UnitSpec& unit, Clock::WallTime now) {
  json item = UnitKey(job, unit.id);
  item["gsi1pk"] = ddb::S(StatePk(job, UnitState::kQueued));
  item["gsi1sk"] = ddb::S(StateSk(now, unit.id));
  item["job"] = ddb::S(job);
  item["unit"] = ddb::S(unit.id);
  item["rows"] = EncodeRows(unit.rows);
  item["content_sha256"] = ddb::S(unit.content_sha256);
  item["state"] = ddb::S(ToString(UnitState::kQueued));
  item["state_since"] = ddb::S(FormatTime(now));
  item["attempt"] = ddb::N(std::int64_t{0});
  item["failures"] = ddb::N(std::int64_t{0});
  item["interruptions"] = ddb::N(std::int64_t{0});
  item["created_at"] = ddb::S(FormatTime(now));
  return item;
}

namespace {

// `"name":{"S":"<parts joined>"}`; `name` is a fixed ASCII attribute name.
bool AppendS(std::string& out, std::string_view name,
             std::initializer_list<std::string_view> parts) {
  out.push_back('"');
  out += name;
  out += "\":{\"S\":\"";
  for (std::string_view part : parts) {
    if (!json_writer::AppendStringContents(out, part)) return false;
  }
  out += "\"}";
  return true;
}

// `"name":{"N":"<value>"}`
void AppendN(std::string& out, std::string_view name, std::int64_t value) {
  out.push_back('"');
  out += name;
  out += "\":{\"N\":\"";
  out += std::to_string(value);
  out += "\"}";
}

}  // namespace

bool AppendNewUnit(std::string& out, std::string_view job, const UnitSpec& unit,
                   std::string_view now_text) {
  // Members in the order of EncodeNewUnit's std::map (sorted by name), so the bytes match.
  const std::string_view queued = ToString(UnitState::kQueued);
  out.push_back('{');
  AppendN(out, "attempt", 0);
  out.push_back(',');
  if (!AppendS(out, "content_sha256", {unit.content_sha256})) return false;
  out.push_back(',');
  if (!AppendS(out, "created_at", {now_text})) return false;
  out.push_back(',');
  AppendN(out, "failures", 0);
  out.push_back(',');
  if (!AppendS(out, "gsi1pk", {job, "#", queued})) return false;
  out.push_back(',');
  if (!AppendS(out, "gsi1sk", {now_text, "#", unit.id})) return false;
  out.push_back(',');
  AppendN(out, "interruptions", 0);
  out.push_back(',');
  if (!AppendS(out, "job", {job})) return false;
  out.push_back(',');
  if (!AppendS(out, "pk", {"JOB#", job})) return false;
  out += ",\"rows\":{\"L\":[";
  std::vector<std::size_t> order;
  for (std::size_t r = 0; r < unit.rows.size(); ++r) {
    const GridRow& row = unit.rows[r];
    if (r > 0) out.push_back(',');
    out += "{\"M\":{";
    if (!AppendS(out, "command", {row.command})) return false;
    out.push_back(',');
    AppendN(out, "line", row.line);
    out += ",\"params\":{\"M\":{";
    // A JSON object keeps one member per name, in name order, the last assignment winning.
    order.resize(row.params.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return row.params[a].first < row.params[b].first;
    });
    bool first = true;
    for (std::size_t k = 0; k < order.size(); ++k) {
      if (k + 1 < order.size() && row.params[order[k]].first == row.params[order[k + 1]].first) {
        continue;
      }
      const auto& [name, value] = row.params[order[k]];
      if (!first) out.push_back(',');
      first = false;
      if (!json_writer::AppendString(out, name)) return false;
      out += ":{\"S\":";
      if (!json_writer::AppendString(out, value)) return false;
      out.push_back('}');
    }
    out += "}}}}";
  }
  out += "]},";
  if (!AppendS(out, "sk", {kUnitSkPrefix, unit.id})) return false;
  out.push_back(',');
  if (!AppendS(out, "state", {queued})) return false;
  out.push_back(',');
  if (!AppendS(out, "state_since", {now_text})) return false;
  out.push_back(',');
  if (!AppendS(out, "unit", {unit.id})) return false;
  out.push_back('}');
  return true;
}

UnitRecord DecodeUnit(const json& item, const std::vector<std::string>& columns) {
  UnitRecord unit;
  unit.job = Str(item, "job");
  unit.spec.id = Str(item, "unit");
  unit.spec.content_sha256 = Str(item, "content_sha256");
  if (const json* rows = Members(ddb::Get(item, "rows"), "L")) {
    for (const json& r : *rows) {
      const json* m = Members(&r, "M");
      if (m == nullptr) continue;
      GridRow row;
      row.line = static_cast<int>(Int(*m, "line"));
      row.command = Str(*m, "command");
      if (const json* params = Members(ddb::Get(*m, "params"), "M")) {
        for (const std::string& column : columns) {
          if (auto v = ddb::GetS(*params, column)) row.params.emplace_back(column, *v);
        }
        for (auto it = params->begin(); it != params->end(); ++it) {
          if (std::find(columns.begin(), columns.end(), it.key()) != columns.end()) continue;
          if (auto v = ddb::GetS(*params, it.key())) row.params.emplace_back(it.key(), *v);
        }
      }
      unit.spec.rows.push_back(std::move(row));
    }
  }
  unit.state = ParseUnitState(Str(item, "state")).value_or(UnitState::kQueued);
  unit.state_since = TimeOr0(item, "state_since");
  unit.attempt = Int(item, "attempt");
  unit.failures = Int(item, "failures");
  unit.interruptions = Int(item, "interruptions");
  unit.owner = Str(item, "owner");
  if (auto lease = ddb::GetInt(item, "lease_until")) unit.lease_until = EpochSeconds(*lease);
  unit.heartbeat_at = Time(item, "heartbeat_at");
  unit.progress = Str(item, "progress");
  unit.created_at = TimeOr0(item, "created_at");
  unit.started_at = Time(item, "started_at");
  unit.finished_at = Time(item, "finished_at");
  if (auto code = ddb::GetInt(item, "exit_code")) unit.exit_code = static_cast<int>(*code);
  unit.error = Str(item, "error");
  if (const json* attempts = Members(ddb::Get(item, "attempts"), "L")) {
    for (const json& a : *attempts) {
      const json* m = Members(&a, "M");
      if (m == nullptr) continue;
      AttemptRecord attempt;
      attempt.n = Int(*m, "n");
      attempt.owner = Str(*m, "owner");
      attempt.started_at = TimeOr0(*m, "started_at");
      attempt.finished_at = Time(*m, "finished_at");
      if (auto code = ddb::GetInt(*m, "exit_code")) attempt.exit_code = static_cast<int>(*code);
      attempt.reason = Str(*m, "reason");
      attempt.error = Str(*m, "error");
      unit.attempts.push_back(std::move(attempt));
    }
  }
  return unit;
}

json EncodeWorker(const WorkerRecord& worker) {
  json item = Key(kWorkerPk, worker.instance_id);
  item["instance_id"] = ddb::S(worker.instance_id);
  item["instance_type"] = ddb::S(worker.instance_type);
  item["spot"] = ddb::Bool(worker.spot);
  item["availability_zone"] = ddb::S(worker.availability_zone);
  item["slots"] = ddb::N(std::int64_t{worker.slots});
  item["heartbeat_s"] = ddb::N(std::int64_t{worker.heartbeat_s});
  json units = json::array();
  for (const std::string& u : worker.units_in_hand) units.push_back(ddb::S(u));
  item["units_in_hand"] = ddb::L(std::move(units));
  item["started_at"] = ddb::S(FormatTime(worker.started_at));
  item["last_heartbeat"] = ddb::S(FormatTime(worker.last_heartbeat));
  SetTime(item, "idle_since", worker.idle_since);
  item["state"] = ddb::S(ToString(worker.state));
  SetTime(item, "ended_at", worker.ended_at);
  return item;
}

WorkerRecord DecodeWorker(const json& item) {
  WorkerRecord worker;
  worker.instance_id = Str(item, "instance_id");
  if (worker.instance_id.empty()) worker.instance_id = Str(item, "sk");
  worker.instance_type = Str(item, "instance_type");
  worker.spot = ddb::GetBool(item, "spot").value_or(false);
  worker.availability_zone = Str(item, "availability_zone");
  worker.slots = static_cast<int>(Int(item, "slots", 1));
  worker.heartbeat_s = static_cast<int>(Int(item, "heartbeat_s", WorkerRecord{}.heartbeat_s));
  if (const json* units = Members(ddb::Get(item, "units_in_hand"), "L")) {
    for (const json& u : *units) {
      if (u.is_object() && u.contains("S") && u["S"].is_string()) {
        worker.units_in_hand.push_back(u["S"].get<std::string>());
      }
    }
  }
  worker.started_at = TimeOr0(item, "started_at");
  worker.last_heartbeat = TimeOr0(item, "last_heartbeat");
  worker.idle_since = Time(item, "idle_since");
  worker.state = ParseWorkerState(Str(item, "state"));
  worker.ended_at = Time(item, "ended_at");
  return worker;
}

json EncodeIntent(const CountIntent& intent, std::string_view id) {
  return ddb::M({{"id", ddb::S(id)},
                 {"unit", ddb::S(intent.unit)},
                 {"from", ddb::S(ToString(intent.from))},
                 {"to", ddb::S(ToString(intent.to))},
                 {"attempt", ddb::N(intent.attempt)},
                 {"writer", ddb::S(intent.writer)},
                 {"at", ddb::S(FormatTime(intent.at))}});
}

CountIntent DecodeIntent(std::string_view unit, const json& value, std::string* id) {
  CountIntent intent;
  intent.unit = std::string(unit);
  const json* m = Members(&value, "M");
  if (m == nullptr) return intent;
  intent.from = ParseUnitState(Str(*m, "from")).value_or(UnitState::kRunning);
  intent.to = ParseUnitState(Str(*m, "to")).value_or(UnitState::kSucceeded);
  intent.attempt = Int(*m, "attempt");
  intent.writer = Str(*m, "writer");
  intent.at = TimeOr0(*m, "at");
  if (id != nullptr) *id = Str(*m, "id");
  return intent;
}

}  // namespace spotgrid::ledger_codec
