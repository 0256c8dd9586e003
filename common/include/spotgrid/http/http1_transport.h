// HttpTransport on plain sockets and OpenSSL: a lean HTTP/1.1 client.
//
// It exists because libcurl costs more than we can spend: the agent's idle memory budget
// cannot carry curl's dozens of shared libraries, and the controller's enqueue path cannot
// afford curl's per-request bookkeeping. It speaks exactly the HTTP/1.1 the AWS endpoints
// need: one request per connection at a time (no pipelining), request bodies with a known
// Content-Length from memory or a FileRange (never chunked uploads), responses framed by
// Content-Length, chunked transfer coding or connection close, interim 1xx responses skipped.
// The wire contract is CurlTransport's: the caller's headers are sent as given (they are
// signed); only Host (when absent) and Content-Length (when absent) are added.
//
// Connections are pooled per (scheme, host, port), warmest first, and reused until the server
// closes them or they sit idle longer than `idle_timeout`. TLS always verifies the peer (there
// is deliberately no switch to turn it off) and resumes sessions on reconnect. No SIGPIPE is
// ever raised: plain sends use MSG_NOSIGNAL and TLS writes go through a socket BIO that does.
// A request's `stop` ends any wait at once (poll() also watches the stop's wake-up descriptor);
// the connection is then closed, never pooled.
//
// Thread-safety: Send() is safe from any number of threads; each call uses its own connection
// exclusively, and the pool and the TLS session cache are shared under a mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "spotgrid/core/clock.h"
#include "spotgrid/http/http.h"

namespace spotgrid {

struct Http1TransportOptions {
  // CA bundle (PEM) to verify servers against instead of the system default, e.g. for a
  // TLS-terminating proxy; empty = OpenSSL's default paths (which honour SSL_CERT_FILE and
  // SSL_CERT_DIR).
  std::string ca_bundle;
  // Idle connections kept per (scheme, host, port); more are closed when returned. Well above
  // what a caller keeps in flight (enqueue: 8 batch calls per service, plus a progress
  // thread), so a burst never closes connections it wants again a moment later.
  int max_idle_per_host = 64;
  // An idle pooled connection older than this is closed instead of reused: servers close
  // idle keep-alive connections on their own schedule (S3 after about 20 s), and a connection
  // we know to be old is more likely to be the one the server is closing right now.
  std::chrono::milliseconds idle_timeout{30000};
  // Time source for deadlines, the low-speed guard and idle aging; nullptr = Clock::System().
  // Waits on sockets are real-time poll()s, so a clock that does not move (a FakeClock) only
  // suits tests that never hit a timeout.
  Clock* clock = nullptr;
};

class Http1Transport final : public HttpTransport {
 public:
  explicit Http1Transport(Http1TransportOptions options = {});
  ~Http1Transport() override;
  Http1Transport(const Http1Transport&) = delete;
  Http1Transport& operator=(const Http1Transport&) = delete;

  Result<HttpResponse> Send(const HttpRequest& request) override;

  // Counters for diagnostics and tests (connection reuse is visible as
  // connections_opened < requests). Same meaning as CurlTransport::Stats.
  struct Stats {
    std::uint64_t requests = 0;            // exchanges attempted (after local validation)
    std::uint64_t connections_opened = 0;  // TCP connections established
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::shared_ptr<HttpTransport> MakeHttp1Transport(Http1TransportOptions options = {});

}  // namespace spotgrid
