#include "support/fake_sqs.h"

#include <algorithm>

namespace spotgrid::testing {

namespace {
constexpr const char* kUrlBase = "https://sqs.fake.local/000000000000/";
}

FakeSqs::FakeSqs(Clock& clock, std::chrono::milliseconds max_real_wait)
    : clock_(clock), max_real_wait_(max_real_wait) {}

std::string FakeSqs::AddQueue(const std::string& name, int visibility_s) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string url = kUrlBase + name;
  Queue& queue = queues_[url];
  queue.name = name;
  queue.visibility_s = visibility_s;
  return url;
}

std::string FakeSqs::Send(const std::string& queue_url, const std::string& body) {
  std::lock_guard<std::mutex> lock(mu_);
  Queue* queue = FindQueue(queue_url);
  if (queue == nullptr) return "";
  std::string id = SendLocked(*queue, body);
  sent_.notify_all();
  return id;
}

void FakeSqs::DuplicateNextDelivery(const std::string& queue_url, int copies) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Queue* queue = FindQueue(queue_url)) queue->duplicate_next = copies;
}

std::vector<FakeSqs::MessageView> FakeSqs::Messages(const std::string& queue_url) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<MessageView> out;
  const Queue* queue = FindQueue(queue_url);
  if (queue == nullptr) return out;
  Clock::MonoTime now = clock_.Monotonic();
  for (const StoredMessage& m : queue->messages) {
    out.push_back({m.id, m.body, m.receive_count, m.deleted, !m.deleted && m.visible_at <= now,
                   m.visible_at});
  }
  return out;
}

std::optional<FakeSqs::MessageView> FakeSqs::Message(const std::string& queue_url,
                                                     const std::string& id) const {
  for (MessageView& view : Messages(queue_url)) {
    if (view.id == id) return view;
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, int>> FakeSqs::VisibilityChanges() const {
  std::lock_guard<std::mutex> lock(mu_);
  return visibility_changes_;
}

std::map<std::string, int> FakeSqs::Calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

int FakeSqs::CallCount(const std::string& operation) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = calls_.find(operation);
  return it == calls_.end() ? 0 : it->second;
}

FakeSqs::Queue* FakeSqs::FindQueue(const std::string& url) {
  auto it = queues_.find(url);
  return it == queues_.end() ? nullptr : &it->second;
}

const FakeSqs::Queue* FakeSqs::FindQueue(const std::string& url) const {
  auto it = queues_.find(url);
  return it == queues_.end() ? nullptr : &it->second;
}

FakeSqs::StoredMessage* FakeSqs::FindByReceipt(Queue& queue, const std::string& receipt_handle) {
  auto it = receipts_.find(receipt_handle);
  if (it == receipts_.end()) return nullptr;
  for (StoredMessage& m : queue.messages) {
    if (m.id == it->second) return &m;
  }
  return nullptr;
}

Error FakeSqs::QueueMissing(const std::string& operation) const {
  Error error;
  error.category = ErrorCategory::kNotFound;
  error.service = "SQS";
  error.operation = operation;
  error.http_status = 400;
  error.code = "AWS.SimpleQueueService.NonExistentQueue";
  error.message = "The specified queue does not exist.";
  return error;
}

Error FakeSqs::ReceiptInvalid(const std::string& operation) const {
  Error error;
  error.category = ErrorCategory::kClient;
  error.service = "SQS";
  error.operation = operation;
  error.http_status = 400;
  error.code = "ReceiptHandleIsInvalid";
  error.message = "The input receipt handle is invalid.";
  return error;
}

std::string FakeSqs::SendLocked(Queue& queue, const std::string& body) {
  StoredMessage m;
  m.id = "m-" + std::to_string(next_id_++);
  m.body = body;
  m.visible_at = clock_.Monotonic();
  queue.messages.push_back(m);
  return m.id;
}

Result<std::string> FakeSqs::CreateQueue(const CreateQueueRequest& request) {
  int visibility = 30;
  if (auto it = request.attributes.find("VisibilityTimeout"); it != request.attributes.end()) {
    visibility = std::stoi(it->second);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_["CreateQueue"];
    if (FindQueue(kUrlBase + request.name) != nullptr) return kUrlBase + request.name;
  }
  std::string url = AddQueue(request.name, visibility);
  std::lock_guard<std::mutex> lock(mu_);
  Queue& queue = queues_[url];
  for (const auto& [name, value] : request.attributes) {
    if (name != "VisibilityTimeout") queue.attributes[name] = value;
  }
  if (request.redrive_policy) {
    queue.attributes["RedrivePolicy"] = request.redrive_policy->ToAttributeValue();
  }
  return url;
}

Result<std::string> FakeSqs::GetQueueUrl(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_["GetQueueUrl"];
  if (FindQueue(kUrlBase + name) == nullptr) return QueueMissing("GetQueueUrl");
  return kUrlBase + name;
}

Result<std::map<std::string, std::string>> FakeSqs::GetQueueAttributes(
    const std::string& queue_url, const std::vector<std::string>& names) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_["GetQueueAttributes"];
  const Queue* queue = FindQueue(queue_url);
  if (queue == nullptr) return QueueMissing("GetQueueAttributes");
  Clock::MonoTime now = clock_.Monotonic();
  std::int64_t visible = 0, in_flight = 0;
  for (const StoredMessage& m : queue->messages) {
    if (m.deleted) continue;
    (m.visible_at <= now ? visible : in_flight) += 1;
  }
  std::map<std::string, std::string> all = {
      {"ApproximateNumberOfMessages", std::to_string(visible)},
      {"ApproximateNumberOfMessagesNotVisible", std::to_string(in_flight)},
      {"ApproximateNumberOfMessagesDelayed", "0"},
      {"VisibilityTimeout", std::to_string(queue->visibility_s)},
  };
  all.insert(queue->attributes.begin(), queue->attributes.end());
  if (std::find(names.begin(), names.end(), "All") != names.end()) return all;
  std::map<std::string, std::string> out;
  for (const std::string& name : names) {
    if (auto it = all.find(name); it != all.end()) out.insert(*it);
  }
  return out;
}

