// controller init: creates a stack's work queue, dead-letter queue, ledger table and bucket,
// each only if missing, and stores the stack item. Running it again changes nothing: every
// resource is looked up first and an existing one is checked, never modified, with one
// exception: a work queue that keeps messages less than 14 days gets the 14 days.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "spotgrid/core/iso8601.h"
#include "spotgrid/services/s3_client.h"
#include "spotgrid/services/sqs_client.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

constexpr int kReceiveWaitSeconds = 20;
constexpr auto kTableTimeout = std::chrono::seconds(120);
// Both queues keep messages as long as SQS allows (14 days): a unit may wait in the queue for
// as long as its job runs, and a message that expired would leave its unit without one until
// a sweeper notices (docs/ledger.md, "Messages and the sweeper").
constexpr const char* kRetentionSeconds = "1209600";

// S3's bucket naming rules (general purpose buckets).
Status ValidateBucketName(std::string_view bucket) {
  auto bad = [&](const std::string& why) {
    return Error::InvalidInput("invalid bucket name '" + std::string(bucket) + "': " + why);
  };
  if (bucket.size() < 3 || bucket.size() > 63) return bad("must be 3 to 63 characters");
  for (char c : bucket) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
      return bad("only lower-case letters, digits, '-' and '.' are allowed");
    }
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(bucket.front()) || !alnum(bucket.back())) {
    return bad("must begin and end with a letter or digit");
  }
  if (bucket.find("..") != std::string_view::npos) return bad("must not contain '..'");
  if (bucket.find_first_not_of("0123456789.") == std::string_view::npos) {
    return bad("must not look like an IP address");
  }
  return Status::Ok();
}

// The key prefix without leading or trailing '/'; segments must be plain names, so every
// key the fleet derives from it is predictable.
Result<std::string> NormalizePrefix(std::string_view raw) {
  while (!raw.empty() && raw.front() == '/') raw.remove_prefix(1);
  while (!raw.empty() && raw.back() == '/') raw.remove_suffix(1);
  std::string prefix(raw);
  std::size_t start = 0;
  while (!prefix.empty() && start <= prefix.size()) {
    std::size_t end = prefix.find('/', start);
    if (end == std::string::npos) end = prefix.size();
    std::string_view segment = std::string_view(prefix).substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return Error::InvalidInput("invalid --prefix '" + std::string(raw) +
                                 "': empty, '.' or '..' path segment");
    }
    for (char c : segment) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.')) {
        return Error::InvalidInput("invalid --prefix '" + std::string(raw) +
                                   "': use letters, digits, '-', '_', '.' and '/'");
      }
    }
    start = end + 1;
  }
  return prefix;
}

bool SameStack(const StackInfo& a, const StackInfo& b) {
  return a.name == b.name && a.region == b.region && a.table == b.table && a.bucket == b.bucket &&
         a.prefix == b.prefix && a.queue_url == b.queue_url && a.queue_arn == b.queue_arn &&
         a.dlq_url == b.dlq_url && a.dlq_arn == b.dlq_arn && a.visibility_s == b.visibility_s &&
         a.max_receives == b.max_receives;
}

// The queue's URL, or "" when it does not exist.
Result<std::string> FindQueue(Sqs& sqs, const std::string& name) {
  auto url = sqs.GetQueueUrl(name);
  if (url.ok()) return *url;
  if (url.error().IsNotFound()) return std::string();
  return url.error();
}

Result<std::string> QueueArn(Sqs& sqs, const std::string& url) {
  auto attributes = sqs.GetQueueAttributes(url, {"QueueArn"});
  if (!attributes.ok()) return attributes.error();
  auto it = attributes->find("QueueArn");
  if (it == attributes->end() || it->second.empty()) {
    return Error::Io("GetQueueAttributes", "queue " + url + " reported no QueueArn");
  }
  return it->second;
}

