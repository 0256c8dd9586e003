#include "spotgrid/http/http1_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/strings.h"
#include "http/http1_connection.h"
#include "http/http1_parser.h"

namespace spotgrid {
namespace {

// A memory body up to this size leaves in the same send() as the head: one syscall, and on
// loopback one pass through the receiver's TCP stack instead of two.
constexpr std::size_t kCoalesceLimit = 64 * 1024;
// File bodies are read (pread) and sent in pieces of this size, never whole.
constexpr std::size_t kFileChunk = 256 * 1024;

using std::chrono::milliseconds;

struct Url {
  bool tls = false;
  std::string_view host;  // without brackets; a view into the request's URL
  int port = 0;
  bool default_port = true;
  bool ip_literal = false;
  bool ipv6 = false;
  std::string_view target;   // path and query, as given
  bool slash_first = false;  // the URL has no path: "/" goes before `target`
};

Error InvalidUrl(std::string_view url, const char* why) {
  return Http1Error(ErrorCategory::kClient, "InvalidUrl",
                    std::string("invalid URL \"") + std::string(url) + "\": " + why);
}

bool IsHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

Result<Url> ParseUrl(std::string_view url) {
  Url out;
  std::string_view rest;
  if (url.size() > 7 && EqualsIgnoreCase(url.substr(0, 7), "http://")) {
    rest = url.substr(7);
  } else if (url.size() > 8 && EqualsIgnoreCase(url.substr(0, 8), "https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else {
    return InvalidUrl(url, "scheme must be http or https");
  }
  std::size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view target =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (std::size_t hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);  // a fragment never goes on the wire
  }
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return InvalidUrl(url, "path contains a space or control character");
    }
  }
  out.target = target;
  out.slash_first = target.empty() || target.front() == '?';  // "http://h?q" means "/?q"

  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidUrl(url, "unterminated IPv6 literal");
    out.host = authority.substr(1, close - 1);
    char text[INET6_ADDRSTRLEN + 1] = {};
    in6_addr address;
    if (out.host.size() >= sizeof text ||
        (out.host.copy(text, sizeof text - 1), ::inet_pton(AF_INET6, text, &address) != 1)) {
      return InvalidUrl(url, "invalid IPv6 literal");
    }
    out.ip_literal = out.ipv6 = true;
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidUrl(url, "junk after IPv6 literal");
      port_text = after.substr(1);
      out.default_port = false;
    }
  } else {
    std::size_t colon = authority.find(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      out.default_port = false;
    }
    if (out.host.empty()) return InvalidUrl(url, "no host");
    for (char c : out.host) {
      if (!IsHostNameChar(c)) return InvalidUrl(url, "invalid character in host");
    }
    char text[INET_ADDRSTRLEN + 1] = {};
    in_addr address;
    out.ip_literal = out.host.size() < sizeof text && (out.host.copy(text, sizeof text - 1),
                                                       ::inet_pton(AF_INET, text, &address) == 1);
  }
  out.port = out.tls ? 443 : 80;
  if (!out.default_port) {
    if (port_text.empty() || port_text.size() > 5) return InvalidUrl(url, "invalid port");
    int port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9') return InvalidUrl(url, "invalid port");
      port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) return InvalidUrl(url, "invalid port");
    out.default_port = port == out.port;
    out.port = port;
  }
  return out;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == ':') return false;
  }
  return true;
}

