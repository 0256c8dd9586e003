#include "spotgrid/http/curl_transport.h"

#include <curl/curl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/strings.h"
#include "spotgrid/core/clock.h"

namespace spotgrid {
namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  // curl_global_init is not thread-safe itself; call_once makes the first transport race-free.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One caller's transfer machinery: a multi handle (which owns the cache of live keep-alive
// connections) and the easy handle it drives, released together (libcpr style); the easy
// handle is attached to the multi only during a Send(). Neither copied nor moved.
class Slot {
 public:
  static std::unique_ptr<Slot> Create(long max_connections) {
    auto slot = std::unique_ptr<Slot>(new Slot());
    slot->multi_ = curl_multi_init();
    slot->easy_ = curl_easy_init();
    if (slot->multi_ == nullptr || slot->easy_ == nullptr) return nullptr;
    curl_multi_setopt(slot->multi_, CURLMOPT_MAXCONNECTS, max_connections);
    return slot;
  }
  ~Slot() {
    if (easy_ != nullptr) curl_easy_cleanup(easy_);
    if (multi_ != nullptr) curl_multi_cleanup(multi_);  // closes the cached connections
  }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  CURLM* multi() const { return multi_; }
  CURL* easy() const { return easy_; }

 private:
  Slot() = default;
  CURLM* multi_ = nullptr;
  CURL* easy_ = nullptr;
};

// The header lines for CURLOPT_HTTPHEADER, all in one buffer: curl only reads the list, so
// its nodes need not come from curl_slist_append (two allocations per line, and as many frees).
class HeaderLines {
 public:
  explicit HeaderLines(std::size_t lines, std::size_t bytes) {
    text_.reserve(bytes);  // never reallocated: nodes point into it
    nodes_.reserve(lines);
  }
  // "Name: value", or "Name;" (curl's syntax for an empty value), or "Name:" (send no Name).
  void Add(std::string_view name, std::string_view separator, std::string_view value) {
    std::size_t offset = text_.size();
    text_.append(name).append(separator).append(value).push_back('\0');
    nodes_.push_back(curl_slist{text_.data() + offset, nullptr});
  }
  curl_slist* List() {
    for (std::size_t i = 0; i + 1 < nodes_.size(); ++i) nodes_[i].next = &nodes_[i + 1];
    return nodes_.empty() ? nullptr : nodes_.data();
  }

 private:
  std::string text_;
  std::vector<curl_slist> nodes_;
};

// HTTP optional whitespace around a header value (and the line's CRLF); unlike TrimView it
// leaves other control characters alone.
std::string_view TrimHeaderField(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) {
    --e;
  }
  return s.substr(b, e - b);
}

// Everything the callbacks of one transfer need.
struct Transfer {
  // Request body: either memory or a file range.
  std::string_view memory_body;
  FILE* body_file = nullptr;
  std::uint64_t body_offset = 0;  // start of the range in body_file
  std::uint64_t body_length = 0;
  std::uint64_t body_sent = 0;
  std::string body_error;

  // Response.
  CURL* handle = nullptr;
  HttpResponse* response = nullptr;
  const std::string* response_file = nullptr;
  FILE* out_file = nullptr;
  bool decided_sink = false;
  bool to_file = false;
  std::string write_error;
};

std::size_t ReadCallback(char* buffer, std::size_t size, std::size_t nitems, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  std::size_t want = size * nitems;
  std::uint64_t left = t->body_length - t->body_sent;
  std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(want, left));
  if (n == 0) return 0;
  if (t->body_file == nullptr) {
    std::memcpy(buffer, t->memory_body.data() + t->body_sent, n);
  } else {
    std::size_t got = std::fread(buffer, 1, n, t->body_file);
    if (got == 0) {
      // The file shrank under us: Content-Length was promised, so the request must fail.
      t->body_error = std::ferror(t->body_file) ? std::string("read error: ") + strerror(errno)
                                                : "file is shorter than the range to send";
      return CURL_READFUNC_ABORT;
    }
    n = got;
  }
  t->body_sent += n;
  return n;
}

