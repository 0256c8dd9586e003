// Amazon SQS over the AWS JSON 1.0 protocol.
//
// `Sqs` is what product logic depends on (the controller enqueues units, the agent long-polls
// them), so tests can substitute an in-memory fake. `SqsClient` is the real client over the
// client core: every call goes through AwsClient (signing, HTTP-level retries, error
// classification); on top of that, the batch calls split any number of entries into batches of
// at most 10 entries and 1 MiB of payload, send several batches at once, and re-send only the
// entries SQS reports as failed through no fault of the sender, with the core's backoff.
//
// Batch entries are identified on the wire by their position in the batch ("0".."9"), so
// callers never invent batch ids; results and failures name the entry by its index in the
// caller's vector.
//
// Thread-safety: SqsClient is safe to use from any number of threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/core/status.h"

namespace spotgrid {

class AwsMulti;

// Where SQS moves a message after it was received `max_receive_count` times without being
// deleted. Sent as the queue attribute "RedrivePolicy", a JSON document encoded as a string.
struct RedrivePolicy {
  std::string dead_letter_arn;  // the DLQ's QueueArn (GetQueueAttributes "QueueArn")
  int max_receive_count = 10;

  std::string ToAttributeValue() const;
  // Parses the attribute value GetQueueAttributes returns (maxReceiveCount may be a string or
  // a number there).
  static Result<RedrivePolicy> FromAttributeValue(std::string_view value);
};

struct CreateQueueRequest {
  std::string name;
  // Queue attributes as SQS names them ("VisibilityTimeout" -> "60"). Values are strings.
  std::map<std::string, std::string> attributes;
  std::optional<RedrivePolicy> redrive_policy;  // added as the "RedrivePolicy" attribute
  std::map<std::string, std::string> tags;
};

// One message to send.
struct SendEntry {
  std::string body;
  std::optional<int> delay_seconds;      // 0..900; queue default when absent
  std::string message_group_id;          // FIFO queues only
  std::string message_deduplication_id;  // FIFO queues without content dedup
};

// Why one entry of a batch call did not succeed.
struct BatchEntryFailure {
  std::size_t index = 0;     // position in the caller's vector
  bool sender_fault = true;  // SQS's verdict: true = the entry itself is wrong, don't resend
  Error error;               // code/message from SQS (or the whole-request error)
};

struct SendMessageBatchResult {
  // message_ids[i] is the MessageId of entry i, or "" if that entry failed.
  std::vector<std::string> message_ids;
  std::vector<BatchEntryFailure> failed;  // sorted by index
  bool ok() const { return failed.empty(); }
};

// The result of a batch call that returns nothing per entry (delete, change visibility).
struct BatchResult {
  std::vector<BatchEntryFailure> failed;  // sorted by index
  bool ok() const { return failed.empty(); }
};

struct SqsMessage {
  std::string id;
  std::string receipt_handle;  // needed to delete it or change its visibility
  std::string body;
  std::string md5_of_body;
  // System attributes asked for with ReceiveRequest::system_attribute_names; values are
  // strings, timestamps are epoch milliseconds.
  std::map<std::string, std::string> attributes;

  // ApproximateReceiveCount if it was requested and present, else 0.
  int ReceiveCount() const;
};

struct ReceiveRequest {
  int max_messages = 10;  // 1..10
  // 0 = short poll; 1..20 = long poll: returns as soon as a message arrives or after this.
  int wait_seconds = 20;
  std::optional<int> visibility_timeout;  // seconds; queue default when absent
  std::vector<std::string> system_attribute_names = {"ApproximateReceiveCount"};
  // Raised by shutdown: the long poll returns at once with a kCancelled error (messages the
  // service may have handed out meanwhile come back after their visibility timeout).
  const StopSource* stop = nullptr;
};

struct VisibilityEntry {
  std::string receipt_handle;
  int visibility_timeout = 0;  // seconds from now; 0 = visible again at once
};

// The queue operations product logic uses. See SqsClient for the behaviour of each.
class Sqs {
 public:
  virtual ~Sqs() = default;

  virtual Result<std::string> CreateQueue(const CreateQueueRequest& request) = 0;
  // kNotFound when the queue does not exist.
  virtual Result<std::string> GetQueueUrl(const std::string& name) = 0;
  // `names`: attribute names, or {"All"}.
  virtual Result<std::map<std::string, std::string>> GetQueueAttributes(
      const std::string& queue_url, const std::vector<std::string>& names) = 0;
  virtual Status DeleteQueue(const std::string& queue_url) = 0;