// Where body bytes go: HttpResponse::body, or response_file for a 2xx when one was given.
class ResponseSink final : public Http1BodySink {
 public:
  ResponseSink(const Http1ResponseParser& parser, HttpResponse& response, const std::string& path)
      : parser_(parser), response_(response), path_(path) {}
  ~ResponseSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  bool OnBody(std::string_view data) override {
    if (!decided_) {
      decided_ = true;
      if (!path_.empty() && parser_.status() >= 200 && parser_.status() < 300 && !Open()) {
        return false;
      }
    }
    if (fd_ < 0) {
      response_.body.append(data);
      return true;
    }
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        error_ = "cannot write " + path_ + ": " + std::strerror(errno);
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // After the whole response: creates the file for an empty 2xx body ("the object is empty")
  // and closes it, reporting a failed close (a late write error on some file systems).
  bool Finish() {
    if (!path_.empty() && parser_.status() >= 200 && parser_.status() < 300 && fd_ < 0 && !Open()) {
      return false;
    }
    if (fd_ >= 0) {
      int rc = ::close(fd_);
      fd_ = -1;
      if (rc != 0) {
        error_ = "cannot write " + path_ + ": " + std::strerror(errno);
        return false;
      }
    }
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  bool Open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) {
      error_ = "cannot open " + path_ + ": " + std::strerror(errno);
      return false;
    }
    return true;
  }

  const Http1ResponseParser& parser_;
  HttpResponse& response_;
  const std::string& path_;
  bool decided_ = false;
  int fd_ = -1;
  std::string error_;
};

// The request as it goes on the wire, prepared once and sent again unchanged by a retry.
struct PreparedRequest {
  Url url;
  std::string head;               // with the memory body appended when it is small
  std::string_view rest_of_body;  // a memory body too large to coalesce
  int file_fd = -1;               // a FileRange body
  std::uint64_t file_offset = 0;
  std::uint64_t file_length = 0;
  bool head_request = false;
  bool close_requested = false;  // the caller sent Connection: close
  ~PreparedRequest() {
    if (file_fd >= 0) ::close(file_fd);
  }
};

// How one attempt on one connection ended, beyond its result.
struct AttemptOutcome {
  bool response_started = false;  // a response byte arrived: never retry
  bool reusable = false;          // the connection may carry the next exchange
};

}  // namespace

struct Http1Transport::Impl {
  explicit Impl(Http1TransportOptions opts)
      : options(std::move(opts)),
        clock(options.clock != nullptr ? *options.clock : Clock::System()) {}

  struct Pool {
    bool tls;
    std::string host;
    int port;
    std::vector<std::unique_ptr<Http1Connection>> idle;  // oldest first: LIFO from the back
  };

  // An idle connection to `url`'s endpoint that still looks usable, or nullptr.
  std::unique_ptr<Http1Connection> Take(const Url& url) {
    std::vector<std::unique_ptr<Http1Connection>> discard;  // closed outside the lock
    for (;;) {
      std::unique_ptr<Http1Connection> candidate;
      {
        std::lock_guard<std::mutex> lock(mu);
        Pool* pool = Find(url);
        if (pool == nullptr || pool->idle.empty()) return nullptr;
        candidate = std::move(pool->idle.back());
        pool->idle.pop_back();
        if (clock.Monotonic() - candidate->idle_since > options.idle_timeout) {
          // The warmest is too old, so every one below it is too.
          discard.push_back(std::move(candidate));
          for (auto& c : pool->idle) discard.push_back(std::move(c));
          pool->idle.clear();
          return nullptr;
        }
      }
      if (candidate->LooksReusable()) return candidate;
      discard.push_back(std::move(candidate));
    }
  }

  void Put(const Url& url, std::unique_ptr<Http1Connection> connection) {
    if (options.max_idle_per_host <= 0) return;
    connection->idle_since = clock.Monotonic();
    std::unique_ptr<Http1Connection> evicted;
    std::lock_guard<std::mutex> lock(mu);
    Pool* pool = Find(url);
    if (pool == nullptr) {
      pools.push_back(Pool{url.tls, std::string(url.host), url.port, {}});
      pool = &pools.back();
    }
    pool->idle.push_back(std::move(connection));
    if (static_cast<int>(pool->idle.size()) > options.max_idle_per_host) {
      evicted = std::move(pool->idle.front());
      pool->idle.erase(pool->idle.begin());
    }
    // `evicted`, declared before `lock`, is closed after the lock is released.
  }

