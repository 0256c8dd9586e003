// HttpTransport on libcurl: the product's one HTTP stack.
//
// Connections. A Send() borrows a slot (one curl multi handle with one easy handle) from the
// transport's free list, most recently used first, and returns it afterwards. The multi handle
// owns the slot's cache of live keep-alive connections, so sequential calls reuse one
// connection and concurrent callers each reuse their own. All slots share one DNS cache and
// one TLS-session cache (a CURLSH), so a reconnect resumes its TLS session.
//
// Stop. A request's `stop` is watched while curl waits: each Send() drives its transfer with
// curl_multi_poll() and passes the StopSource's eventfd as an extra descriptor, so raising it
// ends a 20 s long poll at once (not at curl's once-a-second progress callback); the
// connection is then closed, never reused.
//
// TLS. Verification is always on; there is deliberately no switch to turn it off. With a CA
// bundle (CurlTransportOptions::ca_bundle: AWS_CA_BUNDLE or the profile's ca_bundle, wired by
// AwsContext) only that bundle is trusted, as in botocore. Without one the system store is
// read from the hashed certificate directory (libcurl's built-in CApath, /etc/ssl/certs on
// Debian and Ubuntu), so OpenSSL loads only the issuers a handshake needs instead of parsing
// the whole bundle into every connection.
//
// Proxies. Every request names its proxy explicitly (CURLOPT_PROXY, "" when direct, and an
// empty CURLOPT_NOPROXY), so libcurl never reads proxy variables itself (it would ignore
// upper-case HTTP_PROXY and apply its own NO_PROXY rules); the choice is ChooseProxy()'s,
// i.e. the AWS CLI's (spotgrid/http/proxy_config.h). https:// goes through the proxy with
// CONNECT, http:// in absolute form. Proxy credentials go to curl as separate options; they
// never appear in an Error.
//
// Timeouts. connect_timeout bounds the whole connection phase: name resolution, TCP connect,
// proxy CONNECT and the TLS handshake. Debian's libcurl resolves with its threaded resolver
// (curl_version_info reports AsynchDNS): getaddrinfo() runs on a helper thread, and the
// transfer gives up when the connect timeout expires even if getaddrinfo() is still waiting
// for a DNS server. CURLOPT_QUICK_EXIT makes libcurl detach that thread instead of joining it
// (joining would stretch the timeout, or a stop, to glibc's 5 s DNS timeout); the thread ends
// on its own. No signal is ever used (CURLOPT_NOSIGNAL). `timeout` bounds the whole exchange,
// the low-speed guard a stalled one.
//
// Wire. The caller's headers are sent as given (they are signed); curl adds Host and
// Content-Length, nothing else (no Expect: 100-continue, Accept or default Content-Type).
// Request bodies stream from memory or a FileRange with a known Content-Length (never
// chunked); a 2xx body can stream to a file; error bodies stay in memory. TCP_NODELAY is on.
//
// Thread-safety: Send() is safe from any number of threads. libcurl is initialised once per
// process.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "spotgrid/http/http.h"
#include "spotgrid/http/proxy_config.h"

namespace spotgrid {

struct CurlTransportOptions {
  // Upper bound on idle keep-alive connections each slot keeps (CURLMOPT_MAXCONNECTS). A slot
  // serves one caller at a time, and a caller talks to one or two hosts (SQS and DynamoDB,
  // S3), so 4 is plenty; more only keeps idle sockets open.
  long max_connections_per_slot = 4;
  // Idle slots kept in the free list. Above what a process keeps in flight (enqueue: 32 batch
  // calls per service, kInFlightWindow in controller/verbs/enqueue.cc, plus its checkpoint and
  // progress calls), so a burst never closes the connections it wants again a moment later;
  // more concurrent callers get fresh slots that are closed when returned. Slots are made only
  // when callers overlap, so a process that never does (the agent) never holds this many.
  int max_idle_slots = 72;
  // CA bundle (PEM) to verify servers against instead of the system store; empty = system.
  std::string ca_bundle;
  // Hashed certificate directory for the system store; empty = libcurl's built-in CApath.
  // Only tests set it. Ignored when ca_bundle is set.
  std::string ca_directory;
  // The proxy variables (ProxyEnvironment::Read); default: no proxy for any request.
  ProxyEnvironment proxies;
};

class CurlTransport final : public HttpTransport {
 public:
  explicit CurlTransport(CurlTransportOptions options = {});
  ~CurlTransport() override;
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  Result<HttpResponse> Send(const HttpRequest& request) override;
  // Exchanges on one multi handle of their own (its own keep-alive connections); the DNS and
  // TLS-session caches are the transport's.
  std::unique_ptr<HttpMulti> NewMulti() override;

  // Counters for diagnostics and tests (connection reuse is visible as
  // connections_opened < requests).
  struct Stats {
    std::uint64_t requests = 0;            // transfers started (after local validation)
    std::uint64_t connections_opened = 0;  // new connections (CURLINFO_NUM_CONNECTS summed)
  };
  Stats stats() const;

  struct Impl;  // defined in curl_transport.cc, also used by its HttpMulti

 private:
  std::unique_ptr<Impl> impl_;
};

std::shared_ptr<HttpTransport> MakeCurlTransport(CurlTransportOptions options = {});

}  // namespace spotgrid