  // Sends every entry (any number). Per-entry outcomes are in the result, including
  // whole-request failures of single batches (after a non-retryable one, e.g. no such queue,
  // the batches not yet sent are not sent and fail with the same error) and entries whose body
  // is not valid UTF-8. The Result is reserved for problems of the call as a whole.
  virtual Result<SendMessageBatchResult> SendMessageBatch(const std::string& queue_url,
                                                          std::span<const SendEntry> entries) = 0;
  // SendMessageBatch as a call of `multi`, for a caller that keeps many in flight on one
  // thread; `done` runs on that thread. Not pure: this default runs SendMessageBatch on a
  // thread of its own (AwsMulti::Offload), which is all a test double needs.
  using SendDone = std::function<void(Result<SendMessageBatchResult>)>;
  virtual void StartSendMessageBatch(AwsMulti& multi, const std::string& queue_url,
                                     std::vector<SendEntry> entries, SendDone done);
  // An empty vector when no message arrived within the wait.
  virtual Result<std::vector<SqsMessage>> ReceiveMessage(const std::string& queue_url,
                                                         const ReceiveRequest& request) = 0;
  virtual Status DeleteMessage(const std::string& queue_url, const std::string& receipt_handle) = 0;
  virtual Result<BatchResult> DeleteMessageBatch(const std::string& queue_url,
                                                 std::span<const std::string> receipt_handles) = 0;
  virtual Status ChangeMessageVisibility(const std::string& queue_url,
                                         const std::string& receipt_handle,
                                         int visibility_timeout) = 0;
  virtual Result<BatchResult> ChangeMessageVisibilityBatch(
      const std::string& queue_url, std::span<const VisibilityEntry> entries) = 0;
  virtual Status PurgeQueue(const std::string& queue_url) = 0;
  // Changes queue attributes as SQS names them ("MessageRetentionPeriod" -> "1209600").
  // Not pure, so that test doubles that never change a queue need not implement it: this
  // default refuses with a kClient error naming the operation.
  virtual Status SetQueueAttributes(const std::string& queue_url,
                                    const std::map<std::string, std::string>& attributes);
};

struct SqsClientOptions {
  // Batches of one call in flight at once (each on its own thread); 1 = sequential.
  int batch_concurrency = 8;
  // Total payload of one SendMessageBatch (SQS limit: 1 MiB, bodies + attributes).
  std::size_t max_batch_payload_bytes = 1024 * 1024;
  // How often a batch re-sends its retryable failed entries (SenderFault=false) before
  // reporting them; each round waits the core's Backoff(round) on the context clock.
  int max_entry_retries = 4;
  // Added to ReceiveRequest::wait_seconds to get the HTTP timeout of a long poll, so a slow
  // but healthy long poll is never cut off by the transport.
  std::chrono::milliseconds long_poll_timeout_margin{10000};
};

class SqsClient final : public Sqs {
 public:
  static Result<std::shared_ptr<SqsClient>> Create(std::shared_ptr<AwsContext> context,
                                                   SqsClientOptions options = {});
  SqsClient(std::shared_ptr<AwsClient> client, SqsClientOptions options);

  Result<std::string> CreateQueue(const CreateQueueRequest& request) override;
  Result<std::string> GetQueueUrl(const std::string& name) override;
  Result<std::map<std::string, std::string>> GetQueueAttributes(
      const std::string& queue_url, const std::vector<std::string>& names) override;
  Status DeleteQueue(const std::string& queue_url) override;
  Result<SendMessageBatchResult> SendMessageBatch(const std::string& queue_url,
                                                  std::span<const SendEntry> entries) override;
  // One SendMessageBatch call (and its entry-level retries) on `multi`, without a thread, for
  // up to 10 entries within the payload limit; more go through the default.
  void StartSendMessageBatch(AwsMulti& multi, const std::string& queue_url,
                             std::vector<SendEntry> entries, SendDone done) override;
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
  Status SetQueueAttributes(const std::string& queue_url,
                            const std::map<std::string, std::string>& attributes) override;

  const SqsClientOptions& options() const { return options_; }

 private:
  std::shared_ptr<AwsClient> client_;
  SqsClientOptions options_;
};

// Request encoders, exposed so the benchmark can time them. The batch encoders write the wire
// body directly (no intermediate JSON tree) and fail only on a string that is not valid UTF-8.
// Entries are numbered "0".."n-1" in the order given; the caller keeps batches at 10 entries.
nlohmann::json EncodeCreateQueue(const CreateQueueRequest& request);
nlohmann::json EncodeReceiveMessage(const std::string& queue_url, const ReceiveRequest& request);
Result<std::string> EncodeSendMessageBatch(const std::string& queue_url,
                                           std::span<const SendEntry> entries);
Result<std::string> EncodeDeleteMessageBatch(const std::string& queue_url,
                                             std::span<const std::string> receipt_handles);
Result<std::string> EncodeChangeMessageVisibilityBatch(const std::string& queue_url,
                                                       std::span<const VisibilityEntry> entries);

// The bytes an entry counts against the 1 MiB batch payload limit.
std::size_t SendEntryPayloadBytes(const SendEntry& entry);

// Splits entries into [begin, end) ranges of at most 10 entries and `max_payload_bytes` of
// payload (an entry larger than the limit goes alone, and SQS judges it).
std::vector<std::pair<std::size_t, std::size_t>> SplitSendBatches(
    std::span<const SendEntry> entries, std::size_t max_payload_bytes);

}  // namespace spotgrid
