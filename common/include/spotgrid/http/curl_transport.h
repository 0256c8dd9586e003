// HttpTransport on libcurl.
//
// Connections are reused: a Send() borrows a curl easy handle from the transport's free list
// and returns it afterwards, so the handle's cache of live connections stays warm for the next
// call (most recently used handle first). All handles share one DNS cache and one TLS-session
// cache. TLS verification is always on; there is deliberately no switch to turn it off.
// Request bodies stream from memory or a FileRange with a known Content-Length (never
// chunked); a 2xx body can stream to a file. libcurl is initialised once per process, and
// no curl signal handlers are installed (CURLOPT_NOSIGNAL).
//
// Thread-safety: Send() is safe from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "spotgrid/http/http.h"

namespace spotgrid {

struct CurlTransportOptions {
  // Upper bound on idle cached connections per handle.
  long max_connections_per_handle = 8;
  // Idle handles kept in the free list; more concurrent callers get fresh handles that are
  // closed when returned.
  int max_idle_handles = 32;
  // CA bundle (PEM) to verify servers against instead of the system default, e.g. for a
  // TLS-terminating proxy; empty = system default.
  std::string ca_bundle;
};

class CurlTransport final : public HttpTransport {
 public:
  explicit CurlTransport(CurlTransportOptions options = {});
  ~CurlTransport() override;
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  Result<HttpResponse> Send(const HttpRequest& request) override;

  // Counters for diagnostics and tests (connection reuse is visible as
  // connections_opened < requests).
  struct Stats {
    std::uint64_t requests = 0;            // transfers performed
    std::uint64_t connections_opened = 0;  // new connections (CURLINFO_NUM_CONNECTS summed)
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::shared_ptr<HttpTransport> MakeCurlTransport(CurlTransportOptions options = {});

}  // namespace spotgrid