// Checks that an existing work queue is what init would have created; init never modifies a
// queue a running fleet may be using.
Status CheckWorkQueue(Sqs& sqs, const std::string& url, const std::string& name,
                      const std::string& dlq_name, int visibility_s, int max_receives) {
  auto attributes = sqs.GetQueueAttributes(url, {"All"});
  if (!attributes.ok()) return attributes.error();
  auto get = [&](const std::string& key) {
    auto it = attributes->find(key);
    return it == attributes->end() ? std::string() : it->second;
  };
  std::vector<std::string> differences;
  if (get("VisibilityTimeout") != std::to_string(visibility_s)) {
    differences.push_back("VisibilityTimeout is " + get("VisibilityTimeout") + " (asked " +
                          std::to_string(visibility_s) + ")");
  }
  if (get("ReceiveMessageWaitTimeSeconds") != std::to_string(kReceiveWaitSeconds)) {
    differences.push_back("ReceiveMessageWaitTimeSeconds is " +
                          get("ReceiveMessageWaitTimeSeconds") + " (expected " +
                          std::to_string(kReceiveWaitSeconds) + ")");
  }
  const std::string redrive_text = get("RedrivePolicy");
  if (redrive_text.empty()) {
    differences.push_back("it has no RedrivePolicy (expected one to " + dlq_name + ")");
  } else {
    auto redrive = RedrivePolicy::FromAttributeValue(redrive_text);
    if (!redrive.ok()) {
      differences.push_back("its RedrivePolicy is unreadable: " + redrive.error().message);
    } else {
      const std::string& arn = redrive->dead_letter_arn;
      const std::string target =
          arn.substr(arn.rfind(':') == std::string::npos ? 0 : arn.rfind(':') + 1);
      if (target != dlq_name) {
        differences.push_back("its RedrivePolicy targets " + arn + " (expected " + dlq_name + ")");
      }
      if (redrive->max_receive_count != max_receives) {
        differences.push_back("its maxReceiveCount is " +
                              std::to_string(redrive->max_receive_count) + " (asked " +
                              std::to_string(max_receives) + ")");
      }
    }
  }
  if (differences.empty()) return Status::Ok();
  std::string message = "queue " + name + " already exists with other settings: ";
  for (std::size_t i = 0; i < differences.size(); ++i) {
    if (i > 0) message += "; ";
    message += differences[i];
  }
  message +=
      ". init never changes an existing queue: pass the values it has (--visibility, "
      "--max-receives) or delete the queue first";
  return Error::InvalidInput(message);
}

struct Step {
  std::string what;
  std::string name;
  bool created = false;
  std::string updated{};  // what init changed on an existing resource ("" for nothing)
};

// An existing work queue keeps messages for 14 days. Unlike the settings CheckWorkQueue
// guards, a longer retention changes nothing a running fleet relies on, so init sets it
// rather than refusing. Returns what it changed ("" when nothing).
Result<std::string> EnsureRetention(Sqs& sqs, const std::string& url) {
  auto attributes = sqs.GetQueueAttributes(url, {"MessageRetentionPeriod"});
  if (!attributes.ok()) return attributes.error();
  auto it = attributes->find("MessageRetentionPeriod");
  const std::string was = it == attributes->end() ? "" : it->second;
  if (was == kRetentionSeconds) return std::string();
  if (Status set = sqs.SetQueueAttributes(url, {{"MessageRetentionPeriod", kRetentionSeconds}});
      !set.ok()) {
    return set.error();
  }
  return "message retention " + (was.empty() ? std::string("?") : was) + " s -> " +
         kRetentionSeconds + " s (14 days)";
}

