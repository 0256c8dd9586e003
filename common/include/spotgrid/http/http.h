// The HTTP seam under every AWS client.
//
// An HttpTransport sends one fully-formed request and returns the response, or an Error when
// no HTTP response was received (connect failure, reset, timeout, TLS failure). An HTTP error
// status is *not* a transport error: it comes back as an HttpResponse for the client core to
// interpret. Bodies can stream from a file range and to a file, so a 5 GiB object never sits
// in memory.
//
// Thread-safety: Send() may be called from many threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"

namespace spotgrid {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive lookup; nullopt when absent.
std::optional<std::string> FindHeader(const Headers& headers, std::string_view name);

struct FileRange {
  std::string path;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;  // bytes to send from `offset`
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;   // absolute, already percent-encoded: "https://host:port/path?query"
  Headers headers;   // sent as given; the transport adds nothing it would have to sign
  std::string body;  // used when body_file is empty
  std::optional<FileRange> body_file;
  // When set, a 2xx response body is written to this file (created or truncated) instead of
  // HttpResponse::body. Error bodies always arrive in memory so they can be parsed.
  std::string response_file;

  std::chrono::milliseconds connect_timeout{3000};
  // Total time allowed for the exchange; 0 means no limit (long transfers rely on the
  // low-speed guard instead). Long polls set this above their wait time.
  std::chrono::milliseconds timeout{0};
  // Abort when fewer than low_speed_bytes per second flow for low_speed_time.
  long low_speed_bytes = 1;
  std::chrono::seconds low_speed_time{30};
  // When raised, the exchange is abandoned promptly (its connection is closed) and Send()
  // returns Error{kCancelled, "Cancelled"}: shutdown never waits for a 20 s long poll.
  const StopSource* stop = nullptr;
};

struct HttpResponse {
  int status = 0;
  Headers headers;   // names lower-cased
  std::string body;  // empty when streamed to HttpRequest::response_file
  std::optional<std::string> Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
};

// Exchanges driven together on the calling thread: the caller Start()s several and Poll()s for
// those that ended, so a window of requests is in flight without a thread per request (a
// thread blocked on each exchange costs a wake-up and two context switches per exchange,
// most of a small request's client CPU). An exchange ends exactly as Send() would end it.
//
// Thread-safety: one thread uses an HttpMulti; only Wake() may be called from others.
class HttpMulti {
 public:
  virtual ~HttpMulti() = default;
  // Begins `request`; its outcome comes back from a later Poll() under `tag`.
  virtual void Start(std::uint64_t tag, HttpRequest request) = 0;
  struct Ended {
    std::uint64_t tag;
    Result<HttpResponse> result;
  };
  // Drives the exchanges until at least one has ended, Wake() was called or `wait` passed, and
  // returns the ended ones (none after a wake-up or a timeout).
  virtual std::vector<Ended> Poll(std::chrono::milliseconds wait) = 0;
  // Exchanges started whose end Poll() has not returned yet.
  virtual std::size_t active() const = 0;
  // Makes a waiting (or the next) Poll() return at once.
  virtual void Wake() = 0;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Transport failures come back as Error{category=kTransient (connect, reset, timeout) or
  // kClient (TLS verification, malformed URL), code "ConnectionFailed" | "Timeout" |
  // "TlsError" | ...}. The Error's service/operation are left empty for the caller to fill.
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
  // A multi of this transport. The default one performs each exchange inside Start() with
  // Send(): right for in-memory fakes, where an exchange costs nothing to wait for.
  virtual std::unique_ptr<HttpMulti> NewMulti();
};

}  // namespace spotgrid
