// One client connection of Http1Transport: a non-blocking TCP socket, optionally wrapped in
// TLS, with every wait bounded by an IoBudget (private to spotgrid_common).
//
// IoBudget carries the two limits of one exchange: an absolute deadline (connect timeout or
// total timeout) and curl's low-speed guard, checked at every poll() wait from the bytes moved
// since the guard's window began. TlsClient owns the SSL_CTX shared by all connections of a
// transport, the socket BIO that writes with MSG_NOSIGNAL, and the client session cache keyed
// by host and port, so a reconnect resumes instead of paying a full handshake.
//
// Thread-safety: an IoBudget and an Http1Connection belong to one exchange on one thread at a
// time (the pool hands a connection to one caller). TlsClient is safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "spotgrid/core/clock.h"
#include "spotgrid/core/status.h"

struct ssl_st;
struct ssl_ctx_st;
struct bio_method_st;
struct ssl_session_st;

namespace spotgrid {

// An Error without service/operation, as HttpTransport::Send returns them.
Error Http1Error(ErrorCategory category, std::string code, std::string message);

class IoBudget {
 public:
  // `deadline` = Clock::MonoTime::max() for none; the low-speed guard is off when
  // `low_speed_bytes` or `low_speed_time` is not positive. A raised `stop` ends every wait
  // with kCancelled "Cancelled".
  IoBudget(Clock& clock, Clock::MonoTime deadline, long low_speed_bytes,
           std::chrono::seconds low_speed_time, const StopSource* stop = nullptr);

  // kCancelled "Cancelled" once the stop was raised.
  Status CheckStop() const;

  // Waits until `fd` is ready for `events` (or reports an error or hang-up, which the next
  // I/O call then reports). kTransient "Timeout" when the deadline passes or the transfer stays
  // below the low-speed limit for the guard's whole window.
  Status Wait(int fd, short events);
  // Counts bytes sent or received for the low-speed guard.
  void Moved(std::size_t bytes) { window_bytes_ += bytes; }
  Clock& clock() const { return clock_; }
  // What a Timeout says when the deadline passes: "<what> <where> timed out after <limit> ms".
  // The views must outlive the waits; the message is only built when it is needed.
  void set_deadline_context(std::string_view what, std::string_view where,
                            std::chrono::milliseconds limit) {
    what_ = what;
    where_ = where;
    limit_ = limit;
  }

 private:
  Clock& clock_;
  Clock::MonoTime deadline_;
  bool low_speed_ = false;
  long low_speed_bytes_;
  std::chrono::seconds low_speed_time_;
  Clock::MonoTime window_start_;
  std::uint64_t window_bytes_ = 0;
  std::string_view what_ = "request";
  std::string_view where_;
  std::chrono::milliseconds limit_{0};
  const StopSource* stop_;
  int wake_fd_;  // the stop's descriptor, -1 without one
  static constexpr int kStopSliceMs = 100;
};

class Http1Connection {
 public:
  Http1Connection(int fd, std::string session_key);
  ~Http1Connection();
  Http1Connection(const Http1Connection&) = delete;
  Http1Connection& operator=(const Http1Connection&) = delete;

  // Sends all of `data`. kTransient "ConnectionFailed" when the peer reset or closed the
  // connection, "Timeout" from the budget.
  Status WriteAll(std::string_view data, IoBudget& budget);
  // Receives what is available (at least one byte) into `buffer`; 0 means the peer closed the
  // connection. `capacity` must be positive. `expect_wait`: nothing can have arrived yet (the
  // request has just left), so a plain socket polls before its first recv() instead of paying
  // for a recv() that would only say EAGAIN.
  Result<std::size_t> Read(char* buffer, std::size_t capacity, IoBudget& budget,
                           bool expect_wait = false);
  // For an idle pooled connection, without waiting: false when the server has closed it or
  // sent something unsolicited, so it must not carry a request. TLS records that carry no
  // data (a late session ticket, a key update) are consumed and do not count.
  bool LooksReusable();

  // The receive buffer, kept with the connection so a reused connection allocates nothing.
  static constexpr std::size_t kBufferSize = 65 * 1024;
  char* buffer();

  Clock::MonoTime idle_since{};
  int fd() const { return fd_; }
  ssl_st* ssl() const { return ssl_; }
  const std::string& session_key() const { return session_key_; }

 private:
  friend class TlsClient;
  int fd_;
  ssl_st* ssl_ = nullptr;
  std::string session_key_;  // "host:port", for the TLS session cache
  std::unique_ptr<char[]> buffer_;
};

class TlsClient {
 public:
  // kClient "TlsError" when the CA bundle cannot be loaded; empty = OpenSSL's default paths.
  static Result<std::unique_ptr<TlsClient>> Create(const std::string& ca_bundle);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // Runs the TLS handshake on a connected socket: SNI and host-name verification for names,
  // IP verification for literals, resuming a cached session for the connection's key.
  // Verification failure: kClient "TlsError"; anything else: kTransient "ConnectionFailed".
  Status Handshake(Http1Connection& connection, const std::string& host, bool ip_literal,
                   IoBudget& budget);

 private:
  TlsClient() = default;
  static int OnNewSession(ssl_st* ssl, ssl_session_st* session);

  ssl_ctx_st* ctx_ = nullptr;
  bio_method_st* bio_method_ = nullptr;
  std::mutex mu_;
  std::map<std::string, ssl_session_st*, std::less<>> sessions_;  // owned references
};

// Opens a TCP connection to host:port (each resolved address in turn), TCP_NODELAY and
// SO_KEEPALIVE set, bounded by `budget` (whose deadline is `connect_timeout` away, for the
// message). Counts the connection in `opened` once TCP connects.
// Refused / unresolvable: kTransient "ConnectionFailed"; out of time: kTransient "Timeout".
Result<std::unique_ptr<Http1Connection>> ConnectTcp(const std::string& host, int port,
                                                    bool ip_literal,
                                                    std::chrono::milliseconds connect_timeout,
                                                    IoBudget& budget,
                                                    std::atomic<std::uint64_t>& opened);

}  // namespace spotgrid
