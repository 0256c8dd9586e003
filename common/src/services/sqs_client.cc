#include "spotgrid/services/sqs_client.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <mutex>
#include <thread>
#include <utility>

#include "services/json_writer.h"
#include "spotgrid/aws/aws_multi.h"
#include "spotgrid/aws/json_protocol.h"
#include "spotgrid/aws/json_sax.h"
#include "spotgrid/aws/service.h"
#include "spotgrid/core/parallel_for.h"

namespace spotgrid {
namespace {

using nlohmann::json;

constexpr std::string_view kTargetPrefix = "AmazonSQS";
constexpr std::size_t kMaxBatchEntries = 10;

Error NotUtf8(std::string_view operation) {
  return InvalidRequestError(kSqsService, operation, "entry is not valid UTF-8");
}

std::string StringOrDump(const json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

std::size_t ParseBatchId(std::string_view id, std::size_t limit) {
  std::size_t value = limit;
  auto [ptr, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
  if (ec != std::errc() || ptr != id.data() + id.size() || value >= limit) return limit;
  return value;
}

// What a batch response says about one entry; a member that is absent or not a string reads
// as "".
struct BatchEntryOutcome {
  std::string id;
  std::string message_id;  // Successful entries of SendMessageBatch
  // Failed entries:
  bool sender_fault = true;           // absent means the sender's fault
  bool sender_fault_invalid = false;  // present but not a boolean: the response is malformed
  std::string code;
  std::string message;
};

struct BatchResponse {
  std::vector<BatchEntryOutcome> successful;
  std::vector<BatchEntryOutcome> failed;
};

// Reads the Successful and Failed lists of a batch response as ParseJsonSax hands them over:
// a DOM of ten entries with ids and digests cost more than building, signing and sending the
// batch. The whole text is checked as strictly as json::parse would; the rest of the document
// is skipped. Where a key repeats, the last one counts, as in a DOM.
class BatchResponseReader final : public JsonSaxHandler {
 public:
  // False when `text` is not a JSON object.
  static bool Read(std::string_view text, BatchResponse& out) {
    BatchResponseReader reader(out);
    return ParseJsonSax(text, reader);
  }

  bool Null() override { return Value(Kind::kOther); }
  bool Boolean(bool value) override { return Value(Kind::kBool, nullptr, value); }
  bool Number(std::string_view) override { return Value(Kind::kOther); }
  bool String(std::string& value) override { return Value(Kind::kString, &value); }
  bool StartObject() override {
    if (!Value(Kind::kObject)) return false;
    ++depth_;
    return true;
  }
  bool EndObject() override {
    if (--depth_ == 2) entry_ = nullptr;
    return true;
  }
  bool StartArray() override {
    if (!Value(Kind::kArray)) return false;
    ++depth_;
    return true;
  }
  bool EndArray() override {
    --depth_;
    return true;
  }
  bool Key(std::string& name) override {
    if (depth_ == 1) {
      list_key_ = name == "Successful" ? &out_.successful
                  : name == "Failed"   ? &out_.failed
                                       : nullptr;
    } else if (depth_ == 3 && entry_ != nullptr) {
      field_ = name == "Id"            ? Field::kId
               : name == "MessageId"   ? Field::kMessageId
               : name == "SenderFault" ? Field::kSenderFault
               : name == "Code"        ? Field::kCode
               : name == "Message"     ? Field::kMessage
                                       : Field::kOther;
    }
    return true;
  }

 private:
  enum class Kind { kObject, kArray, kString, kBool, kOther };
  enum class Field { kId, kMessageId, kSenderFault, kCode, kMessage, kOther };

  explicit BatchResponseReader(BatchResponse& out) : out_(out) {}

  // A value (or the start of a container) at the current depth: 0 the document, 1 a member of
  // it, 2 an element of such a member, 3 a member of such an element.
  bool Value(Kind kind, std::string* text = nullptr, bool flag = false) {
    switch (depth_) {
      case 0:
        return kind == Kind::kObject;
      case 1:
        list_ = nullptr;
        if (list_key_ != nullptr) {
          list_key_->clear();  // a repeated key replaces the earlier list
          if (kind == Kind::kArray) {
            list_ = list_key_;
            list_->reserve(kMaxBatchEntries);
          }
        }
        return true;
      case 2:
        if (list_ != nullptr && kind == Kind::kObject) entry_ = &list_->emplace_back();
        return true;
      case 3:
        if (entry_ != nullptr) Assign(kind, text, flag);
        return true;
      default:
        return true;
    }
  }

  void Assign(Kind kind, std::string* text, bool flag) {
    auto set = [&](std::string& member) {
      if (kind == Kind::kString) {
        member = std::move(*text);
      } else {
        member.clear();
      }
    };
    switch (field_) {
      case Field::kId:
        set(entry_->id);
        break;
      case Field::kMessageId:
        set(entry_->message_id);
        break;
      case Field::kCode:
        set(entry_->code);
        break;
      case Field::kMessage:
        set(entry_->message);
        break;
      case Field::kSenderFault:
        entry_->sender_fault_invalid = kind != Kind::kBool;
        if (kind == Kind::kBool) entry_->sender_fault = flag;
        break;
      case Field::kOther:
        break;
    }
  }

  BatchResponse& out_;
  int depth_ = 0;
  std::vector<BatchEntryOutcome>* list_key_ = nullptr;  // the list the last key names
  std::vector<BatchEntryOutcome>* list_ = nullptr;      // the list being read
  BatchEntryOutcome* entry_ = nullptr;                  // the entry being read
  Field field_ = Field::kOther;
};

// The rounds of one batch call of `operation` over entries `pending` (positions in the
// caller's vector), with the entry-level retry: entries SQS reports as failed with
// SenderFault=false are sent again, alone, after Backoff(round), up to `max_retries` times.
// `encode(indices, out)` builds a round's body with Ids "0".."k-1" (false: an entry is not
// valid UTF-8); `on_success(index, entry)` sees each Successful entry. Shared by the blocking
// BatchRunner and the AwsMulti form of SendMessageBatch.
class BatchRounds {
 public:
  BatchRounds(std::string_view operation, int max_retries, std::vector<std::size_t> pending)
      : operation_(operation), max_retries_(max_retries), pending_(std::move(pending)) {}

  // The next round's body; false when no entry is left to send. An entry that cannot be
  // encoded fails alone, and the rest are sent.
  template <typename EncodeFn>
  bool Encode(EncodeFn&& encode, std::string& body) {
    body.clear();
    if (pending_.empty()) return false;
    if (encode(pending_, body)) return true;
    std::vector<std::size_t> good;
    for (std::size_t index : pending_) {
      std::string one;
      if (encode(std::vector<std::size_t>{index}, one)) {
        good.push_back(index);
      } else {
        failed_.push_back({index, true, NotUtf8(operation_)});
      }
    }
    pending_ = std::move(good);
    body.clear();
    if (pending_.empty() || !encode(pending_, body)) {
      FailPending(NotUtf8(operation_));
      return false;
    }
    return true;
  }

  // Reads a round's outcome; true when entries are left to send again after Backoff(round()).
  template <typename OnSuccess>
  bool Take(const Result<HttpResponse>& response, OnSuccess&& on_success) {
    if (!response.ok()) {
      FailPending(response.error());
      return false;
    }
    BatchResponse outcome;
    if (!response->body.empty() && !BatchResponseReader::Read(response->body, outcome)) {
      FailPending(NotJsonObjectError(kSqsService, operation_, *response));
      return false;
    }
    std::vector<std::size_t> retry;
    std::vector<bool> answered(pending_.size(), false);
    for (BatchEntryOutcome& entry : outcome.successful) {
      std::size_t pos = ParseBatchId(entry.id, pending_.size());
      if (pos == pending_.size()) continue;
      answered[pos] = true;
      on_success(pending_[pos], entry);
    }
    for (BatchEntryOutcome& entry : outcome.failed) {
      std::size_t pos = ParseBatchId(entry.id, pending_.size());
      if (pos == pending_.size()) continue;
      if (entry.sender_fault_invalid) {
        // Nothing of this answer can be trusted: every entry of the round fails.
        FailPending(MalformedResponseError(
            kSqsService, operation_, "a Failed entry's SenderFault is not a boolean", *response));
        return false;
      }
      answered[pos] = true;
      bool sender_fault = entry.sender_fault;
      if (!sender_fault && round_ < max_retries_) {
        retry.push_back(pending_[pos]);
        continue;
      }
      Error error;
      error.category = sender_fault ? ErrorCategory::kClient : ErrorCategory::kTransient;
      error.service = "SQS";
      error.operation = std::string(operation_);
      error.http_status = 200;
      error.code = std::move(entry.code);
      error.message = std::move(entry.message);
      failed_.push_back({pending_[pos], sender_fault, std::move(error)});
    }
    for (std::size_t pos = 0; pos < pending_.size(); ++pos) {
      if (!answered[pos]) {
        failed_.push_back(
            {pending_[pos], false,
             MalformedResponseError(kSqsService, operation_, "entry missing from the response")});
      }
    }
    pending_ = std::move(retry);
    ++round_;
    return !pending_.empty();
  }

  // Every entry still to send fails with `error`.
  void FailPending(const Error& error) {
    for (std::size_t index : pending_) failed_.push_back({index, !error.IsRetryable(), error});
    pending_.clear();
  }

  int round() const { return round_; }
  std::vector<BatchEntryFailure>& failed() { return failed_; }

 private:
  std::string_view operation_;
  int max_retries_;
  std::vector<std::size_t> pending_;
  std::vector<BatchEntryFailure> failed_;
  int round_ = 0;
};

// BatchRounds run to their end on the calling thread, for several batches of one call at
// once (ParallelFor). `abort` is raised by a non-retryable whole-request error (e.g. no such
// queue) so the other batches of the call stop sending; their entries then fail with that
// error.
class BatchRunner {
 public:
  BatchRunner(AwsClient& client, std::string_view operation, int max_retries)
      : client_(client), operation_(operation), max_retries_(max_retries) {}

  template <typename Encode, typename OnSuccess>
  void Run(std::vector<std::size_t> pending, Encode&& encode, OnSuccess&& on_success) {
    BatchRounds rounds(operation_, max_retries_, std::move(pending));
    std::string body;
    while (true) {
      if (aborted_.load()) {
        rounds.FailPending(AbortError());
        break;
      }
      if (!rounds.Encode(encode, body)) break;
      Result<HttpResponse> response =
          SendJsonEncoded(client_, kTargetPrefix, operation_, std::move(body));
      if (!response.ok() && !response.error().IsRetryable()) Abort(response.error());
      if (!rounds.Take(response, on_success)) break;
      client_.context().clock().SleepFor(client_.context().retry().Backoff(rounds.round()));
    }
    if (!rounds.failed().empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& f : rounds.failed()) failed_.push_back(std::move(f));
    }
  }

  std::vector<BatchEntryFailure> TakeFailures() {
    std::lock_guard<std::mutex> lock(mu_);
    SortByIndex(failed_);
    return std::move(failed_);
  }

  static void SortByIndex(std::vector<BatchEntryFailure>& failed) {
    std::sort(failed.begin(), failed.end(),
              [](const auto& a, const auto& b) { return a.index < b.index; });
  }

 private:
  void Abort(const Error& error) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!aborted_.load()) abort_error_ = error;
    aborted_.store(true);
  }
  Error AbortError() {
    std::lock_guard<std::mutex> lock(mu_);
    return abort_error_;
  }

