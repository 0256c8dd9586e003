// An in-memory SQS for tests of the agent's loop: standard queues with visibility timeouts on
// a Clock (a FakeClock makes a message visible again when the test advances it), a receipt
// handle per delivery, receive counts, and injectable duplicate deliveries.
//
// A long poll that finds nothing waits in real time for a sent message, but at most
// `max_real_wait` (a fake clock does not move by itself, so waiting the whole requested
// wait_seconds would only slow the tests down).
//
// Receipt handles stay valid until their message is deleted (real SQS is at least as lenient
// for a recent handle). Deleting with a handle of a deleted message succeeds, as on SQS;
// changing its visibility fails (ReceiptHandleIsInvalid), as on SQS.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "spotgrid/core/clock.h"
#include "spotgrid/services/sqs_client.h"

namespace spotgrid::testing {

class FakeSqs final : public Sqs {
 public:
  explicit FakeSqs(Clock& clock,
                   std::chrono::milliseconds max_real_wait = std::chrono::milliseconds(20));

  // Test helpers --------------------------------------------------------------------------
  // Creates a queue with this default visibility timeout and returns its URL.
  std::string AddQueue(const std::string& name, int visibility_s = 900);
  // Sends one message; returns its id.
  std::string Send(const std::string& queue_url, const std::string& body);
  // The next receive on the queue that returns at least one message returns the first of them
  // `copies` times (each copy with its own receipt handle), as SQS's at-least-once delivery may.
  void DuplicateNextDelivery(const std::string& queue_url, int copies = 2);

  struct MessageView {
    std::string id;
    std::string body;
    int receive_count = 0;
    bool deleted = false;
    bool visible = false;          // judged by the clock now
    Clock::MonoTime visible_at{};  // when it becomes (or became) visible
  };
  std::vector<MessageView> Messages(const std::string& queue_url) const;
  std::optional<MessageView> Message(const std::string& queue_url, const std::string& id) const;
  // Every visibility change in order: (message id, timeout seconds).
  std::vector<std::pair<std::string, int>> VisibilityChanges() const;
  // Calls per operation name ("ReceiveMessage", "DeleteMessage", ...).
  std::map<std::string, int> Calls() const;
  int CallCount(const std::string& operation) const;

  // Sqs ------------------------------------------------------------------------------------
  Result<std::string> CreateQueue(const CreateQueueRequest& request) override;
  Result<std::string> GetQueueUrl(const std::string& name) override;
  Result<std::map<std::string, std::string>> GetQueueAttributes(
      const std::string& queue_url, const std::vector<std::string>& names) override;
  Status DeleteQueue(const std::string& queue_url) override;
  Result<SendMessageBatchResult> SendMessageBatch(const std::string& queue_url,
                                                  std::span<const SendEntry> entries) override;
  Result<std::vector<SqsMessage>> ReceiveMessage(const std::string& queue_url,
                                                 const ReceiveRequest& request) override;
  Status DeleteMessage(const std::string& queue_url, const std::string& receipt_handle) override;
  Result<BatchResult> DeleteMessageBatch(const std::string& queue_url,
                                         std::span<const std::string> receipt_handles) override;
  Status ChangeMessageVisibility(const std::string& queue_url, const std::string& receipt_handle,
                                 int visibility_timeout) override;
  Result<BatchResult> ChangeMessageVisibilityBatch(
      const std::string& queue_url, std::span<const VisibilityEntry> entries) override;
  Status PurgeQueue(const std::string& queue_url) override;
  // VisibilityTimeout changes the queue's default; every other attribute is only stored and
  // reported back by GetQueueAttributes.
  Status SetQueueAttributes(const std::string& queue_url,
                            const std::map<std::string, std::string>& attributes) override;

 private:
  struct StoredMessage {
    std::string id;
    std::string body;
    int receive_count = 0;
    bool deleted = false;
    Clock::MonoTime visible_at{};
  };
  struct Queue {
    std::string name;
    int visibility_s = 900;
    std::vector<StoredMessage> messages;  // in send order
    int duplicate_next = 0;
    // Attributes set at creation or with SetQueueAttributes, as strings (SQS's defaults
    // until then); VisibilityTimeout lives in visibility_s.
    std::map<std::string, std::string> attributes = {{"MessageRetentionPeriod", "345600"}};
  };

  Queue* FindQueue(const std::string& url);  // requires mu_
  const Queue* FindQueue(const std::string& url) const;
  // The message a receipt handle names, or nullptr; requires mu_.
  StoredMessage* FindByReceipt(Queue& queue, const std::string& receipt_handle);
  Error QueueMissing(const std::string& operation) const;
  Error ReceiptInvalid(const std::string& operation) const;
  std::string SendLocked(Queue& queue, const std::string& body);
  Status ChangeVisibilityLocked(const std::string& queue_url, const std::string& receipt_handle,
                                int visibility_timeout);

  Clock& clock_;
  std::chrono::milliseconds max_real_wait_;
  mutable std::mutex mu_;
  std::condition_variable sent_;
  std::map<std::string, Queue> queues_;          // by URL
  std::map<std::string, std::string> receipts_;  // receipt -> message id
  std::vector<std::pair<std::string, int>> visibility_changes_;
  std::map<std::string, int> calls_;
  std::int64_t next_id_ = 1;
};

}  // namespace spotgrid::testing