  Pool* Find(const Url& url) {
    for (Pool& pool : pools) {
      if (pool.port == url.port && pool.tls == url.tls && pool.host == url.host) return &pool;
    }
    return nullptr;
  }

  Result<TlsClient*> Tls() {
    std::lock_guard<std::mutex> lock(tls_mu);
    if (!tls) {
      Result<std::unique_ptr<TlsClient>> created = TlsClient::Create(options.ca_bundle);
      if (!created.ok()) return created.error();
      tls = std::move(*created);
    }
    return tls.get();
  }

  Result<std::unique_ptr<Http1Connection>> Connect(const HttpRequest& request, const Url& url,
                                                   Clock::MonoTime total_deadline) {
    const Clock::MonoTime now = clock.Monotonic();
    const Clock::MonoTime deadline =
        std::min(total_deadline, now + std::max(request.connect_timeout, milliseconds(1)));
    IoBudget budget(clock, deadline, 0, std::chrono::seconds(0), request.stop);
    if (Status stopped = budget.CheckStop(); !stopped.ok()) return stopped.error();
    const std::string host(url.host);  // NUL-terminated for the resolver and OpenSSL
    Result<std::unique_ptr<Http1Connection>> connection =
        ConnectTcp(host, url.port, url.ip_literal,
                   std::chrono::duration_cast<milliseconds>(deadline - now), budget, connections);
    if (!connection.ok() || !url.tls) return connection;
    Result<TlsClient*> tls_client = Tls();
    if (!tls_client.ok()) return tls_client.error();
    Status handshake = (*tls_client)->Handshake(**connection, host, url.ip_literal, budget);
    if (!handshake.ok()) return handshake.error();
    return connection;
  }

  Result<HttpResponse> Attempt(Http1Connection& connection, const PreparedRequest& prepared,
                               const HttpRequest& request, IoBudget& budget,
                               AttemptOutcome& outcome);

  Http1TransportOptions options;
  Clock& clock;
  // Declared before the pool: connections (their SSL objects) must go before the SSL_CTX.
  std::mutex tls_mu;
  std::unique_ptr<TlsClient> tls;  // created on the first https request
  std::mutex mu;
  std::vector<Pool> pools;  // a transport talks to a handful of endpoints: a vector suffices
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> connections{0};
};

