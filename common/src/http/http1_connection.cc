#include "http/http1_connection.h"

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace spotgrid {
namespace {

using std::chrono::milliseconds;

// The first error on this thread's OpenSSL error queue, for messages.
std::string OpenSslErrorText(const char* fallback) {
  unsigned long code = ERR_peek_last_error();
  if (code == 0) return fallback;
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// A socket BIO whose writes cannot raise SIGPIPE: BIO_s_socket writes with write(2), which
// kills the process when the server has closed the connection, and a library must not install
// a signal disposition for its host process.
int NoSigpipeWrite(BIO* bio, const char* data, int length) {
  int fd = -1;
  BIO_get_fd(bio, &fd);
  BIO_clear_retry_flags(bio);
  ssize_t n = ::send(fd, data, static_cast<std::size_t>(length), MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(bio);
    return -1;
  }
  return static_cast<int>(n);
}

int NoSigpipePuts(BIO* bio, const char* text) {
  return NoSigpipeWrite(bio, text, static_cast<int>(std::strlen(text)));
}

}  // namespace

Error Http1Error(ErrorCategory category, std::string code, std::string message) {
  Error e;
  e.category = category;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

// --- IoBudget ---------------------------------------------------------------------------------

IoBudget::IoBudget(Clock& clock, Clock::MonoTime deadline, long low_speed_bytes,
                   std::chrono::seconds low_speed_time, const StopSource* stop)
    : clock_(clock),
      deadline_(deadline),
      low_speed_(low_speed_bytes > 0 && low_speed_time.count() > 0),
      low_speed_bytes_(low_speed_bytes),
      low_speed_time_(low_speed_time),
      window_start_(clock.Monotonic()),
      stop_(stop),
      wake_fd_(stop != nullptr ? stop->WakeFd() : -1) {}

Status IoBudget::CheckStop() const {
  if (stop_ != nullptr && stop_->Requested()) {
    return Http1Error(ErrorCategory::kCancelled, "Cancelled", "cancelled by shutdown");
  }
  return Status::Ok();
}

Status IoBudget::Wait(int fd, short events) {
  for (;;) {
    if (Status stopped = CheckStop(); !stopped.ok()) return stopped;
    const Clock::MonoTime now = clock_.Monotonic();
    if (now >= deadline_) {
      std::string message(what_);
      if (!where_.empty()) message.append(" ").append(where_);
      message.append(" timed out after ").append(std::to_string(limit_.count())).append(" ms");
      return Http1Error(ErrorCategory::kTransient, "Timeout", std::move(message));
    }
    Clock::MonoTime wake = deadline_;
    if (low_speed_) {
      if (now - window_start_ >= low_speed_time_) {
        const auto needed = static_cast<std::uint64_t>(low_speed_bytes_) *
                            static_cast<std::uint64_t>(low_speed_time_.count());
        if (window_bytes_ < needed) {
          return Http1Error(ErrorCategory::kTransient, "Timeout",
                            "transfer slower than " + std::to_string(low_speed_bytes_) +
                                " bytes/s for " + std::to_string(low_speed_time_.count()) + " s");
        }
        window_start_ = now;
        window_bytes_ = 0;
      }
      wake = std::min(wake, window_start_ + low_speed_time_);
    }
    int timeout_ms = -1;
    if (wake != Clock::MonoTime::max()) {
      // Round up: waking a little early would only spin.
      auto left = std::chrono::ceil<milliseconds>(wake - now).count();
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
    }
    if (stop_ != nullptr && wake_fd_ < 0 && (timeout_ms < 0 || timeout_ms > kStopSliceMs)) {
      timeout_ms = kStopSliceMs;  // no wake-up descriptor: look at the stop flag in slices
    }
    // The stop's descriptor polls readable once raised, so a wait ends at once on shutdown.
    pollfd p[2] = {{fd, events, 0}, {wake_fd_, POLLIN, 0}};
    int rc = ::poll(p, wake_fd_ >= 0 ? 2 : 1, timeout_ms);
    if (Status stopped = CheckStop(); !stopped.ok()) return stopped;
    if (rc > 0 && p[0].revents != 0) return Status::Ok();
    if (rc < 0 && errno != EINTR) {
      return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                        std::string("poll failed: ") + std::strerror(errno));
    }
  }
}

// --- Http1Connection ----------------------------------------------------------------------

Http1Connection::Http1Connection(int fd, std::string session_key)
    : fd_(fd), session_key_(std::move(session_key)) {}

Http1Connection::~Http1Connection() {
  if (ssl_ != nullptr) {
    // A session whose connection is freed without a shutdown is marked not resumable, so a
    // completed connection says close_notify (one non-blocking write; if the peer is gone,
    // it fails quietly: the BIO never raises SIGPIPE).
    if (SSL_is_init_finished(ssl_)) {
      ERR_clear_error();
      SSL_shutdown(ssl_);
      ERR_clear_error();
    }
    SSL_free(ssl_);
  }
  if (fd_ >= 0) ::close(fd_);
}

char* Http1Connection::buffer() {
  // Not value-initialised: pages the exchange never touches stay out of RSS.
  if (!buffer_) buffer_.reset(new char[kBufferSize]);
  return buffer_.get();
}

bool Http1Connection::LooksReusable() {
  if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return false;
  for (int records = 0; records < 4; ++records) {
    pollfd p{fd_, static_cast<short>(POLLIN | POLLRDHUP), 0};
    if (::poll(&p, 1, 0) == 0) return true;
    if (ssl_ == nullptr || (p.revents & (POLLRDHUP | POLLERR | POLLHUP)) != 0) return false;
    // Some servers send TLS 1.3 session tickets after the first response: reading them is
    // not a reason to give up a warm connection. Application data or a close is.
    ERR_clear_error();
    char byte;
    std::size_t got = 0;
    int rc = SSL_read_ex(ssl_, &byte, 1, &got);
    if (rc == 1 || SSL_get_error(ssl_, rc) != SSL_ERROR_WANT_READ) return false;
  }
  return false;
}

Status Http1Connection::WriteAll(std::string_view data, IoBudget& budget) {
  while (!data.empty()) {
    if (ssl_ == nullptr) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        budget.Moved(static_cast<std::size_t>(n));
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                          std::string("send failed: ") + std::strerror(errno));
      }
      Status waited = budget.Wait(fd_, POLLOUT);
      if (!waited.ok()) return waited;
      continue;
    }
    ERR_clear_error();
    std::size_t written = 0;
    int rc = SSL_write_ex(ssl_, data.data(), data.size(), &written);
    if (rc == 1) {
      data.remove_prefix(written);
      budget.Moved(written);
      continue;
    }
    int err = SSL_get_error(ssl_, rc);
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0) {
      std::string detail = err == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno)
                                                                  : OpenSslErrorText("closed");
      return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                        "TLS send failed: " + detail);
    }
    Status waited = budget.Wait(fd_, events);
    if (!waited.ok()) return waited;
  }
  return Status::Ok();
}