int RunInit(const Args& args, Controller& controller) {
  auto usage = [&](const std::string& message) {
    return ReportError(controller, Error::InvalidInput("init: " + message));
  };
  const auto stack_name = args.Get("stack");
  if (!stack_name) return usage("--stack is required (or set SPOTGRID_STACK)");
  if (Status valid = ValidateStackName(*stack_name); !valid.ok()) {
    return ReportError(controller, valid);
  }
  const auto bucket = args.Get("bucket");
  if (!bucket) return usage("--bucket is required");
  if (Status valid = ValidateBucketName(*bucket); !valid.ok()) {
    return ReportError(controller, valid);
  }
  std::optional<std::string> prefix;
  if (auto raw = args.Get("prefix")) {
    auto normalized = NormalizePrefix(*raw);
    if (!normalized.ok()) return ReportError(controller, normalized.error());
    prefix = *normalized;
  }
  auto max_receives_arg = args.GetInt("max-receives", 1, 1000);
  if (!max_receives_arg.ok()) return ReportError(controller, max_receives_arg.error());
  auto visibility_arg = args.GetInt("visibility", 0, 43200);
  if (!visibility_arg.ok()) return ReportError(controller, visibility_arg.error());
  const bool json = args.Has("json");

  auto ledger = controller.ledger(*stack_name);
  if (!ledger.ok()) return ReportError(controller, ledger.error());
  bool table_missing = false;
  std::optional<StackInfo> existing;
  if (auto found = (*ledger)->GetStack(); found.ok()) {
    existing = *found;
  } else if (found.error().IsNotFound()) {
    table_missing = true;
  } else {
    return ReportError(controller, found.error());
  }

  StackInfo info;
  info.name = *stack_name;
  info.table = LedgerTableName(*stack_name);
  info.bucket = *bucket;
  info.prefix = prefix.value_or("");
  info.visibility_s = 900;
  info.max_receives = 10;
  if (existing) {
    // What the stack was created with is the default now, so a plain rerun changes nothing.
    if (existing->bucket != *bucket) {
      return usage("stack '" + *stack_name + "' already uses bucket " + existing->bucket +
                   "; a stack's bucket cannot change");
    }
    if (prefix && *prefix != existing->prefix) {
      return usage("stack '" + *stack_name + "' already uses prefix '" + existing->prefix +
                   "'; a stack's prefix cannot change");
    }
    info.prefix = existing->prefix;
    info.visibility_s = existing->visibility_s;
    info.max_receives = existing->max_receives;
  }
  if (*visibility_arg) info.visibility_s = static_cast<int>(**visibility_arg);
  if (*max_receives_arg) info.max_receives = static_cast<int>(**max_receives_arg);

  auto sqs_client = controller.sqs();
  if (!sqs_client.ok()) return ReportError(controller, sqs_client.error());
  Sqs& sqs = **sqs_client;
  auto context = controller.aws();
  if (!context.ok()) return ReportError(controller, context.error());
  info.region = (*context)->region();

  const std::string queue_name = "spotgrid-" + *stack_name;
  const std::string dlq_name = queue_name + "-dlq";
  std::vector<Step> steps;

  // Look everything up before creating anything, so a conflict changes nothing.
  auto queue_url = FindQueue(sqs, queue_name);
  if (!queue_url.ok()) return ReportError(controller, queue_url.error());
  auto dlq_url = FindQueue(sqs, dlq_name);
  if (!dlq_url.ok()) return ReportError(controller, dlq_url.error());
  if (!queue_url->empty()) {
    Status same =
        CheckWorkQueue(sqs, *queue_url, queue_name, dlq_name, info.visibility_s, info.max_receives);
    if (!same.ok()) return ReportError(controller, same);
  }

  if (dlq_url->empty()) {
    CreateQueueRequest request;
    request.name = dlq_name;
    // The longest retention, so failed units' messages stay inspectable for two weeks.
    request.attributes["MessageRetentionPeriod"] = kRetentionSeconds;
    auto created = sqs.CreateQueue(request);
    if (!created.ok()) return ReportError(controller, created.error());
    *dlq_url = *created;
    steps.push_back({"dead-letter queue", dlq_name, true});
  } else {
    steps.push_back({"dead-letter queue", dlq_name, false});
  }
  auto dlq_arn = QueueArn(sqs, *dlq_url);
  if (!dlq_arn.ok()) return ReportError(controller, dlq_arn.error());

  if (queue_url->empty()) {
    CreateQueueRequest request;
    request.name = queue_name;
    request.attributes["VisibilityTimeout"] = std::to_string(info.visibility_s);
    request.attributes["ReceiveMessageWaitTimeSeconds"] = std::to_string(kReceiveWaitSeconds);
    request.attributes["MessageRetentionPeriod"] = kRetentionSeconds;
    request.redrive_policy = RedrivePolicy{*dlq_arn, info.max_receives};
    auto created = sqs.CreateQueue(request);
    if (!created.ok()) return ReportError(controller, created.error());
    *queue_url = *created;
    steps.push_back({"work queue", queue_name, true});
  } else {
    auto updated = EnsureRetention(sqs, *queue_url);
    if (!updated.ok()) return ReportError(controller, updated.error());
    steps.push_back({"work queue", queue_name, false, *updated});
  }
  auto queue_arn = QueueArn(sqs, *queue_url);
  if (!queue_arn.ok()) return ReportError(controller, queue_arn.error());

  if (Status table = (*ledger)->EnsureTable(kTableTimeout); !table.ok()) {
    return ReportError(controller, table);
  }
  steps.push_back({"ledger table", info.table, table_missing});

  auto s3 = controller.s3();
  if (!s3.ok()) return ReportError(controller, s3.error());
  if (Status head = (*s3)->HeadBucket(*bucket); head.ok()) {
    steps.push_back({"bucket", *bucket, false});
  } else if (head.error().IsNotFound()) {
    if (Status made = (*s3)->EnsureBucket(*bucket); !made.ok()) {
      return ReportError(controller, made);
    }
    steps.push_back({"bucket", *bucket, true});
  } else {
    Error error = head.error();
    if (error.http_status == 403) {
      error.message = "bucket " + *bucket +
                      " exists but is not accessible with these credentials (it may belong "
                      "to another account; bucket names are global)";
    }
    return ReportError(controller, error);
  }

  info.queue_url = *queue_url;
  info.queue_arn = *queue_arn;
  info.dlq_url = *dlq_url;
  info.dlq_arn = *dlq_arn;
  info.created_at = existing ? existing->created_at : controller.clock().Now();
  const bool store = !existing || !SameStack(*existing, info);
  if (store) {
    if (Status put = (*ledger)->PutStack(info); !put.ok()) return ReportError(controller, put);
  }

  std::FILE* out = controller.out();
  if (json) {
    nlohmann::ordered_json doc = {
        {"name", info.name},
        {"region", info.region},
        {"table", info.table},
        {"bucket", info.bucket},
        {"prefix", info.prefix},
        {"queue_url", info.queue_url},
        {"queue_arn", info.queue_arn},
        {"dlq_url", info.dlq_url},
        {"dlq_arn", info.dlq_arn},
        {"visibility_s", info.visibility_s},
        {"max_receives", info.max_receives},
        {"created_at", FormatIso8601(info.created_at)},
    };
    nlohmann::ordered_json created = nlohmann::ordered_json::array();
    for (const Step& step : steps) {
      if (step.created) created.push_back(step.what);
    }
    doc["created"] = created;
    nlohmann::ordered_json updated = nlohmann::ordered_json::array();
    for (const Step& step : steps) {
      if (!step.updated.empty()) updated.push_back({{"what", step.what}, {"change", step.updated}});
    }
    doc["updated"] = updated;
    doc["stack_item_stored"] = store;
    std::fprintf(out, "%s\n", doc.dump(2).c_str());
    return kExitOk;
  }
  std::fprintf(out, "stack %s (%s)\n", info.name.c_str(), info.region.c_str());
  for (const Step& step : steps) {
    const std::string outcome =
        step.created ? "created"
                     : (step.updated.empty() ? "exists" : "exists; updated " + step.updated);
    std::fprintf(out, "  %-18s %-40s %s\n", step.what.c_str(), step.name.c_str(),
                 outcome.c_str());
  }
  std::fprintf(out, "  %-18s %-40s %s\n", "stack item", info.table.c_str(),
               store ? (existing ? "updated" : "stored") : "unchanged");
  std::fprintf(out, "work queue %s: visibility %d s, to the dead-letter queue after %d receives\n",
               info.queue_url.c_str(), info.visibility_s, info.max_receives);
  std::fprintf(out, "outputs under s3://%s/%s\n", info.bucket.c_str(),
               info.prefix.empty() ? "" : (info.prefix + "/").c_str());
  return kExitOk;
}

}  // namespace