// libcurl rewinds the body when it must resend it (e.g. a reused connection that turned out
// to be closed by the server).
int SeekCallback(void* userdata, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(userdata);
  if (origin != SEEK_SET || offset < 0 || static_cast<std::uint64_t>(offset) > t->body_length) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  if (t->body_file != nullptr &&
      fseeko(t->body_file, static_cast<off_t>(t->body_offset + offset), SEEK_SET) != 0) {
    return CURL_SEEKFUNC_FAIL;
  }
  t->body_sent = static_cast<std::uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

std::size_t HeaderCallback(char* buffer, std::size_t size, std::size_t nitems, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  std::size_t n = size * nitems;
  std::string_view line(buffer, n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new status line (after 100 Continue or an interim response): start over.
    t->response->headers.clear();
    return n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return n;  // blank line or junk
  auto& [name, value] = t->response->headers.emplace_back(TrimHeaderField(line.substr(0, colon)),
                                                          TrimHeaderField(line.substr(colon + 1)));
  for (char& c : name) c = AsciiLower(c);
  return n;
}

std::size_t WriteCallback(char* data, std::size_t size, std::size_t nmemb, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  std::size_t n = size * nmemb;
  if (!t->decided_sink) {
    t->decided_sink = true;
    long status = 0;
    curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &status);
    if (!t->response_file->empty() && status >= 200 && status < 300) {
      t->out_file = std::fopen(t->response_file->c_str(), "wb");
      if (t->out_file == nullptr) {
        t->write_error = "cannot open " + *t->response_file + ": " + strerror(errno);
        return 0;
      }
      t->to_file = true;
    }
  }
  if (!t->to_file) {
    t->response->body.append(data, n);
    return n;
  }
  if (std::fwrite(data, 1, n, t->out_file) != n) {
    t->write_error = "cannot write " + *t->response_file + ": " + strerror(errno);
    return 0;
  }
  return n;
}

Error TransportError(ErrorCategory category, std::string code, std::string message) {
  Error e;
  e.category = category;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

Error FromCurlCode(CURLcode rc, const char* errbuf) {
  std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError(ErrorCategory::kTransient, "Timeout", detail);
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:  // handshake cut off: a network problem, not verification
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
      return TransportError(ErrorCategory::kTransient, "ConnectionFailed", detail);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
      return TransportError(ErrorCategory::kClient, "TlsError", detail);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return TransportError(ErrorCategory::kClient, "InvalidUrl", detail);
    default:
      return TransportError(ErrorCategory::kTransient, "TransportError", detail);
  }
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool IsPort(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  long port = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
  }
  return port >= 1 && port <= 65535;
}

// What is wrong with `url`, or "" when it has the form the client core produces:
// "http[s]://host[:port][/path][?query]", already percent-encoded, host a DNS name, an IPv4
// address or a bracketed IPv6 address. Checked before curl sees it: libcurl would guess
// "http://" for a URL without a scheme, and a bad URL must fail without a connection.
std::string UrlProblem(std::string_view url) {
  std::size_t authority_start = 0;
  if (url.size() >= 7 && EqualsIgnoreCase(url.substr(0, 7), "http://")) {
    authority_start = 7;
  } else if (url.size() >= 8 && EqualsIgnoreCase(url.substr(0, 8), "https://")) {
    authority_start = 8;
  } else {
    return "the scheme must be http:// or https://";
  }
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return "it contains a space, control or non-ASCII character";
  }
  std::string_view authority = url.substr(authority_start);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) return "user info is not allowed";
  std::string_view host = authority, port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return "unterminated IPv6 address";
    std::string_view inside = authority.substr(1, close - 1);
    if (inside.empty() ||
        inside.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) {
      return "bad IPv6 address";
    }
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "junk after the IPv6 address";
      has_port = true;
      port = after.substr(1);
    }
  } else {
    if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
      has_port = true;
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    if (host.empty()) return "no host";
    for (char c : host) {
      if (!IsHostChar(c)) return "bad host name";
    }
  }
  if (has_port && !IsPort(port)) return "bad port";
  return "";
}