Result<std::size_t> Http1Connection::Read(char* buffer, std::size_t capacity, IoBudget& budget,
                                          bool expect_wait) {
  if (expect_wait && ssl_ == nullptr) {
    Status waited = budget.Wait(fd_, POLLIN);
    if (!waited.ok()) return waited.error();
  }
  for (;;) {
    if (ssl_ == nullptr) {
      ssize_t n = ::recv(fd_, buffer, capacity, 0);
      if (n >= 0) {
        budget.Moved(static_cast<std::size_t>(n));
        return static_cast<std::size_t>(n);
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                          std::string("recv failed: ") + std::strerror(errno));
      }
      Status waited = budget.Wait(fd_, POLLIN);
      if (!waited.ok()) return waited.error();
      continue;
    }
    // SSL_read first, poll only when it asks: OpenSSL may already hold decrypted bytes that
    // poll() on the socket cannot see.
    ERR_clear_error();
    errno = 0;
    std::size_t got = 0;
    int rc = SSL_read_ex(ssl_, buffer, capacity, &got);
    if (rc == 1) {
      budget.Moved(got);
      return got;
    }
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_ZERO_RETURN) return std::size_t{0};
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0) {
      if (err == SSL_ERROR_SYSCALL && errno == 0 && ERR_peek_error() == 0) return std::size_t{0};
      std::string detail = err == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno)
                                                                  : OpenSslErrorText("closed");
      return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                        "TLS receive failed: " + detail);
    }
    Status waited = budget.Wait(fd_, events);
    if (!waited.ok()) return waited.error();
  }
}