Result<HttpResponse> Http1Transport::Impl::Attempt(Http1Connection& connection,
                                                   const PreparedRequest& prepared,
                                                   const HttpRequest& request, IoBudget& budget,
                                                   AttemptOutcome& outcome) {
  budget.set_deadline_context("request to", prepared.url.host, request.timeout);
  if (Status stopped = budget.CheckStop(); !stopped.ok()) return stopped.error();
  Status sent = connection.WriteAll(prepared.head, budget);
  if (sent.ok() && !prepared.rest_of_body.empty()) {
    sent = connection.WriteAll(prepared.rest_of_body, budget);
  }
  if (sent.ok() && prepared.file_fd >= 0) {
    std::unique_ptr<char[]> chunk(new char[static_cast<std::size_t>(
        std::min<std::uint64_t>(kFileChunk, prepared.file_length))]);
    std::uint64_t done = 0;
    while (sent.ok() && done < prepared.file_length) {
      std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>(kFileChunk, prepared.file_length - done));
      ssize_t n = ::pread(prepared.file_fd, chunk.get(), want,
                          static_cast<off_t>(prepared.file_offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // The file shrank under us: Content-Length was promised, so the request must fail.
        return Http1Error(ErrorCategory::kIo, "BodyReadFailed",
                          "request body " + request.body_file->path + ": " +
                              (n < 0 ? std::string("read error: ") + std::strerror(errno)
                                     : std::string("file is shorter than the range to send")));
      }
      sent =
          connection.WriteAll(std::string_view(chunk.get(), static_cast<std::size_t>(n)), budget);
      done += static_cast<std::uint64_t>(n);
    }
  }
  if (!sent.ok()) return sent.error();

  HttpResponse response;
  response.headers.reserve(12);
  Http1ResponseParser parser(prepared.head_request, &response.headers);
  ResponseSink sink(parser, response, request.response_file);
  char* buffer = connection.buffer();
  std::size_t begin = 0, end = 0;
  bool eof = false;
  while (!parser.done()) {
    if (begin == end) {
      begin = end = 0;
    } else if (end == Http1Connection::kBufferSize) {
      // Only a partial head line is ever left unconsumed, and the parser fails before one
      // fills the buffer, so this move is rare and short.
      std::memmove(buffer, buffer + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    Result<std::size_t> got = connection.Read(buffer + end, Http1Connection::kBufferSize - end,
                                              budget, !outcome.response_started);
    if (!got.ok()) return got.error();
    if (*got == 0) {
      eof = true;
      if (!parser.FinishAtEof()) {
        return Http1Error(ErrorCategory::kTransient, "ConnectionFailed", parser.error());
      }
      break;
    }
    outcome.response_started = true;
    end += *got;
    std::ptrdiff_t used = parser.Feed(std::string_view(buffer + begin, end - begin), sink);
    if (used < 0) {
      if (!sink.error().empty()) {
        return Http1Error(ErrorCategory::kIo, "ResponseWriteFailed", sink.error());
      }
      return Http1Error(ErrorCategory::kTransient, "ConnectionFailed",
                        "malformed response: " + parser.error());
    }
    begin += static_cast<std::size_t>(used);
  }
  if (!sink.Finish()) return Http1Error(ErrorCategory::kIo, "ResponseWriteFailed", sink.error());
  // Bytes after the response were never asked for (we do not pipeline): the connection's
  // state is unknown, so it is not reused.
  outcome.reusable = !eof && begin == end && parser.keep_alive() && !prepared.close_requested;
  response.status = parser.status();
  return response;
}

Http1Transport::Http1Transport(Http1TransportOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

Http1Transport::~Http1Transport() = default;

Http1Transport::Stats Http1Transport::stats() const {
  return Stats{impl_->requests.load(), impl_->connections.load()};
}

Result<HttpResponse> Http1Transport::Send(const HttpRequest& request) {
  PreparedRequest prepared;
  Result<Url> url = ParseUrl(request.url);
  if (!url.ok()) return url.error();
  prepared.url = std::move(*url);
  const std::string& method = request.method;
  if (!IsToken(method)) {
    return Http1Error(ErrorCategory::kInvalidInput, "InvalidMethod",
                      "invalid HTTP method \"" + method + "\"");
  }
  prepared.head_request = method == "HEAD";

  // The body, from a file range or from memory; its size is always known up front. The file
  // is opened before connecting so a missing file costs no connection.
  std::uint64_t body_length = request.body.size();
  if (request.body_file) {
    const FileRange& range = *request.body_file;
    prepared.file_fd = ::open(range.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (prepared.file_fd < 0) {
      return Http1Error(ErrorCategory::kIo, "BodyReadFailed",
                        "cannot open " + range.path + ": " + std::strerror(errno));
    }
    struct stat st;
    if (::fstat(prepared.file_fd, &st) == 0 && S_ISREG(st.st_mode) &&
        static_cast<std::uint64_t>(st.st_size) < range.offset + range.length) {
      return Http1Error(ErrorCategory::kIo, "BodyReadFailed",
                        "request body " + range.path + ": file is shorter than the range to send");
    }
    prepared.file_offset = range.offset;
    prepared.file_length = range.length;
    body_length = range.length;
  }

  // The head, in one buffer: exactly the given headers (the caller signed them), plus Host and
  // Content-Length when the caller left them out.
  std::size_t size = method.size() + prepared.url.target.size() + prepared.url.host.size() + 64;
  for (const auto& [name, value] : request.headers) size += name.size() + value.size() + 4;
  const bool coalesce = !request.body_file && request.body.size() <= kCoalesceLimit;
  if (coalesce) size += request.body.size();
  std::string& head = prepared.head;
  head.reserve(size);
  head.append(method)
      .append(prepared.url.slash_first ? " /" : " ")
      .append(prepared.url.target)
      .append(" HTTP/1.1\r\n");
  bool has_host = false, has_length = false;
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return Http1Error(ErrorCategory::kInvalidInput, "InvalidHeader",
                        "header " + name + " contains a line break or colon");
    }
    if (EqualsIgnoreCase(name, "host")) has_host = true;
    if (EqualsIgnoreCase(name, "content-length")) has_length = true;
    if (EqualsIgnoreCase(name, "connection") && Lower(value).find("close") != std::string::npos) {
      prepared.close_requested = true;
    }
    head.append(name).append(value.empty() ? ":" : ": ").append(value).append("\r\n");
  }
  if (!has_host) {
    head.append("Host: ");
    if (prepared.url.ipv6) {
      head.append("[").append(prepared.url.host).append("]");
    } else {
      head.append(prepared.url.host);
    }
    if (!prepared.url.default_port) head.append(":").append(std::to_string(prepared.url.port));
    head.append("\r\n");
  }
  if (!has_length &&
      (body_length > 0 || request.body_file || method == "POST" || method == "PUT")) {
    head.append("Content-Length: ").append(std::to_string(body_length)).append("\r\n");
  }
  head.append("\r\n");
  if (!request.body_file) {
    if (coalesce) {
      head.append(request.body);
    } else {
      prepared.rest_of_body = request.body;
    }
  }

  impl_->requests.fetch_add(1, std::memory_order_relaxed);
  Clock& clock = impl_->clock;
  const Clock::MonoTime total_deadline =
      request.timeout.count() > 0 ? clock.Monotonic() + request.timeout : Clock::MonoTime::max();

  std::unique_ptr<Http1Connection> connection = impl_->Take(prepared.url);
  const bool reused = connection != nullptr;
  if (!reused) {
    Result<std::unique_ptr<Http1Connection>> fresh =
        impl_->Connect(request, prepared.url, total_deadline);
    if (!fresh.ok()) return fresh.error();
    connection = std::move(*fresh);
  }
  IoBudget budget(clock, total_deadline, request.low_speed_bytes, request.low_speed_time,
                  request.stop);
  AttemptOutcome outcome;
  Result<HttpResponse> result = impl_->Attempt(*connection, prepared, request, budget, outcome);
  if (!result.ok() && reused && !outcome.response_started &&
      result.error().code == "ConnectionFailed") {
    // A pooled connection died before any response byte: the server closed it while it sat
    // idle (its keep-alive timer raced our request past the liveness check). The server read
    // nothing of this request, or dropped it unanswered the way it drops an idle connection,
    // so sending it again on a fresh connection is what curl and browsers do. Only once, and
    // only for a reused connection: a fresh one failing this way is a real failure. The body
    // is re-sent from memory or re-read from its file range.
    connection.reset();
    Result<std::unique_ptr<Http1Connection>> fresh =
        impl_->Connect(request, prepared.url, total_deadline);
    if (!fresh.ok()) return fresh.error();
    connection = std::move(*fresh);
    outcome = AttemptOutcome{};
    IoBudget retry_budget(clock, total_deadline, request.low_speed_bytes, request.low_speed_time,
                          request.stop);
    result = impl_->Attempt(*connection, prepared, request, retry_budget, outcome);
  }
  if (result.ok() && outcome.reusable) impl_->Put(prepared.url, std::move(connection));
  return result;
}

std::shared_ptr<HttpTransport> MakeHttp1Transport(Http1TransportOptions options) {
  return std::make_shared<Http1Transport>(std::move(options));
}

}  // namespace spotgrid