// `message` with every occurrence of `secret` replaced; a defence in depth for proxy
// credentials (curl is never given them inside a URL, so its messages should not hold them).
std::string Redact(std::string message, const std::string& secret) {
  if (secret.empty()) return message;
  for (auto at = message.find(secret); at != std::string::npos; at = message.find(secret, at + 3)) {
    message.replace(at, secret.size(), "***");
  }
  return message;
}

}  // namespace

struct CurlTransport::Impl {
  explicit Impl(CurlTransportOptions opts) : options(std::move(opts)) {
    GlobalInitOnce();
    share = curl_share_init();
    if (share != nullptr) {
      curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Impl::Lock);
      curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Impl::Unlock);
      curl_share_setopt(share, CURLSHOPT_USERDATA, this);
      curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
      curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
  }

  ~Impl() {
    // Slots (and the connections they cache) must go before the share they use.
    idle.clear();
    if (share != nullptr) curl_share_cleanup(share);
  }

  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* userptr) {
    static_cast<Impl*>(userptr)->locks[static_cast<std::size_t>(data) % kLockSlots].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* userptr) {
    static_cast<Impl*>(userptr)->locks[static_cast<std::size_t>(data) % kLockSlots].unlock();
  }

  std::unique_ptr<Slot> Borrow() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!idle.empty()) {
        std::unique_ptr<Slot> slot = std::move(idle.back());
        idle.pop_back();
        return slot;
      }
    }
    std::unique_ptr<Slot> slot = Slot::Create(options.max_connections_per_slot);
    if (slot) SetConstantOptions(slot->easy());
    return slot;
  }

  // What every request on a handle has in common, set once per handle: a per-request
  // curl_easy_reset() and re-setting these cost a noticeable part of a small request's CPU.
  void SetConstantOptions(CURL* h) const {
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    // Without this, a transfer that times out (or is stopped) while the threaded resolver is
    // still inside getaddrinfo() joins that thread: the connect timeout would stretch to
    // glibc's DNS timeout (5 s per server and try). With it the thread is detached and frees
    // itself when getaddrinfo() returns (the DNS sandbox test in http_transport_test.cc).
    curl_easy_setopt(h, CURLOPT_QUICK_EXIT, 1L);
    if (share != nullptr) curl_easy_setopt(h, CURLOPT_SHARE, share);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options.ca_bundle.empty()) {
      // Only the bundle, as botocore trusts only the bundle it is given.
      curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_bundle.c_str());
      curl_easy_setopt(h, CURLOPT_CAPATH, nullptr);
    } else {
      // The hashed directory alone: issuers are loaded on demand (see the header).
      curl_easy_setopt(h, CURLOPT_CAINFO, nullptr);
      if (!options.ca_directory.empty()) {
        curl_easy_setopt(h, CURLOPT_CAPATH, options.ca_directory.c_str());
      }
    }
    // libcurl's own reading of no_proxy never applies (see proxy_config.h for the rules);
    // CURLOPT_PROXY is set on every request, "" for none.
    curl_easy_setopt(h, CURLOPT_NOPROXY, "");
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &HeaderCallback);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &WriteCallback);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &ReadCallback);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &SeekCallback);
  }

  void Return(std::unique_ptr<Slot> slot) {
    std::unique_lock<std::mutex> lock(mu);
    if (static_cast<int>(idle.size()) < options.max_idle_slots) {
      idle.push_back(std::move(slot));
      return;
    }
    lock.unlock();  // closing its connections happens outside the lock
  }

  static constexpr std::size_t kLockSlots = 16;
  CurlTransportOptions options;
  CURLSH* share = nullptr;
  std::array<std::mutex, kLockSlots> locks;
  std::mutex mu;
  std::vector<std::unique_ptr<Slot>> idle;  // LIFO: the warmest slot is reused first
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> connections{0};
};

