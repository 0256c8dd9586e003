#include "spotgrid/http/curl_transport.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/strings.h"

namespace spotgrid {
namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  // curl_global_init is not thread-safe itself; call_once makes the first Send() race-free.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Closes an easy handle; the RAII holder for one handle (libcpr style).
struct EasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;

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

  const StopSource* stop = nullptr;
};

// curl calls this at least once a second while a transfer waits, so a stop is noticed within
// a second even in the middle of a long poll.
int ProgressCallback(void* userdata, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(userdata)->stop->Requested() ? 1 : 0;
}

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
    // Handles must go before the share they use.
    idle.clear();
    if (share != nullptr) curl_share_cleanup(share);
  }

  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* userptr) {
    static_cast<Impl*>(userptr)->locks[static_cast<std::size_t>(data) % kLockSlots].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* userptr) {
    static_cast<Impl*>(userptr)->locks[static_cast<std::size_t>(data) % kLockSlots].unlock();
  }

  EasyHandle Borrow() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!idle.empty()) {
        EasyHandle h = std::move(idle.back());
        idle.pop_back();
        return h;
      }
    }
    return EasyHandle(curl_easy_init());
  }

  void Return(EasyHandle handle) {
    std::lock_guard<std::mutex> lock(mu);
    if (static_cast<int>(idle.size()) < options.max_idle_handles) idle.push_back(std::move(handle));
  }

  static constexpr std::size_t kLockSlots = 16;
  CurlTransportOptions options;
  CURLSH* share = nullptr;
  std::array<std::mutex, kLockSlots> locks;
  std::mutex mu;
  std::vector<EasyHandle> idle;  // LIFO: the warmest handle is reused first
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> connections{0};
};

CurlTransport::CurlTransport(CurlTransportOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

CurlTransport::~CurlTransport() = default;

CurlTransport::Stats CurlTransport::stats() const {
  return Stats{impl_->requests.load(), impl_->connections.load()};
}

Result<HttpResponse> CurlTransport::Send(const HttpRequest& request) {
  EasyHandle easy = impl_->Borrow();
  if (!easy)
    return TransportError(ErrorCategory::kTransient, "TransportError", "curl_easy_init failed");
  CURL* h = easy.get();
  // Reset keeps the handle's live connections, DNS and TLS session caches: that is the reuse.
  curl_easy_reset(h);

  HttpResponse response;
  response.headers.reserve(12);
  Transfer t;
  t.handle = h;
  t.response = &response;
  t.response_file = &request.response_file;

  // The body, from a file range or from memory; its size is always known up front.
  struct FileCloser {
    FILE*& f;
    ~FileCloser() {
      if (f != nullptr) std::fclose(f);
    }
  } close_body{t.body_file};
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

  char errbuf[CURL_ERROR_SIZE];
  errbuf[0] = '\0';
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (impl_->share != nullptr) curl_easy_setopt(h, CURLOPT_SHARE, impl_->share);
  curl_easy_setopt(h, CURLOPT_MAXCONNECTS, impl_->options.max_connections_per_handle);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!impl_->options.ca_bundle.empty()) {
    curl_easy_setopt(h, CURLOPT_CAINFO, impl_->options.ca_bundle.c_str());
  }
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<long long>(1, request.connect_timeout.count())));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  if (request.low_speed_bytes > 0 && request.low_speed_time.count() > 0) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, request.low_speed_bytes);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(request.low_speed_time.count()));
  }

  // Method and body. Content-Length always comes from the known size, never chunked.
  const std::string& method = request.method;
  // A body held in memory is handed to curl whole (it is not copied): a small one then leaves
  // in the same send() as the headers, where the read callback would cost a second one (and on
  // loopback each send also runs the receiver's TCP stack on this CPU). curl resends it by
  // itself when a reused connection turns out to be dead.
  const bool memory_body = !request.body_file && method != "HEAD" && (has_body || method == "POST");
  if (method == "GET" && !has_body) {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (memory_body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body_length));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
    if (method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body_length));
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &ReadCallback);
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &SeekCallback);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
  } else if (method == "PUT" || has_body) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.body_length));
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &ReadCallback);
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &SeekCallback);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
    if (method != "PUT") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  // Exactly the given headers: the caller signed them. Remove what curl would add on its own
  // (Expect: 100-continue, a default form Content-Type, Accept: */*).
  std::size_t header_bytes = 32;
  for (const auto& [name, value] : request.headers) header_bytes += name.size() + value.size() + 3;
  HeaderLines headers(request.headers.size() + 3, header_bytes + 32);
  bool has_content_type = false, has_accept = false;
  for (const auto& [name, value] : request.headers) {
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return TransportError(ErrorCategory::kInvalidInput, "InvalidHeader",
                            "header " + name + " contains a line break or colon");
    }
    if (EqualsIgnoreCase(name, "content-type")) has_content_type = true;
    if (EqualsIgnoreCase(name, "accept")) has_accept = true;
    headers.Add(name, value.empty() ? ";" : ": ", value);
  }
  headers.Add("Expect", ":", "");
  if (!has_content_type) headers.Add("Content-Type", ":", "");
  if (!has_accept) headers.Add("Accept", ":", "");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.List());

  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &HeaderCallback);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &WriteCallback);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  if (request.stop != nullptr) {
    t.stop = request.stop;
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &ProgressCallback);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
  }

  CURLcode rc = curl_easy_perform(h);

  long connects = 0;
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
  impl_->requests.fetch_add(1, std::memory_order_relaxed);
  impl_->connections.fetch_add(static_cast<std::uint64_t>(std::max(0L, connects)),
                               std::memory_order_relaxed);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  // The handle must not keep pointers into this stack frame.
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  if (memory_body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);
  impl_->Return(std::move(easy));

  bool file_ok = true;
  if (t.out_file != nullptr) {
    file_ok = std::fclose(t.out_file) == 0;
    if (!file_ok && t.write_error.empty()) {
      t.write_error = "cannot write " + request.response_file + ": " + strerror(errno);
    }
  }

  if (!t.body_error.empty()) {
    return TransportError(ErrorCategory::kIo, "BodyReadFailed",
                          "request body " + request.body_file->path + ": " + t.body_error);
  }
  if (!t.write_error.empty()) {
    return TransportError(ErrorCategory::kIo, "ResponseWriteFailed", t.write_error);
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK && t.stop != nullptr && t.stop->Requested()) {
    return TransportError(ErrorCategory::kCancelled, "Cancelled", "cancelled by shutdown");
  }
  if (rc != CURLE_OK) return FromCurlCode(rc, errbuf);

  response.status = static_cast<int>(status);
  if (!request.response_file.empty() && status >= 200 && status < 300 && !t.to_file) {
    // An empty 2xx body still means "the object is empty": create the file.
    FILE* f = std::fopen(request.response_file.c_str(), "wb");
    if (f == nullptr || std::fclose(f) != 0) {
      return TransportError(ErrorCategory::kIo, "ResponseWriteFailed",
                            "cannot create " + request.response_file + ": " + strerror(errno));
    }
  }
  return response;
}

std::shared_ptr<HttpTransport> MakeCurlTransport(CurlTransportOptions options) {
  return std::make_shared<CurlTransport>(std::move(options));
}

}  // namespace spotgrid