  AwsClient& client_;
  std::string_view operation_;
  int max_retries_;
  std::atomic<bool> aborted_{false};
  std::mutex mu_;
  Error abort_error_;
  std::vector<BatchEntryFailure> failed_;
};

std::vector<std::vector<std::size_t>> FixedBatches(std::size_t n) {
  std::vector<std::vector<std::size_t>> batches;
  for (std::size_t begin = 0; begin < n; begin += kMaxBatchEntries) {
    std::vector<std::size_t>& batch = batches.emplace_back();
    for (std::size_t i = begin; i < std::min(n, begin + kMaxBatchEntries); ++i) batch.push_back(i);
  }
  return batches;
}

bool AppendSendEntry(std::string& out, std::size_t id, const SendEntry& entry) {
  out += "{\"Id\":\"";
  out += std::to_string(id);
  out += "\",\"MessageBody\":";
  if (!json_writer::AppendString(out, entry.body)) return false;
  if (entry.delay_seconds) {
    out += ",\"DelaySeconds\":";
    out += std::to_string(*entry.delay_seconds);
  }
  if (!entry.message_group_id.empty()) {
    out += ",\"MessageGroupId\":";
    if (!json_writer::AppendString(out, entry.message_group_id)) return false;
  }
  if (!entry.message_deduplication_id.empty()) {
    out += ",\"MessageDeduplicationId\":";
    if (!json_writer::AppendString(out, entry.message_deduplication_id)) return false;
  }
  out.push_back('}');
  return true;
}

// {"QueueUrl":..,"Entries":[append(out, 0), append(out, 1), ...]}
template <typename AppendEntry>
bool AppendBatch(std::string& out, const std::string& queue_url, std::size_t count,
                 AppendEntry&& append_entry) {
  out += "{\"QueueUrl\":";
  if (!json_writer::AppendString(out, queue_url)) return false;
  out += ",\"Entries\":[";
  for (std::size_t k = 0; k < count; ++k) {
    if (k > 0) out.push_back(',');
    if (!append_entry(out, k)) return false;
  }
  out += "]}";
  return true;
}

bool AppendHandleEntry(std::string& out, std::size_t id, const std::string& receipt_handle,
                       const int* visibility_timeout) {
  out += "{\"Id\":\"";
  out += std::to_string(id);
  out += "\",\"ReceiptHandle\":";
  if (!json_writer::AppendString(out, receipt_handle)) return false;
  if (visibility_timeout != nullptr) {
    out += ",\"VisibilityTimeout\":";
    out += std::to_string(*visibility_timeout);
  }
  out.push_back('}');
  return true;
}

Result<SqsMessage> ParseMessage(const json& m) {
  SqsMessage message;
  message.id = JsonString(m, "MessageId");
  message.receipt_handle = JsonString(m, "ReceiptHandle");
  message.body = JsonString(m, "Body");
  message.md5_of_body = JsonString(m, "MD5OfBody");
  if (auto it = m.find("Attributes"); it != m.end() && it->is_object()) {
    for (const auto& [name, value] : it->items()) message.attributes[name] = StringOrDump(value);
  }
  return message;
}

// The body of one SendMessageBatch round: entries[pending[k]] as entry "k".
bool EncodeSendBatch(const std::string& queue_url, std::span<const SendEntry> entries,
                     const std::vector<std::size_t>& pending, std::string& out) {
  std::size_t bytes = 64 + queue_url.size();
  for (std::size_t index : pending) bytes += entries[index].body.size() + 48;
  out.reserve(bytes);
  return AppendBatch(out, queue_url, pending.size(), [&](std::string& o, std::size_t k) {
    return AppendSendEntry(o, k, entries[pending[k]]);
  });
}

// The Delete/ChangeMessageVisibility batches: fixed batches of up to 10 entries whose successes
// carry nothing to read back. append_handle(out, k, index) writes entry k, the caller's
// entry `index`.
template <typename AppendHandle>
BatchResult RunHandleBatches(AwsClient& client, const SqsClientOptions& options,
                             std::string_view operation, const std::string& queue_url,
                             std::size_t count, AppendHandle&& append_handle) {
  auto batches = FixedBatches(count);
  BatchRunner runner(client, operation, options.max_entry_retries);
  ParallelFor(batches.size(), options.batch_concurrency, [&](std::size_t b) {
    runner.Run(
        batches[b],
        [&](const std::vector<std::size_t>& pending, std::string& out) {
          return AppendBatch(out, queue_url, pending.size(), [&](std::string& o, std::size_t k) {
            return append_handle(o, k, pending[k]);
          });
        },
        [](std::size_t, BatchEntryOutcome&) {});
  });
  return BatchResult{runner.TakeFailures()};
}

}  // namespace