namespace {

// How a driven transfer ended.
struct Outcome {
  CURLcode rc = CURLE_OK;
  bool cancelled = false;
  std::string multi_error;  // a CURLM error: the multi interface itself failed
};

// Runs the slot's attached transfer to its end, or until `stop` is raised. curl_multi_poll
// waits on curl's sockets, on curl's own timers (connect, total and low-speed timeouts) and
// on the stop's eventfd, so a stop ends the wait at once. Without an eventfd (the system
// refused one) the wait is sliced into 50 ms polls.
Outcome Drive(CURLM* multi, CURL* easy, const StopSource* stop) {
  Outcome outcome;
  const int wake_fd = stop != nullptr ? stop->WakeFd() : -1;
  curl_waitfd extra{};
  extra.fd = wake_fd;
  extra.events = CURL_WAIT_POLLIN;
  const int wait_ms = (stop != nullptr && wake_fd < 0) ? 50 : 1000;
  while (true) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc != CURLM_OK) {
      outcome.multi_error = curl_multi_strerror(mc);
      return outcome;
    }
    if (running == 0) break;
    if (stop != nullptr && stop->Requested()) {
      outcome.cancelled = true;
      return outcome;
    }
    mc = curl_multi_poll(multi, wake_fd >= 0 ? &extra : nullptr, wake_fd >= 0 ? 1u : 0u, wait_ms,
                         nullptr);
    if (mc != CURLM_OK) {
      outcome.multi_error = curl_multi_strerror(mc);
      return outcome;
    }
  }
  int left = 0;
  outcome.rc = CURLE_GOT_NOTHING;
  while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) outcome.rc = msg->data.result;
  }
  return outcome;
}

}  // namespace