// --- TlsClient ----------------------------------------------------------------------------

namespace {

// True when `dir` holds OpenSSL's subject-hash links ("5ed36f99.0"), as Debian's and Ubuntu's
// /etc/ssl/certs (update-ca-certificates) do.
bool HasHashedCertificates(const char* dir) {
  DIR* d = ::opendir(dir);
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* entry = ::readdir(d)) {
    std::string_view name = entry->d_name;
    if (name.size() == 10 && name.substr(8) == ".0" &&
        name.find_first_not_of("0123456789abcdef") == 8) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

// The system's trust store, as OpenSSL's default paths define it, but read lazily where it
// can be: SSL_CTX_set_default_verify_paths parses the whole bundle file into memory at once
// (~150 certificates, 1.4 MiB of an idle agent's memory), while a hashed directory is looked
// up per verification and only the issuers actually needed are loaded. SSL_CERT_FILE, when
// set, is the user's explicit choice and is honoured as OpenSSL would.
int LoadSystemTrustStore(SSL_CTX* ctx) {
  const char* file = std::getenv(X509_get_default_cert_file_env());
  if (file == nullptr || *file == '\0') {
    const char* dir = std::getenv(X509_get_default_cert_dir_env());
    if (dir == nullptr || *dir == '\0') dir = X509_get_default_cert_dir();
    if (std::strchr(dir, ':') == nullptr && HasHashedCertificates(dir)) {
      return SSL_CTX_load_verify_dir(ctx, dir);
    }
  }
  return SSL_CTX_set_default_verify_paths(ctx);
}

}  // namespace

Result<std::unique_ptr<TlsClient>> TlsClient::Create(const std::string& ca_bundle) {
  std::unique_ptr<TlsClient> tls(new TlsClient());
  ERR_clear_error();
  tls->ctx_ = SSL_CTX_new(TLS_client_method());
  if (tls->ctx_ == nullptr) {
    return Http1Error(ErrorCategory::kTransient, "TlsError",
                      "SSL_CTX_new failed: " + OpenSslErrorText("unknown error"));
  }
  SSL_CTX* ctx = tls->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Partial writes let a large body go out as the socket accepts it; a read-until-close body
  // over TLS ends with a plain FIN from many servers, and the framing checks truncation of
  // every other body, as curl does.
  // RELEASE_BUFFERS: an idle pooled connection (the agent's, between long polls) need not hold
  // its record buffers until the next request.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  int loaded = ca_bundle.empty() ? LoadSystemTrustStore(ctx)
                                 : SSL_CTX_load_verify_locations(ctx, ca_bundle.c_str(), nullptr);
  if (loaded != 1) {
    return Http1Error(ErrorCategory::kClient, "TlsError",
                      "cannot load CA certificates" +
                          (ca_bundle.empty() ? std::string() : " from " + ca_bundle) + ": " +
                          OpenSslErrorText("unknown error"));
  }
  // Sessions (TLS 1.3 tickets arrive after the handshake) are handed to OnNewSession, which
  // keeps the latest per host:port for the next connection there.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &TlsClient::OnNewSession);
  SSL_CTX_set_app_data(ctx, tls.get());

  const BIO_METHOD* socket_method = BIO_s_socket();
  tls->bio_method_ = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                  "spotgrid socket");
  if (tls->bio_method_ == nullptr) {
    return Http1Error(ErrorCategory::kTransient, "TlsError", "BIO_meth_new failed");
  }
  BIO_meth_set_write(tls->bio_method_, &NoSigpipeWrite);
  BIO_meth_set_puts(tls->bio_method_, &NoSigpipePuts);
  BIO_meth_set_read(tls->bio_method_, BIO_meth_get_read(socket_method));
  BIO_meth_set_ctrl(tls->bio_method_, BIO_meth_get_ctrl(socket_method));
  BIO_meth_set_create(tls->bio_method_, BIO_meth_get_create(socket_method));
  BIO_meth_set_destroy(tls->bio_method_, BIO_meth_get_destroy(socket_method));
  return tls;
}

TlsClient::~TlsClient() {
  for (auto& [key, session] : sessions_) SSL_SESSION_free(session);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (bio_method_ != nullptr) BIO_meth_free(bio_method_);
}

