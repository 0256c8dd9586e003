// HttpTransport on libcurl.
//
// Connections are reused: each thread that calls Send() keeps its own curl easy handle (and
// with it a warm connection cache), and all handles share one DNS and TLS-session cache.
// TLS verification is always on; there is deliberately no switch to turn it off.
//
// Thread-safety: Send() is safe from any number of threads.
#pragma once

#include <memory>

#include "spotgrid/http/http.h"

namespace spotgrid {

struct CurlTransportOptions {
  // Upper bound on idle cached connections per handle.
  long max_connections_per_handle = 8;
  // Extra CA bundle (PEM) to trust, e.g. for a TLS-terminating proxy; empty = system default.
  std::string ca_bundle;
};

std::shared_ptr<HttpTransport> MakeCurlTransport(CurlTransportOptions options = {});

}  // namespace spotgrid