CurlTransport::CurlTransport(CurlTransportOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

CurlTransport::~CurlTransport() = default;

CurlTransport::Stats CurlTransport::stats() const {
  return Stats{impl_->requests.load(), impl_->connections.load()};
}

namespace {

// One exchange's state from Prepare() to Finish(): what curl's callbacks write into and the
// buffers curl reads from while the transfer runs. Pinned in memory (curl holds pointers).
struct Exchange {
  Exchange() { errbuf[0] = '\0'; }
  ~Exchange() {
    if (t.body_file != nullptr) std::fclose(t.body_file);
    if (t.out_file != nullptr) std::fclose(t.out_file);
  }
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  HttpResponse response;
  Transfer t;
  ProxyRoute route;
  std::optional<HeaderLines> headers;
  bool memory_body = false;
  char errbuf[CURL_ERROR_SIZE];
};

// Checks what can be checked locally, before a connection or a file is touched, then sets up
// `h` for `request` (which must outlive the transfer). An error means nothing was sent.
Status Prepare(const CurlTransportOptions& options, CURL* h, const HttpRequest& request,
               Exchange& ex) {
  if (std::string problem = UrlProblem(request.url); !problem.empty()) {
    return TransportError(ErrorCategory::kClient, "InvalidUrl",
                          "cannot send to " + request.url + ": " + problem);
  }
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || name.find_first_of("\r\n: \t") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return TransportError(ErrorCategory::kInvalidInput, "InvalidHeader",
                            "header '" + name +
                                "' has an empty name, or a line break, colon or "
                                "space where none is allowed");
    }
  }
  Result<ProxyRoute> route = ChooseProxy(options.proxies, request.url);
  if (!route.ok()) return route.error();
  ex.route = std::move(route).value();
  if (request.stop != nullptr && request.stop->Requested()) {
    return TransportError(ErrorCategory::kCancelled, "Cancelled", "cancelled by shutdown");
  }

  Transfer& t = ex.t;
  ex.response.headers.reserve(12);
  t.response = &ex.response;
  t.response_file = &request.response_file;
  t.handle = h;

  // The body, from a file range or from memory; its size is always known up front.
  bool has_body = false;
  if (request.body_file) {
    const FileRange& range = *request.body_file;
    t.body_file = std::fopen(range.path.c_str(), "rb");
    if (t.body_file == nullptr) {
      return TransportError(ErrorCategory::kIo, "BodyReadFailed",
                            "cannot open " + range.path + ": " + strerror(errno));
    }
    if (fseeko(t.body_file, static_cast<off_t>(range.offset), SEEK_SET) != 0) {
      return TransportError(ErrorCategory::kIo, "BodyReadFailed",
                            "cannot seek " + range.path + ": " + strerror(errno));
    }
    t.body_offset = range.offset;
    t.body_length = range.length;
    has_body = true;
  } else {
    t.memory_body = request.body;
    t.body_length = request.body.size();
    has_body = !request.body.empty();
  }

  // Every option a previous request may have set differently is set again below; the
  // constant ones were set when the handle was made (Impl::SetConstantOptions).
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ex.errbuf);
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROXY, ex.route.url.c_str());  // "" = direct
  const bool proxy_auth = !ex.route.username.empty();
  curl_easy_setopt(h, CURLOPT_PROXYAUTH, static_cast<long>(CURLAUTH_BASIC));
  curl_easy_setopt(h, CURLOPT_PROXYUSERNAME, proxy_auth ? ex.route.username.c_str() : nullptr);
  curl_easy_setopt(h, CURLOPT_PROXYPASSWORD, proxy_auth ? ex.route.password.c_str() : nullptr);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<long long>(1, request.connect_timeout.count())));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  const bool low_speed = request.low_speed_bytes > 0 && request.low_speed_time.count() > 0;
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, low_speed ? request.low_speed_bytes : 0L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                   low_speed ? static_cast<long>(request.low_speed_time.count()) : 0L);

  // Method and body. Content-Length always comes from the known size, never chunked.
  const std::string& method = request.method;
  // A body held in memory is handed to curl whole (it is not copied): a small one then leaves
  // in the same send() as the headers, where the read callback would cost a second one (and on
  // loopback each send also runs the receiver's TCP stack on this CPU). curl resends it by
  // itself when a reused connection turns out to be dead.
  ex.memory_body = !request.body_file && method != "HEAD" && (has_body || method == "POST");
  // HTTPGET resets what a previous request's method left (upload, no-body, POST).
  curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, nullptr);
  curl_easy_setopt(h, CURLOPT_READDATA, &t);
  curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
  if (method == "GET" && !has_body) {
    // HTTPGET above.
  } else if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (ex.memory_body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body_length));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
    if (method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body_length));
  } else if (method == "PUT" || has_body) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.body_length));
    if (method != "PUT") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  // Exactly the given headers: the caller signed them. Remove what curl would add on its own
  // (Expect: 100-continue, a default form Content-Type, Accept: */*).
  std::size_t header_bytes = 32;
  for (const auto& [name, value] : request.headers) header_bytes += name.size() + value.size() + 3;
  HeaderLines& headers = ex.headers.emplace(request.headers.size() + 3, header_bytes + 32);
  bool has_content_type = false, has_accept = false;
  for (const auto& [name, value] : request.headers) {
    if (EqualsIgnoreCase(name, "content-type")) has_content_type = true;
    if (EqualsIgnoreCase(name, "accept")) has_accept = true;
    headers.Add(name, value.empty() ? ";" : ": ", value);
  }
  headers.Add("Expect", ":", "");
  if (!has_content_type) headers.Add("Content-Type", ":", "");
  if (!has_accept) headers.Add("Accept", ":", "");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.List());

  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  return Status::Ok();
}