int TlsClient::OnNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<TlsClient*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  auto* connection = static_cast<Http1Connection*>(SSL_get_app_data(ssl));
  if (self == nullptr || connection == nullptr) return 0;
  SSL_SESSION* old = nullptr;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    auto it = self->sessions_.find(connection->session_key());
    if (it != self->sessions_.end()) {
      old = it->second;
      it->second = session;
    } else {
      // A transport talks to a handful of endpoints; the bound only guards against a caller
      // that walks through many hosts.
      if (self->sessions_.size() >= 256) {
        for (auto& [key, s] : self->sessions_) SSL_SESSION_free(s);
        self->sessions_.clear();
      }
      self->sessions_.emplace(connection->session_key(), session);
    }
  }
  if (old != nullptr) SSL_SESSION_free(old);
  return 1;  // we keep the reference
}

Status TlsClient::Handshake(Http1Connection& connection, const std::string& host, bool ip_literal,
                            IoBudget& budget) {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) {
    return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                      "SSL_new failed: " + OpenSslErrorText("unknown error"));
  }
  connection.ssl_ = ssl;  // freed with the connection
  BIO* bio = BIO_new(bio_method_);
  if (bio == nullptr) {
    return Http1Error(ErrorCategory::kTransient, "ConnectionFailed", "BIO_new failed");
  }
  BIO_set_fd(bio, connection.fd(), BIO_NOCLOSE);
  SSL_set_bio(ssl, bio, bio);
  SSL_set_app_data(ssl, &connection);
  bool configured;
  if (ip_literal) {
    // No SNI for addresses (RFC 6066 forbids it); the certificate must name the IP.
    configured = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1;
  } else {
    configured =
        SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 && SSL_set1_host(ssl, host.c_str()) == 1;
  }
  if (!configured) {
    return Http1Error(ErrorCategory::kClient, "TlsError", "cannot verify TLS peer name " + host);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(connection.session_key());
    if (it != sessions_.end() && SSL_SESSION_is_resumable(it->second)) {
      SSL_set_session(ssl, it->second);  // takes its own reference
    }
  }
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_connect(ssl);
    if (rc == 1) return Status::Ok();
    int err = SSL_get_error(ssl, rc);
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events != 0) {
      Status waited = budget.Wait(connection.fd(), events);
      if (!waited.ok()) return waited;
      continue;
    }
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      return Http1Error(ErrorCategory::kClient, "TlsError",
                        "TLS certificate verification failed for " + host + ": " +
                            X509_verify_cert_error_string(verify));
    }
    std::string detail = err == SSL_ERROR_SYSCALL && errno != 0
                             ? std::strerror(errno)
                             : OpenSslErrorText("connection closed during the handshake");
    return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                      "TLS handshake with " + host + " failed: " + detail);
  }
}

// --- ConnectTcp ---------------------------------------------------------------------------

Result<std::unique_ptr<Http1Connection>> ConnectTcp(const std::string& host, int port,
                                                    bool ip_literal,
                                                    std::chrono::milliseconds connect_timeout,
                                                    IoBudget& budget,
                                                    std::atomic<std::uint64_t>& opened) {
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (ip_literal ? AI_NUMERICHOST : 0);
  addrinfo* addresses = nullptr;
  int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &addresses);
  if (gai != 0) {
    return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                      "cannot resolve " + host + ": " + ::gai_strerror(gai));
  }
  struct Freer {
    addrinfo* a;
    ~Freer() { ::freeaddrinfo(a); }
  } free_addresses{addresses};

  budget.set_deadline_context("connect to", where, connect_timeout);
  std::string last_error = "no address";
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    auto connection = std::make_unique<Http1Connection>(fd, where);
    int one = 1;
    // Requests leave in one write and must not wait for the ACK of the previous segment.
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS && errno != EINTR) {
      last_error = std::strerror(errno);
      continue;
    }
    if (rc != 0) {
      Status waited = budget.Wait(fd, POLLOUT);
      if (!waited.ok()) return waited.error();
      int so_error = 0;
      socklen_t length = sizeof so_error;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length) != 0) so_error = errno;
      if (so_error != 0) {
        last_error = std::strerror(so_error);
        continue;
      }
    }
    opened.fetch_add(1, std::memory_order_relaxed);
    return connection;
  }
  return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                    "cannot connect to " + where + ": " + last_error);
}

}  // namespace spotgrid
