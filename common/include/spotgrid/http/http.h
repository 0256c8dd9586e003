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

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Transport failures come back as Error{category=kTransient (connect, reset, timeout) or
  // kClient (TLS verification, malformed URL), code "ConnectionFailed" | "Timeout" |
  // "TlsError" | ...}. The Error's service/operation are left empty for the caller to fill.
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
};

}  // namespace spotgrid