std::string RedrivePolicy::ToAttributeValue() const {
  return json{{"deadLetterTargetArn", dead_letter_arn}, {"maxReceiveCount", max_receive_count}}
      .dump();
}

Result<RedrivePolicy> RedrivePolicy::FromAttributeValue(std::string_view value) {
  json doc = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return Error::InvalidInput("RedrivePolicy is not a JSON object");
  RedrivePolicy policy;
  policy.dead_letter_arn = JsonString(doc, "deadLetterTargetArn");
  auto count = doc.find("maxReceiveCount");
  if (policy.dead_letter_arn.empty() || count == doc.end()) {
    return Error::InvalidInput("RedrivePolicy lacks deadLetterTargetArn or maxReceiveCount");
  }
  if (count->is_number_integer()) {
    policy.max_receive_count = count->get<int>();
  } else if (count->is_string()) {
    const std::string& s = count->get_ref<const std::string&>();
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), policy.max_receive_count);
    if (ec != std::errc() || ptr != s.data() + s.size()) {
      return Error::InvalidInput("RedrivePolicy maxReceiveCount is not a number: " + s);
    }
  } else {
    return Error::InvalidInput("RedrivePolicy maxReceiveCount is not a number");
  }
  return policy;
}

int SqsMessage::ReceiveCount() const {
  auto it = attributes.find("ApproximateReceiveCount");
  if (it == attributes.end()) return 0;
  int count = 0;
  std::from_chars(it->second.data(), it->second.data() + it->second.size(), count);
  return count;
}