Verb InitVerb() {
  VerbSpec spec;
  spec.name = "init";
  spec.summary = "create the stack: SQS work queue + dead-letter queue, DynamoDB ledger, S3 bucket";
  spec.options = {
      {"bucket", "B", "the S3 bucket for outputs, checkpoints and logs (created if missing)", false,
       ""},
      {"prefix", "P", "key prefix inside the bucket (default: none)", false, ""},
      {"max-receives", "N",
       "receives of one message before SQS moves it to the dead-letter queue (default 10)", false,
       ""},
      {"visibility", "SECONDS", "visibility timeout of the work queue (default 900)", false, ""},
      {"json", "", "print the stack as JSON", false, ""},
  };
  spec.details =
      "Creates, each only if missing: the dead-letter queue spotgrid-STACK-dlq, the work\n"
      "queue spotgrid-STACK (long polling, redrive to the dead-letter queue), the ledger\n"
      "table spotgrid-STACK and the bucket; then stores the stack item in the ledger.\n"
      "Both queues keep messages 14 days. Running init again changes nothing; an existing\n"
      "work queue with other settings is reported, never modified, except that a shorter\n"
      "message retention is raised to 14 days (and said so).\n";
  return Verb{std::move(spec), RunInit};
}

}  // namespace spotgrid