Status FakeSqs::DeleteQueue(const std::string& queue_url) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_["DeleteQueue"];
  if (queues_.erase(queue_url) == 0) return QueueMissing("DeleteQueue");
  return Status::Ok();
}

Result<SendMessageBatchResult> FakeSqs::SendMessageBatch(const std::string& queue_url,
                                                         std::span<const SendEntry> entries) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_["SendMessageBatch"];
  Queue* queue = FindQueue(queue_url);
  if (queue == nullptr) return QueueMissing("SendMessageBatch");
  SendMessageBatchResult result;
  for (const SendEntry& entry : entries) {
    result.message_ids.push_back(SendLocked(*queue, entry.body));
    // DelaySeconds: the message becomes visible that long after the send, by the clock.
    if (entry.delay_seconds) {
      queue->messages.back().visible_at += std::chrono::seconds(*entry.delay_seconds);
    }
  }
  sent_.notify_all();
  return result;
}

Result<std::vector<SqsMessage>> FakeSqs::ReceiveMessage(const std::string& queue_url,
                                                        const ReceiveRequest& request) {
  std::unique_lock<std::mutex> lock(mu_);
  ++calls_["ReceiveMessage"];
  auto real_deadline = std::chrono::steady_clock::now() +
                       std::min<std::chrono::milliseconds>(
                           std::chrono::seconds(request.wait_seconds), max_real_wait_);
  while (true) {
    Queue* queue = FindQueue(queue_url);
    if (queue == nullptr) return QueueMissing("ReceiveMessage");
    Clock::MonoTime now = clock_.Monotonic();
    std::vector<SqsMessage> out;
    int visibility = request.visibility_timeout.value_or(queue->visibility_s);
    for (StoredMessage& m : queue->messages) {
      if (static_cast<int>(out.size()) >= request.max_messages) break;
      if (m.deleted || m.visible_at > now) continue;
      int copies = out.empty() && queue->duplicate_next > 0 ? queue->duplicate_next : 1;
      if (out.empty()) queue->duplicate_next = 0;
      for (int c = 0; c < copies; ++c) {
        ++m.receive_count;
        m.visible_at = now + std::chrono::seconds(visibility);
        SqsMessage message;
        message.id = m.id;
        message.body = m.body;
        message.receipt_handle = "rh-" + m.id + "-" + std::to_string(m.receive_count);
        message.attributes["ApproximateReceiveCount"] = std::to_string(m.receive_count);
        receipts_[message.receipt_handle] = m.id;
        out.push_back(std::move(message));
      }
    }
    if (!out.empty() || request.wait_seconds == 0 ||
        std::chrono::steady_clock::now() >= real_deadline) {
      return out;
    }
    sent_.wait_until(lock, real_deadline);
  }
}