json EncodeCreateQueue(const CreateQueueRequest& request) {
  json body = {{"QueueName", request.name}};
  json attributes = json::object();
  for (const auto& [name, value] : request.attributes) attributes[name] = value;
  if (request.redrive_policy)
    attributes["RedrivePolicy"] = request.redrive_policy->ToAttributeValue();
  if (!attributes.empty()) body["Attributes"] = std::move(attributes);
  if (!request.tags.empty()) body["tags"] = request.tags;  // lower-case in the model
  return body;
}

Result<std::string> EncodeSendMessageBatch(const std::string& queue_url,
                                           std::span<const SendEntry> entries) {
  std::string out;
  std::size_t bytes = 64 + queue_url.size();
  for (const SendEntry& entry : entries) bytes += entry.body.size() + 48;
  out.reserve(bytes);
  if (!AppendBatch(out, queue_url, entries.size(), [&](std::string& o, std::size_t k) {
        return AppendSendEntry(o, k, entries[k]);
      })) {
    return NotUtf8("SendMessageBatch");
  }
  return out;
}

json EncodeReceiveMessage(const std::string& queue_url, const ReceiveRequest& request) {
  json body = {{"QueueUrl", queue_url},
               {"MaxNumberOfMessages", request.max_messages},
               {"WaitTimeSeconds", request.wait_seconds}};
  if (request.visibility_timeout) body["VisibilityTimeout"] = *request.visibility_timeout;
  if (!request.system_attribute_names.empty()) {
    body["MessageSystemAttributeNames"] = request.system_attribute_names;
    // The deprecated name of the same member: SQS still honours it, and older SQS-compatible
    // servers know only this one.
    body["AttributeNames"] = request.system_attribute_names;
  }
  return body;
}