// The exchange's result once its transfer ended (or was abandoned and detached from its
// multi). Leaves `h` holding no pointer into `ex` or `request`.
Result<HttpResponse> Finish(std::atomic<std::uint64_t>& connections, CURL* h,
                            const HttpRequest& request, Exchange& ex, const Outcome& outcome) {
  Transfer& t = ex.t;
  long connects = 0;
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
  connections.fetch_add(static_cast<std::uint64_t>(std::max(0L, connects)),
                        std::memory_order_relaxed);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  if (ex.memory_body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);

  bool file_ok = true;
  if (t.out_file != nullptr) {
    file_ok = std::fclose(t.out_file) == 0;
    t.out_file = nullptr;
    if (!file_ok && t.write_error.empty()) {
      t.write_error = "cannot write " + request.response_file + ": " + strerror(errno);
    }
  }

  if (outcome.cancelled) {
    return TransportError(ErrorCategory::kCancelled, "Cancelled", "cancelled by shutdown");
  }
  if (!t.body_error.empty()) {
    return TransportError(ErrorCategory::kIo, "BodyReadFailed",
                          "request body " + request.body_file->path + ": " + t.body_error);
  }
  if (!t.write_error.empty()) {
    return TransportError(ErrorCategory::kIo, "ResponseWriteFailed", t.write_error);
  }
  if (!outcome.multi_error.empty()) {
    return TransportError(ErrorCategory::kTransient, "TransportError",
                          "libcurl: " + outcome.multi_error);
  }
  if (outcome.rc != CURLE_OK) {
    Error e = FromCurlCode(outcome.rc, ex.errbuf);
    if (!ex.route.direct()) {
      e.message = Redact(Redact(std::move(e.message), ex.route.password), ex.route.username) +
                  " (through the proxy " + ex.route.url + ")";
    }
    return e;
  }

  ex.response.status = static_cast<int>(status);
  if (!request.response_file.empty() && status >= 200 && status < 300 && !t.to_file) {
    // An empty 2xx body still means "the object is empty": create the file.
    FILE* f = std::fopen(request.response_file.c_str(), "wb");
    if (f == nullptr || std::fclose(f) != 0) {
      return TransportError(ErrorCategory::kIo, "ResponseWriteFailed",
                            "cannot create " + request.response_file + ": " + strerror(errno));
    }
  }
  return std::move(ex.response);
}

}  // namespace

Result<HttpResponse> CurlTransport::Send(const HttpRequest& request) {
  std::unique_ptr<Slot> slot = impl_->Borrow();
  if (!slot) {
    return TransportError(ErrorCategory::kTransient, "TransportError",
                          "libcurl could not create a handle");
  }
  CURL* h = slot->easy();
  Exchange ex;
  if (Status prepared = Prepare(impl_->options, h, request, ex); !prepared.ok()) {
    impl_->Return(std::move(slot));
    return prepared.error();
  }
  Outcome outcome;
  if (CURLMcode mc = curl_multi_add_handle(slot->multi(), h); mc != CURLM_OK) {
    outcome.multi_error = curl_multi_strerror(mc);
  } else {
    impl_->requests.fetch_add(1, std::memory_order_relaxed);
    outcome = Drive(slot->multi(), h, request.stop);
    // Detaching an unfinished transfer (a stop) closes its connection: it is never reused
    // with a response still owed on it.
    curl_multi_remove_handle(slot->multi(), h);
  }
  Result<HttpResponse> result = Finish(impl_->connections, h, request, ex, outcome);
  impl_->Return(std::move(slot));
  return result;
}