Status FakeSqs::DeleteMessage(const std::string& queue_url, const std::string& receipt_handle) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_["DeleteMessage"];
  Queue* queue = FindQueue(queue_url);
  if (queue == nullptr) return QueueMissing("DeleteMessage");
  StoredMessage* m = FindByReceipt(*queue, receipt_handle);
  if (m == nullptr) return ReceiptInvalid("DeleteMessage");
  m->deleted = true;
  return Status::Ok();
}

Result<BatchResult> FakeSqs::DeleteMessageBatch(const std::string& queue_url,
                                                std::span<const std::string> receipt_handles) {
  BatchResult result;
  for (std::size_t i = 0; i < receipt_handles.size(); ++i) {
    if (Status s = DeleteMessage(queue_url, receipt_handles[i]); !s.ok()) {
      if (s.error().IsNotFound()) return s.error();
      result.failed.push_back({i, true, s.error()});
    }
  }
  return result;
}

Status FakeSqs::ChangeVisibilityLocked(const std::string& queue_url,
                                       const std::string& receipt_handle, int visibility_timeout) {
  Queue* queue = FindQueue(queue_url);
  if (queue == nullptr) return QueueMissing("ChangeMessageVisibility");
  StoredMessage* m = FindByReceipt(*queue, receipt_handle);
  if (m == nullptr || m->deleted) return ReceiptInvalid("ChangeMessageVisibility");
  if (visibility_timeout < 0 || visibility_timeout > 43200) {
    Error error = ReceiptInvalid("ChangeMessageVisibility");
    error.code = "InvalidParameterValue";
    error.message = "visibility timeout out of range";
    return error;
  }
  m->visible_at = clock_.Monotonic() + std::chrono::seconds(visibility_timeout);
  visibility_changes_.emplace_back(m->id, visibility_timeout);
  return Status::Ok();
}

Status FakeSqs::ChangeMessageVisibility(const std::string& queue_url,
                                        const std::string& receipt_handle, int visibility_timeout) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_["ChangeMessageVisibility"];
  Status status = ChangeVisibilityLocked(queue_url, receipt_handle, visibility_timeout);
  if (status.ok() && visibility_timeout == 0) sent_.notify_all();
  return status;
}

Result<BatchResult> FakeSqs::ChangeMessageVisibilityBatch(
    const std::string& queue_url, std::span<const VisibilityEntry> entries) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_["ChangeMessageVisibilityBatch"];
  if (FindQueue(queue_url) == nullptr) return QueueMissing("ChangeMessageVisibilityBatch");
  BatchResult result;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    Status s =
        ChangeVisibilityLocked(queue_url, entries[i].receipt_handle, entries[i].visibility_timeout);
    if (!s.ok()) result.failed.push_back({i, true, s.error()});
  }
  sent_.notify_all();
  return result;
}

Status FakeSqs::PurgeQueue(const std::string& queue_url) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_["PurgeQueue"];
  Queue* queue = FindQueue(queue_url);
  if (queue == nullptr) return QueueMissing("PurgeQueue");
  for (StoredMessage& m : queue->messages) m.deleted = true;
  return Status::Ok();
}

Status FakeSqs::SetQueueAttributes(const std::string& queue_url,
                                   const std::map<std::string, std::string>& attributes) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_["SetQueueAttributes"];
  Queue* queue = FindQueue(queue_url);
  if (queue == nullptr) return QueueMissing("SetQueueAttributes");
  for (const auto& [name, value] : attributes) {
    if (name == "VisibilityTimeout") {
      queue->visibility_s = std::stoi(value);
    } else {
      queue->attributes[name] = value;
    }
  }
  return Status::Ok();
}

}  // namespace spotgrid::testing