Result<std::string> EncodeDeleteMessageBatch(const std::string& queue_url,
                                             std::span<const std::string> receipt_handles) {
  std::string out;
  if (!AppendBatch(out, queue_url, receipt_handles.size(), [&](std::string& o, std::size_t k) {
        return AppendHandleEntry(o, k, receipt_handles[k], nullptr);
      })) {
    return NotUtf8("DeleteMessageBatch");
  }
  return out;
}

Result<std::string> EncodeChangeMessageVisibilityBatch(const std::string& queue_url,
                                                       std::span<const VisibilityEntry> entries) {
  std::string out;
  if (!AppendBatch(out, queue_url, entries.size(), [&](std::string& o, std::size_t k) {
        return AppendHandleEntry(o, k, entries[k].receipt_handle, &entries[k].visibility_timeout);
      })) {
    return NotUtf8("ChangeMessageVisibilityBatch");
  }
  return out;
}

std::size_t SendEntryPayloadBytes(const SendEntry& entry) { return entry.body.size(); }

std::vector<std::pair<std::size_t, std::size_t>> SplitSendBatches(
    std::span<const SendEntry> entries, std::size_t max_payload_bytes) {
  std::vector<std::pair<std::size_t, std::size_t>> batches;
  std::size_t begin = 0, bytes = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::size_t size = SendEntryPayloadBytes(entries[i]);
    bool full = i - begin == kMaxBatchEntries || (i > begin && bytes + size > max_payload_bytes);
    if (full) {
      batches.emplace_back(begin, i);
      begin = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (begin < entries.size()) batches.emplace_back(begin, entries.size());
  return batches;
}

Result<std::shared_ptr<SqsClient>> SqsClient::Create(std::shared_ptr<AwsContext> context,
                                                     SqsClientOptions options) {
  auto client = AwsClient::Create(std::move(context), kSqsService);
  if (!client.ok()) return client.error();
  return std::make_shared<SqsClient>(std::move(client.value()), options);
}

SqsClient::SqsClient(std::shared_ptr<AwsClient> client, SqsClientOptions options)
    : client_(std::move(client)), options_(options) {}

Result<std::string> SqsClient::CreateQueue(const CreateQueueRequest& request) {
  auto response = CallJson(*client_, kTargetPrefix, "CreateQueue", EncodeCreateQueue(request));
  if (!response.ok()) return response.error();
  std::string url = JsonString(*response, "QueueUrl");
  if (url.empty())
    return MalformedResponseError(kSqsService, "CreateQueue", "no QueueUrl in the response");
  return url;
}

Result<std::string> SqsClient::GetQueueUrl(const std::string& name) {
  auto response = CallJson(*client_, kTargetPrefix, "GetQueueUrl", json{{"QueueName", name}});
  if (!response.ok()) return response.error();
  std::string url = JsonString(*response, "QueueUrl");
  if (url.empty())
    return MalformedResponseError(kSqsService, "GetQueueUrl", "no QueueUrl in the response");
  return url;
}

Result<std::map<std::string, std::string>> SqsClient::GetQueueAttributes(
    const std::string& queue_url, const std::vector<std::string>& names) {
  auto response = CallJson(*client_, kTargetPrefix, "GetQueueAttributes",
                           json{{"QueueUrl", queue_url}, {"AttributeNames", names}});
  if (!response.ok()) return response.error();
  std::map<std::string, std::string> attributes;
  if (auto it = response->find("Attributes"); it != response->end() && it->is_object()) {
    for (const auto& [name, value] : it->items()) attributes[name] = StringOrDump(value);
  }
  return attributes;
}

Status SqsClient::DeleteQueue(const std::string& queue_url) {
  return CallJson(*client_, kTargetPrefix, "DeleteQueue", json{{"QueueUrl", queue_url}}).status();
}

Result<SendMessageBatchResult> SqsClient::SendMessageBatch(const std::string& queue_url,
                                                           std::span<const SendEntry> entries) {
  SendMessageBatchResult result;
  result.message_ids.resize(entries.size());
  auto batches = SplitSendBatches(entries, options_.max_batch_payload_bytes);
  BatchRunner runner(*client_, "SendMessageBatch", options_.max_entry_retries);
  ParallelFor(batches.size(), options_.batch_concurrency, [&](std::size_t b) {
    std::vector<std::size_t> indices;
    for (std::size_t i = batches[b].first; i < batches[b].second; ++i) indices.push_back(i);
    runner.Run(
        std::move(indices),
        [&](const std::vector<std::size_t>& pending, std::string& out) {
          return EncodeSendBatch(queue_url, entries, pending, out);
        },
        [&](std::size_t index, BatchEntryOutcome& entry) {
          result.message_ids[index] = std::move(entry.message_id);
        });
  });
  result.failed = runner.TakeFailures();
  return result;
}

void Sqs::StartSendMessageBatch(AwsMulti& multi, const std::string& queue_url,
                                std::vector<SendEntry> entries, SendDone done) {
  multi.Offload(
      [this, queue_url, entries = std::move(entries)] { return SendMessageBatch(queue_url, entries); },
      std::move(done));
}

namespace {

// One SendMessageBatch call on an AwsMulti, round after round (BatchRounds).
struct SendBatchCall : std::enable_shared_from_this<SendBatchCall> {
  SendBatchCall(AwsMulti& multi, AwsClient& client, std::string queue_url,
                std::vector<SendEntry> entries, Sqs::SendDone done, int max_retries)
      : multi(multi),
        client(client),
        queue_url(std::move(queue_url)),
        entries(std::move(entries)),
        rounds("SendMessageBatch", max_retries, AllIndices(this->entries.size())),
        done(std::move(done)) {
    result.message_ids.resize(this->entries.size());
  }

  static std::vector<std::size_t> AllIndices(std::size_t n) {
    std::vector<std::size_t> indices(n);
    for (std::size_t i = 0; i < n; ++i) indices[i] = i;
    return indices;
  }

  void Round() {
    std::string body;
    if (!rounds.Encode(
            [&](const std::vector<std::size_t>& pending, std::string& out) {
              return EncodeSendBatch(queue_url, entries, pending, out);
            },
            body)) {
      Finish();
      return;
    }
    multi.Start(client, JsonRequest(kTargetPrefix, "SendMessageBatch", std::move(body)),
                [self = shared_from_this()](Result<HttpResponse> response) {
                  self->Answered(response);
                });
  }

  void Answered(const Result<HttpResponse>& response) {
    const bool again = rounds.Take(response, [&](std::size_t index, BatchEntryOutcome& entry) {
      result.message_ids[index] = std::move(entry.message_id);
    });
    if (!again) {
      Finish();
      return;
    }
    multi.After(client.context().retry().Backoff(rounds.round()),
                [self = shared_from_this()] { self->Round(); });
  }

  void Finish() {
    result.failed = std::move(rounds.failed());
    BatchRunner::SortByIndex(result.failed);
    done(std::move(result));
  }

  AwsMulti& multi;
  AwsClient& client;
  std::string queue_url;
  std::vector<SendEntry> entries;
  BatchRounds rounds;
  SendMessageBatchResult result;
  Sqs::SendDone done;
};

}  // namespace

void SqsClient::StartSendMessageBatch(AwsMulti& multi, const std::string& queue_url,
                                      std::vector<SendEntry> entries, SendDone done) {
  if (SplitSendBatches(entries, options_.max_batch_payload_bytes).size() > 1) {
    Sqs::StartSendMessageBatch(multi, queue_url, std::move(entries), std::move(done));
    return;
  }
  auto call = std::make_shared<SendBatchCall>(multi, *client_, queue_url, std::move(entries),
                                              std::move(done), options_.max_entry_retries);
  call->Round();
}

Result<std::vector<SqsMessage>> SqsClient::ReceiveMessage(const std::string& queue_url,
                                                          const ReceiveRequest& request) {
  if (request.wait_seconds < 0 || request.wait_seconds > 20) {
    return Error::InvalidInput("ReceiveMessage wait_seconds must be 0..20");
  }
  if (request.max_messages < 1 || request.max_messages > 10) {
    return Error::InvalidInput("ReceiveMessage max_messages must be 1..10");
  }
  // The HTTP timeout of a long poll must be above its wait.
  auto response =
      CallJson(*client_, kTargetPrefix, "ReceiveMessage", EncodeReceiveMessage(queue_url, request),
               std::chrono::seconds(request.wait_seconds) + options_.long_poll_timeout_margin,
               request.stop);
  if (!response.ok()) return response.error();
  std::vector<SqsMessage> messages;
  const json& doc = *response;
  auto it = doc.find("Messages");  // absent when nothing arrived
  if (it == doc.end() || !it->is_array()) return messages;
  messages.reserve(it->size());
  for (const json& m : *it) {
    auto message = ParseMessage(m);
    if (!message.ok()) return message.error();
    messages.push_back(std::move(message.value()));
  }
  return messages;
}

Status SqsClient::DeleteMessage(const std::string& queue_url, const std::string& receipt_handle) {
  return CallJson(*client_, kTargetPrefix, "DeleteMessage",
                  json{{"QueueUrl", queue_url}, {"ReceiptHandle", receipt_handle}})
      .status();
}

Result<BatchResult> SqsClient::DeleteMessageBatch(const std::string& queue_url,
                                                  std::span<const std::string> receipt_handles) {
  return RunHandleBatches(*client_, options_, "DeleteMessageBatch", queue_url,
                          receipt_handles.size(),
                          [&](std::string& out, std::size_t k, std::size_t index) {
                            return AppendHandleEntry(out, k, receipt_handles[index], nullptr);
                          });
}

Status SqsClient::ChangeMessageVisibility(const std::string& queue_url,
                                          const std::string& receipt_handle,
                                          int visibility_timeout) {
  return CallJson(*client_, kTargetPrefix, "ChangeMessageVisibility",
                  json{{"QueueUrl", queue_url},
                       {"ReceiptHandle", receipt_handle},
                       {"VisibilityTimeout", visibility_timeout}})
      .status();
}

Result<BatchResult> SqsClient::ChangeMessageVisibilityBatch(
    const std::string& queue_url, std::span<const VisibilityEntry> entries) {
  return RunHandleBatches(*client_, options_, "ChangeMessageVisibilityBatch", queue_url,
                          entries.size(), [&](std::string& out, std::size_t k, std::size_t index) {
                            const VisibilityEntry& entry = entries[index];
                            return AppendHandleEntry(out, k, entry.receipt_handle,
                                                     &entry.visibility_timeout);
                          });
}

Status SqsClient::PurgeQueue(const std::string& queue_url) {
  return CallJson(*client_, kTargetPrefix, "PurgeQueue", json{{"QueueUrl", queue_url}}).status();
}

Status Sqs::SetQueueAttributes(const std::string& queue_url,
                               const std::map<std::string, std::string>&) {
  Error error;
  error.category = ErrorCategory::kClient;
  error.service = "SQS";
  error.operation = "SetQueueAttributes";
  error.message = "this Sqs implementation cannot change queue " + queue_url;
  return error;
}

Status SqsClient::SetQueueAttributes(const std::string& queue_url,
                                     const std::map<std::string, std::string>& attributes) {
  return CallJson(*client_, kTargetPrefix, "SetQueueAttributes",
                  json{{"QueueUrl", queue_url}, {"Attributes", attributes}})
      .status();
}

}  // namespace spotgrid