namespace {

// CurlTransport's HttpMulti: one multi handle (and so one cache of keep-alive connections)
// for all the exchanges, and easy handles kept for reuse.
//
// Driven with libcurl's socket interface: curl tells which sockets to watch (an epoll set)
// and when its next timer is due, and each wake-up hands curl only the sockets that are
// ready. (curl_multi_perform would visit every transfer on every wake-up and probe each
// socket with a poll of its own: with 64 exchanges in flight and one answer per wake-up,
// that was most of a request's client CPU.) A wait is one poll() over the epoll set, an
// eventfd for Wake() and the stops' eventfds.
class CurlMulti final : public HttpMulti {
 public:
  CurlMulti(CurlTransport::Impl& impl, CURLM* multi, int epoll_fd, int wake_fd)
      : impl_(impl), multi_(multi), epoll_fd_(epoll_fd), wake_fd_(wake_fd) {
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlMulti::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlMulti::OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  }
  ~CurlMulti() override {
    for (auto& [easy, active] : active_) {
      curl_multi_remove_handle(multi_, easy);
      curl_easy_cleanup(easy);
    }
    for (CURL* easy : idle_) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);  // may still report sockets to forget: before the fds close
    ::close(epoll_fd_);
    ::close(wake_fd_);
  }

  void Start(std::uint64_t tag, HttpRequest request) override {
    CURL* h = TakeHandle();
    if (h == nullptr) {
      ended_.push_back(Ended{tag, TransportError(ErrorCategory::kTransient, "TransportError",
                                                 "libcurl could not create a handle")});
      return;
    }
    auto active = std::make_unique<Active>();
    active->tag = tag;
    active->request = std::move(request);
    if (Status prepared = Prepare(impl_.options, h, active->request, active->exchange);
        !prepared.ok()) {
      idle_.push_back(h);
      ended_.push_back(Ended{tag, prepared.error()});
      return;
    }
    if (CURLMcode mc = curl_multi_add_handle(multi_, h); mc != CURLM_OK) {
      Outcome outcome;
      outcome.multi_error = curl_multi_strerror(mc);
      End(h, *active, outcome);
      return;
    }
    impl_.requests.fetch_add(1, std::memory_order_relaxed);
    active_.emplace(h, std::move(active));
  }

  std::vector<Ended> Poll(std::chrono::milliseconds wait) override {
    RunDueTimer();
    if (ended_.empty()) {
      using Steady = std::chrono::steady_clock;
      long long wait_ms = std::clamp<long long>(wait.count(), 0, 60000);
      if (timer_due_) {
        const auto until = std::chrono::ceil<std::chrono::milliseconds>(*timer_due_ - Steady::now());
        wait_ms = std::clamp<long long>(until.count(), 0, wait_ms);
      }
      std::vector<pollfd>& fds = poll_fds_;  // kept: no allocation per wake-up
      fds.assign({{epoll_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}});
      for (const auto& [easy, active] : active_) {
        const StopSource* stop = active->request.stop;
        if (stop != nullptr && stop->WakeFd() >= 0) fds.push_back({stop->WakeFd(), POLLIN, 0});
      }
      int ready = ::poll(fds.data(), fds.size(), static_cast<int>(wait_ms));
      if (ready > 0 && (fds[1].revents & POLLIN) != 0) {
        std::uint64_t count = 0;
        (void)!::read(wake_fd_, &count, sizeof count);
      }
      if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
        std::array<epoll_event, 64> events;
        const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 0);
        for (int i = 0; i < n; ++i) {
          int mask = 0;
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) mask |= CURL_CSELECT_IN;
          if (events[i].events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
          if (events[i].events & EPOLLERR) mask |= CURL_CSELECT_ERR;
          Act(events[i].data.fd, mask);
        }
      }
      RunDueTimer();
    }
    EndStopped();
    return std::exchange(ended_, {});
  }

  std::size_t active() const override { return active_.size() + ended_.size(); }

  void Wake() override {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }

 private:
  struct Active {
    std::uint64_t tag = 0;
    HttpRequest request;
    Exchange exchange;
  };

  static int OnSocket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
    auto* self = static_cast<CurlMulti*>(userp);
    if (what == CURL_POLL_REMOVE) {
      ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
      return 0;
    }
    epoll_event event{};
    event.data.fd = fd;
    if (what & CURL_POLL_IN) event.events |= EPOLLIN;
    if (what & CURL_POLL_OUT) event.events |= EPOLLOUT;
    if (::epoll_ctl(self->epoll_fd_, EPOLL_CTL_MOD, fd, &event) != 0 && errno == ENOENT) {
      ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, fd, &event);
    }
    return 0;
  }

  static int OnTimer(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<CurlMulti*>(userp);
    if (timeout_ms < 0) {
      self->timer_due_.reset();
    } else {
      self->timer_due_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    }
    return 0;
  }

  // Lets curl act on `fd` (or on its timers, CURL_SOCKET_TIMEOUT), then collects what ended.
  void Act(curl_socket_t fd, int mask) {
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(multi_, fd, mask, &running);
    if (mc != CURLM_OK) multi_error_ = curl_multi_strerror(mc);
    Collect();
  }

  // curl's timer, while it is due (acting on it may set it to "now" again).
  void RunDueTimer() {
    for (int round = 0; round < 8 && timer_due_ && *timer_due_ <= std::chrono::steady_clock::now();
         ++round) {
      timer_due_.reset();
      Act(CURL_SOCKET_TIMEOUT, 0);
    }
  }

  CURL* TakeHandle() {
    if (!idle_.empty()) {
      CURL* h = idle_.back();
      idle_.pop_back();
      return h;
    }
    CURL* h = curl_easy_init();
    if (h != nullptr) impl_.SetConstantOptions(h);
    return h;
  }

  void Collect() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* h = msg->easy_handle;
      Outcome outcome;
      outcome.rc = msg->data.result;
      curl_multi_remove_handle(multi_, h);
      auto it = active_.find(h);
      if (it == active_.end()) continue;
      std::unique_ptr<Active> active = std::move(it->second);
      active_.erase(it);
      End(h, *active, outcome);
    }
  }

  // Stopped exchanges are abandoned (their connections closed); a multi failure ends all.
  void EndStopped() {
    const std::string multi_error = std::exchange(multi_error_, "");
    for (auto it = active_.begin(); it != active_.end();) {
      const StopSource* stop = it->second->request.stop;
      const bool stopped = stop != nullptr && stop->Requested();
      if (!stopped && multi_error.empty()) {
        ++it;
        continue;
      }
      CURL* h = it->first;
      std::unique_ptr<Active> active = std::move(it->second);
      it = active_.erase(it);
      curl_multi_remove_handle(multi_, h);
      Outcome outcome;
      outcome.cancelled = stopped;
      if (!stopped) outcome.multi_error = multi_error;
      End(h, *active, outcome);
    }
  }

  void End(CURL* h, Active& active, const Outcome& outcome) {
    ended_.push_back(
        Ended{active.tag, Finish(impl_.connections, h, active.request, active.exchange, outcome)});
    idle_.push_back(h);
  }

  CurlTransport::Impl& impl_;
  CURLM* multi_;
  int epoll_fd_;
  int wake_fd_;
  std::optional<std::chrono::steady_clock::time_point> timer_due_;
  std::string multi_error_;
  std::vector<pollfd> poll_fds_;
  std::map<CURL*, std::unique_ptr<Active>> active_;
  std::vector<CURL*> idle_;
  std::vector<Ended> ended_;
};

}  // namespace

std::unique_ptr<HttpMulti> CurlTransport::NewMulti() {
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return HttpTransport::NewMulti();
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  const int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd < 0 || wake_fd < 0) {
    if (epoll_fd >= 0) ::close(epoll_fd);
    if (wake_fd >= 0) ::close(wake_fd);
    curl_multi_cleanup(multi);
    return HttpTransport::NewMulti();
  }
  // Idle keep-alive connections kept for the next exchanges: as many as a window of
  // concurrent exchanges uses (libcurl's default would close connections beyond 4x the
  // number of transfers added, which is the same bound).
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, impl_->options.max_idle_slots);
  return std::make_unique<CurlMulti>(*impl_, multi, epoll_fd, wake_fd);
}

std::shared_ptr<HttpTransport> MakeCurlTransport(CurlTransportOptions options) {
  return std::make_shared<CurlTransport>(std::move(options));
}

}  // namespace spotgrid
