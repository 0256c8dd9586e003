// CurlTransport, the product's HttpTransport, against real servers: s3rver for streamed bodies
// and connection reuse, sockets opened by the test itself for exact wire bytes, framing,
// keep-alive, retries, timeouts and stops, a small Python HTTPS server for TLS, a local proxy
// (tests/harness/connect_proxy.py) for CONNECT tunnels, absolute-form forwarding, NO_PROXY and
// refusals, and a network namespace with a silent DNS server for the resolution bound.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/http/curl_transport.h"
#include "support/child_process.h"
#include "support/fake_clock.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using std::chrono::milliseconds;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A listening TCP socket on the loopback address that never accepts unless told to: the kernel
// completes handshakes into the backlog, so a client connects and then waits forever.
class LocalSocket {
 public:
  explicit LocalSocket(bool ipv6 = false) : ipv6_(ipv6) {
    fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage storage{};
    socklen_t len;
    if (ipv6) {
      auto* addr = reinterpret_cast<sockaddr_in6*>(&storage);
      addr->sin6_family = AF_INET6;
      addr->sin6_addr = in6addr_loopback;
      len = sizeof *addr;
    } else {
      auto* addr = reinterpret_cast<sockaddr_in*>(&storage);
      addr->sin_family = AF_INET;
      addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *addr;
    }
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&storage), len), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&storage), &len);
    port_ = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  }
  ~LocalSocket() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }
  int port() const { return port_; }
  std::string Url(const std::string& path = "/") const {
    return std::string(ipv6_ ? "http://[::1]:" : "http://127.0.0.1:") + std::to_string(port_) +
           path;
  }
  // True when a client connection waits in the backlog (nobody accepted it).
  bool HasPendingConnection() const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }

 private:
  bool ipv6_;
  int fd_ = -1;
  int port_ = 0;
};

// Accepts one connection within 10 s (-1 otherwise). Reads on it give up after 10 s, so a
// test whose client misbehaves fails instead of hanging.
int Accept(int listen_fd) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, 10000) != 1) return -1;
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  timeval tv{10, 0};
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads one request (head and Content-Length body) from `fd`; "" when the client closed first.
// Clients here send one request at a time, so nothing past it is read.
std::string ReadRequest(int fd) {
  std::string data;
  char buf[65536];
  std::size_t need = std::string::npos;
  while (need == std::string::npos || data.size() < need) {
    ssize_t n = ::recv(fd, buf,
                       need == std::string::npos ? 1 : std::min(sizeof buf, need - data.size()), 0);
    if (n <= 0) return data;
    data.append(buf, static_cast<std::size_t>(n));
    auto end = data.find("\r\n\r\n");
    if (need == std::string::npos && end != std::string::npos) {
      std::size_t length = 0;
      auto cl = Lower(data.substr(0, end)).find("content-length: ");
      if (cl != std::string::npos) length = std::stoull(data.substr(cl + 16));
      need = end + 4 + length;
    }
  }
  return data;
}

void SendAll(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<std::size_t>(n);
  }
}

// Waits (up to the 10 s receive timeout) until the client closes `fd`, then closes it.
void DrainUntilClosed(int fd) {
  char buf[4096];
  while (::recv(fd, buf, sizeof buf, 0) > 0) {
  }
  ::close(fd);
}

// Accepts one connection, reads one request and answers with `response`, then closes.
// Returns the raw request bytes.
std::string ServeOnce(int listen_fd, const std::string& response) {
  int fd = Accept(listen_fd);
  if (fd < 0) return {};
  std::string data = ReadRequest(fd);
  SendAll(fd, response);
  ::close(fd);
  return data;
}

// Runs a scripted server on its own thread; joined on destruction, before the listening
// socket it uses (declare the LocalSocket first).
class ServerThread {
 public:
  explicit ServerThread(std::function<void()> script) : thread_(std::move(script)) {}
  ~ServerThread() { Join(); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

std::string OkResponse(const std::string& body, const std::string& extra_headers = "") {
  return "HTTP/1.1 200 OK\r\n" + extra_headers + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string RandomBytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xFF);
  return out;
}

// A small HTTPS server: answers every GET with 200 "secure" and says in X-Session-Reused
// whether the TLS session was resumed. HTTP/1.1 keep-alive unless the client asks to close.
constexpr char kTlsServerScript[] = R"py(
import argparse, http.server, os, ssl
p = argparse.ArgumentParser()
p.add_argument("--cert"); p.add_argument("--key")
p.add_argument("--port", type=int); p.add_argument("--port-file")
a = p.parse_args()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.send_header("X-Session-Reused", str(self.connection.session_reused))
        self.end_headers()
        self.wfile.write(b"secure")
    def log_message(self, *args): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(a.cert, a.key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
with open(a.port_file + ".tmp", "w") as f: f.write(str(s.server_address[1]))
os.rename(a.port_file + ".tmp", a.port_file)
s.serve_forever()
)py";

class HttpTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::UseEmulators();
    transport_ = Make();
    dir_ = testing::MakeTempDir("http-transport-test");
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // A transport trusting `ca_bundle` ("" = the system store).
  static std::shared_ptr<CurlTransport> Make(const std::string& ca_bundle = "") {
    CurlTransportOptions options;
    options.ca_bundle = ca_bundle;
    return std::make_shared<CurlTransport>(options);
  }
  CurlTransport::Stats Stats() { return Stats(*transport_); }
  static CurlTransport::Stats Stats(HttpTransport& transport) {
    return static_cast<CurlTransport&>(transport).stats();
  }

  // An S3 client (path style on the emulator) that sends through transport_.
  std::shared_ptr<AwsClient> S3() {
    Credentials creds{testing::EmulatorValue("AWS_ACCESS_KEY_ID"),
                      testing::EmulatorValue("AWS_SECRET_ACCESS_KEY"), "", std::nullopt};
    auto context = std::make_shared<AwsContext>(
        "us-east-1", transport_, MakeStaticCredentialsProvider(creds), &Clock::System(),
        std::make_unique<RetryPolicy>(RetryOptions{}), &Environment::Process(), ProfileFiles{},
        nullptr);
    Result<std::shared_ptr<AwsClient>> client = AwsClient::Create(context, kS3Service);
    EXPECT_TRUE(client.ok()) << client.error().ToString();
    return client.ok() ? *client : nullptr;
  }

  std::string NewBucket(AwsClient& s3) {
    std::string bucket = testing::UniqueName("transport");
    AwsRequest create;
    create.operation = "CreateBucket";
    create.method = "PUT";
    create.path = "/" + bucket;
    Result<HttpResponse> r = s3.Send(create);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return bucket;
  }

  // A self-signed certificate (it is its own CA) for `subject` and `san`; returns the
  // certificate path ("" and a failed test when openssl fails). The key is `cert` + ".key".
  std::string MakeCertificate(const std::string& name, const std::string& subject,
                              const std::string& san) {
    const std::string cert = dir_ + "/" + name + ".pem", key = cert + ".key";
    auto gen = testing::ChildProcess::Start(
        {{"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
          "-days", "1", "-subj", subject, "-addext", "subjectAltName=" + san},
         {},
         {},
         dir_ + "/" + name + "-openssl.log",
         ""});
    EXPECT_TRUE(gen.ok()) << gen.error().ToString();
    if (!gen.ok()) return "";
    EXPECT_TRUE((*gen)->Wait(std::chrono::seconds(30)));
    EXPECT_EQ((*gen)->ExitCode(), 0) << (*gen)->ReadLog();
    return cert;
  }

  // Starts the HTTPS server with `cert`; returns its base URL, "" on failure.
  std::string StartTlsServer(const std::string& cert) {
    const std::string script = dir_ + "/tls_server.py";
    std::ofstream(script) << kTlsServerScript;
    auto server = testing::ChildProcess::StartServer(
        {"/usr/bin/python3", script, "--cert", cert, "--key", cert + ".key"}, dir_, "tls_server");
    EXPECT_TRUE(server.ok()) << server.error().ToString();
    if (!server.ok()) return "";
    tls_server_ = std::move(*server);
    return "https://127.0.0.1:" + std::to_string(tls_server_->port()) + "/";
  }

  std::shared_ptr<HttpTransport> transport_;
  std::string dir_;
  std::unique_ptr<testing::ChildProcess> tls_server_;
};

TEST_F(HttpTransportTest, StreamsBodyFromFileRangeAndResponseToFile) {
  auto s3 = this->S3();
  ASSERT_TRUE(s3);
  std::string bucket = this->NewBucket(*s3);
  // 3 MiB of data surrounded by bytes that must not be sent.
  const std::string content = RandomBytes(3 << 20, 7);
  const std::string source = this->dir_ + "/source";
  std::ofstream(source, std::ios::binary) << "HEADER-JUNK" << content << "TRAILER-JUNK";

  AwsRequest put;
  put.operation = "PutObject";
  put.method = "PUT";
  put.path = "/" + bucket + "/dir/big object.bin";
  put.body_file = FileRange{source, 11, content.size()};
  Result<HttpResponse> put_result = s3->Send(put);
  ASSERT_TRUE(put_result.ok()) << put_result.error().ToString();
  EXPECT_TRUE(put_result->Header("etag").has_value());  // response names are lower-cased

  AwsRequest get;
  get.operation = "GetObject";
  get.method = "GET";
  get.path = put.path;
  get.response_file = this->dir_ + "/downloaded";
  Result<HttpResponse> get_result = s3->Send(get);
  ASSERT_TRUE(get_result.ok()) << get_result.error().ToString();
  EXPECT_TRUE(get_result->body.empty());
  EXPECT_EQ(ReadFile(get.response_file).size(), content.size());
  EXPECT_TRUE(ReadFile(get.response_file) == content);
}

TEST_F(HttpTransportTest, ErrorBodyArrivesInMemoryWhenResponseFileIsSet) {
  auto s3 = this->S3();
  ASSERT_TRUE(s3);
  std::string bucket = this->NewBucket(*s3);
  AwsRequest get;
  get.operation = "GetObject";
  get.method = "GET";
  get.path = "/" + bucket + "/missing";
  get.response_file = this->dir_ + "/never-written";
  Result<HttpResponse> result = s3->Send(get);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, "NoSuchKey");
  EXPECT_TRUE(result.error().IsNotFound());
  EXPECT_FALSE(std::filesystem::exists(get.response_file));
}

TEST_F(HttpTransportTest, SequentialRequestsReuseOneConnection) {
  auto s3 = this->S3();
  ASSERT_TRUE(s3);
  std::string bucket = this->NewBucket(*s3);
  const auto before = this->Stats();
  constexpr int kRequests = 40;
  for (int i = 0; i < kRequests; ++i) {
    AwsRequest put;
    put.operation = "PutObject";
    put.method = "PUT";
    put.path = "/" + bucket + "/k" + std::to_string(i);
    put.body = "value " + std::to_string(i);
    Result<HttpResponse> r = s3->Send(put);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }
  const auto after = this->Stats();
  EXPECT_EQ(after.requests - before.requests, static_cast<std::uint64_t>(kRequests));
  // The server may close an idle connection now and then; without reuse this would be 40.
  EXPECT_LE(after.connections_opened - before.connections_opened, 2u);
}

TEST_F(HttpTransportTest, ConcurrentSendersShareTheTransportSafely) {
  auto s3 = this->S3();
  ASSERT_TRUE(s3);
  std::string bucket = this->NewBucket(*s3);
  const auto before = this->Stats();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        AwsRequest put;
        put.operation = "PutObject";
        put.method = "PUT";
        put.path = "/" + bucket + "/t" + std::to_string(t) + "-" + std::to_string(i);
        put.body = std::string(1000, 'a' + t);
        if (!s3->Send(put).ok()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(this->Stats().connections_opened - before.connections_opened, 8u);
}

// Every exchange started on a multi ends once, under its own tag, with its own response; the
// window shares a handful of keep-alive connections instead of opening one per exchange.
TEST_F(HttpTransportTest, MultiRunsAWindowOfExchangesOnOneThreadOverReusedConnections) {
  auto s3 = this->S3();
  ASSERT_TRUE(s3);
  std::string bucket = this->NewBucket(*s3);
  std::unique_ptr<HttpMulti> multi = this->transport_->NewMulti();
  const auto before = this->Stats();
  constexpr int kExchanges = 60, kWindow = 8;
  std::map<std::uint64_t, std::string> bodies;
  int started = 0, ended = 0;
  auto start = [&] {
    AwsRequest put;
    put.operation = "PutObject";
    put.method = "PUT";
    put.path = "/" + bucket + "/m" + std::to_string(started);
    put.body = "value " + std::to_string(started);
    AwsClient::Call call(*s3, put);
    Result<HttpRequest> http = call.Attempt();
    ASSERT_TRUE(http.ok()) << http.error().ToString();
    multi->Start(static_cast<std::uint64_t>(started), std::move(http).value());
    ++started;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ended < kExchanges && std::chrono::steady_clock::now() < deadline) {
    while (started < kExchanges && static_cast<int>(multi->active()) < kWindow) start();
    for (HttpMulti::Ended& end : multi->Poll(milliseconds(1000))) {
      ASSERT_TRUE(end.result.ok()) << end.result.error().ToString();
      EXPECT_EQ(end.result->status, 200);
      EXPECT_TRUE(bodies.emplace(end.tag, "").second) << "tag " << end.tag << " ended twice";
      ++ended;
    }
  }
  ASSERT_EQ(ended, kExchanges);
  EXPECT_EQ(multi->active(), 0u);
  const auto after = this->Stats();
  EXPECT_EQ(after.requests - before.requests, static_cast<std::uint64_t>(kExchanges));
  EXPECT_LE(after.connections_opened - before.connections_opened,
            static_cast<std::uint64_t>(kWindow + 2));
  // What was stored is what each exchange sent.
  for (int i = 0; i < kExchanges; i += 17) {
    AwsRequest get;
    get.operation = "GetObject";
    get.method = "GET";
    get.path = "/" + bucket + "/m" + std::to_string(i);
    Result<HttpResponse> r = s3->Send(get);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->body, "value " + std::to_string(i));
  }
}

// A stop ends a multi's exchange as it ends Send(): at once, Cancelled, its connection closed;
// the other exchanges go on.
TEST_F(HttpTransportTest, MultiStopAbandonsOnlyTheStoppedExchange) {
  LocalSocket silent, answering;
  std::atomic<bool> arrived{false}, closed_by_client{false};
  ServerThread hold([&] {
    int fd = Accept(silent.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    arrived = true;
    DrainUntilClosed(fd);
    closed_by_client = true;
  });
  std::unique_ptr<HttpMulti> multi = this->transport_->NewMulti();
  StopSource stop;
  HttpRequest poll;
  poll.url = silent.Url("/long-poll");
  poll.timeout = milliseconds(60000);
  poll.stop = &stop;
  multi->Start(1, poll);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!arrived.load() && std::chrono::steady_clock::now() < deadline) {
    EXPECT_TRUE(multi->Poll(milliseconds(50)).empty());
  }
  ASSERT_TRUE(arrived.load());
  std::string served;
  ServerThread answer([&] { served = ServeOnce(answering.fd(), OkResponse("other")); });
  HttpRequest other;
  other.url = answering.Url("/other");
  other.timeout = milliseconds(10000);
  multi->Start(2, other);
  std::map<std::uint64_t, Result<HttpResponse>> results;
  bool stopped = false;
  std::chrono::steady_clock::time_point raised;
  while (results.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    for (HttpMulti::Ended& end : multi->Poll(milliseconds(1000))) {
      results.emplace(end.tag, std::move(end.result));
    }
    if (results.count(2) && !stopped) {
      stopped = true;
      raised = std::chrono::steady_clock::now();
      stop.Request();
    }
  }
  ASSERT_EQ(results.size(), 2u);
  EXPECT_LT(std::chrono::steady_clock::now() - raised, milliseconds(1000));
  ASSERT_TRUE(results.at(2).ok()) << results.at(2).error().ToString();
  EXPECT_EQ(results.at(2)->body, "other");
  ASSERT_FALSE(results.at(1).ok());
  EXPECT_EQ(results.at(1).error().code, "Cancelled");
  EXPECT_TRUE(testing::WaitUntil([&] { return closed_by_client.load(); }, milliseconds(5000)));
  hold.Join();
  answer.Join();
}

// Wake() from another thread ends a Poll that nothing else would end.
TEST_F(HttpTransportTest, MultiWakeEndsAWaitingPoll) {
  std::unique_ptr<HttpMulti> multi = this->transport_->NewMulti();
  std::atomic<bool> polling{false};
  std::thread waker([&] {
    testing::WaitUntil([&] { return polling.load(); }, milliseconds(5000));
    multi->Wake();
  });
  const auto begin = std::chrono::steady_clock::now();
  polling = true;
  EXPECT_TRUE(multi->Poll(milliseconds(20000)).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, milliseconds(10000));
  waker.join();
}

TEST_F(HttpTransportTest, SendsExactlyTheGivenHeadersWithContentLength) {
  LocalSocket server;
  const std::string body = RandomBytes(2 << 20, 3);  // large enough for curl's Expect default
  const std::string response =
      "HTTP/1.1 201 Created\r\nX-Amz-Request-Id: RID\r\nContent-Length: 2\r\n"
      "Connection: close\r\n\r\nok";
  std::string received;
  std::thread serve([&] { received = ServeOnce(server.fd(), response); });
  HttpRequest request;
  request.method = "POST";
  request.url = server.Url("/path?x=1");
  request.headers = {{"host", "example.test"}, {"x-amz-target", "AmazonSQS.SendMessage"}};
  request.body = body;
  request.timeout = milliseconds(20000);
  Result<HttpResponse> result = this->transport_->Send(request);
  serve.join();
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->status, 201);
  EXPECT_EQ(result->body, "ok");
  EXPECT_EQ(result->Header("x-amz-request-id"), "RID");
  EXPECT_EQ(result->headers.at(0).first, "x-amz-request-id");

  std::string head = received.substr(0, received.find("\r\n\r\n") + 2);
  EXPECT_EQ(head.rfind("POST /path?x=1 HTTP/1.1\r\n", 0), 0u) << head;
  // curl writes a given Host header with its own capitalisation; names are case-insensitive.
  const std::string lower_head = Lower(head);
  EXPECT_NE(lower_head.find("host: example.test\r\n"), std::string::npos) << head;
  EXPECT_EQ(lower_head.find("host:"), lower_head.rfind("host:")) << "exactly one Host\n" << head;
  EXPECT_NE(head.find("x-amz-target: AmazonSQS.SendMessage\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos)
      << head;
  for (const char* unwanted :
       {"Expect", "Content-Type", "Accept:", "Transfer-Encoding", "User-Agent"}) {
    EXPECT_EQ(head.find(unwanted), std::string::npos) << unwanted << " in\n" << head;
  }
  EXPECT_TRUE(received.substr(received.find("\r\n\r\n") + 4) == body);
}

TEST_F(HttpTransportTest, SilentServerGivesTransientTimeout) {
  LocalSocket silent;  // accepts into the backlog, never answers
  HttpRequest request;
  request.url = silent.Url();
  request.timeout = milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(result.error().code, "Timeout");
  EXPECT_FALSE(result.error().message.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(HttpTransportTest, RefusedConnectionGivesConnectionFailed) {
  int port;
  {
    LocalSocket closed;
    port = closed.port();
  }  // nothing listens on `port` any more
  HttpRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(result.error().code, "ConnectionFailed");
  EXPECT_EQ(result.error().http_status, 0);
}

TEST_F(HttpTransportTest, BodyFileShorterThanRangeFailsWithIoError) {
  LocalSocket silent;
  const std::string path = this->dir_ + "/short";
  std::ofstream(path) << "only a few bytes";
  HttpRequest request;
  request.method = "PUT";
  request.url = silent.Url("/k");
  request.body_file = FileRange{path, 0, 1 << 20};
  request.timeout = milliseconds(10000);
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kIo);
  EXPECT_EQ(result.error().code, "BodyReadFailed");
}

TEST_F(HttpTransportTest, MissingBodyFileFailsBeforeConnecting) {
  LocalSocket silent;
  HttpRequest request;
  request.method = "PUT";
  request.url = silent.Url("/k");
  request.body_file = FileRange{this->dir_ + "/does-not-exist", 0, 10};
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kIo);
  EXPECT_EQ(this->Stats().requests, 0u);
}

TEST_F(HttpTransportTest, UntrustedCertificateIsTlsErrorAndTrustedBundleSucceeds) {
  const std::string cert = this->MakeCertificate("ip", "/CN=127.0.0.1", "IP:127.0.0.1");
  ASSERT_FALSE(cert.empty());
  const std::string url = this->StartTlsServer(cert);
  ASSERT_FALSE(url.empty());

  HttpRequest request;
  request.url = url;
  request.timeout = milliseconds(10000);
  Result<HttpResponse> untrusted = this->transport_->Send(request);
  ASSERT_FALSE(untrusted.ok());
  EXPECT_EQ(untrusted.error().category, ErrorCategory::kClient);
  EXPECT_EQ(untrusted.error().code, "TlsError");
  EXPECT_FALSE(untrusted.error().message.empty());

  auto trusting = Make(cert);
  Result<HttpResponse> trusted = trusting->Send(request);
  ASSERT_TRUE(trusted.ok()) << trusted.error().ToString();
  EXPECT_EQ(trusted->status, 200);
  EXPECT_EQ(trusted->body, "secure");
}

TEST_F(HttpTransportTest, HttpsRequestsReuseOneConnection) {
  const std::string cert = this->MakeCertificate("ip", "/CN=127.0.0.1", "IP:127.0.0.1");
  ASSERT_FALSE(cert.empty());
  const std::string url = this->StartTlsServer(cert);
  ASSERT_FALSE(url.empty());
  auto transport = Make(cert);
  HttpRequest request;
  request.url = url;
  request.timeout = milliseconds(10000);
  for (int i = 0; i < 3; ++i) {
    Result<HttpResponse> r = transport->Send(request);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->body, "secure");
  }
  EXPECT_EQ(this->Stats(*transport).requests, 3u);
  EXPECT_EQ(this->Stats(*transport).connections_opened, 1u);
}

TEST_F(HttpTransportTest, TlsReconnectResumesTheSession) {
  const std::string cert = this->MakeCertificate("ip", "/CN=127.0.0.1", "IP:127.0.0.1");
  ASSERT_FALSE(cert.empty());
  const std::string url = this->StartTlsServer(cert);
  ASSERT_FALSE(url.empty());
  auto transport = Make(cert);
  HttpRequest request;
  request.url = url;
  request.headers = {{"Connection", "close"}};  // every request on its own connection
  request.timeout = milliseconds(10000);
  Result<HttpResponse> first = transport->Send(request);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->Header("x-session-reused"), "False");
  Result<HttpResponse> second = transport->Send(request);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(second->Header("x-session-reused"), "True");
  EXPECT_EQ(this->Stats(*transport).connections_opened, 2u);
}

TEST_F(HttpTransportTest, CertificateForAnotherNameIsTlsErrorEvenWhenTrusted) {
  const std::string cert =
      this->MakeCertificate("other", "/CN=example.invalid", "DNS:example.invalid");
  ASSERT_FALSE(cert.empty());
  const std::string url = this->StartTlsServer(cert);
  ASSERT_FALSE(url.empty());
  auto trusting = Make(cert);
  HttpRequest request;
  request.url = url;
  request.timeout = milliseconds(10000);
  Result<HttpResponse> result = trusting->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kClient);
  EXPECT_EQ(result.error().code, "TlsError");
  EXPECT_FALSE(result.error().message.empty());
}

TEST_F(HttpTransportTest, ChunkedResponseWithExtensionAndTrailerDecodes) {
  LocalSocket server;
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    SendAll(fd,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    // The same connection serves the next request: the chunked framing ended exactly.
    ReadRequest(fd);
    SendAll(fd, OkResponse("second"));
    DrainUntilClosed(fd);
  });
  HttpRequest request;
  request.url = server.Url("/chunked");
  request.timeout = milliseconds(10000);
  Result<HttpResponse> first = this->transport_->Send(request);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "hello world");
  Result<HttpResponse> second = this->transport_->Send(request);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(second->body, "second");
  EXPECT_EQ(this->Stats().connections_opened, 1u);
  this->transport_.reset();  // closes the pooled connection, so the server can finish
}

TEST_F(HttpTransportTest, ResponseWithoutLengthIsReadUntilClose) {
  LocalSocket server;
  const std::string body = RandomBytes(300000, 11);
  ServerThread serve([&] {
    ServeOnce(server.fd(),
              "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + body);
    ServeOnce(server.fd(), OkResponse("next"));
  });
  HttpRequest request;
  request.url = server.Url("/");
  request.timeout = milliseconds(10000);
  Result<HttpResponse> first = this->transport_->Send(request);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_TRUE(first->body == body) << first->body.size() << " bytes";
  // The connection ended with the body, so the next request needs a new one.
  Result<HttpResponse> second = this->transport_->Send(request);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(second->body, "next");
  EXPECT_EQ(this->Stats().connections_opened, 2u);
}

TEST_F(HttpTransportTest, HeadAnd204HaveNoBodyAndTheConnectionIsReused) {
  LocalSocket server;
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: \"e\"\r\n\r\n");
    ReadRequest(fd);
    SendAll(fd, "HTTP/1.1 204 No Content\r\nX-Amz-Request-Id: R2\r\n\r\n");
    ReadRequest(fd);
    SendAll(fd, OkResponse("third"));
    DrainUntilClosed(fd);
  });
  HttpRequest head;
  head.method = "HEAD";
  head.url = server.Url("/object");
  head.timeout = milliseconds(5000);
  Result<HttpResponse> r1 = this->transport_->Send(head);
  ASSERT_TRUE(r1.ok()) << r1.error().ToString();
  EXPECT_EQ(r1->status, 200);
  EXPECT_EQ(r1->body, "");
  EXPECT_EQ(r1->Header("content-length"), "1000");
  HttpRequest del;
  del.method = "DELETE";
  del.url = server.Url("/object");
  del.timeout = milliseconds(5000);
  Result<HttpResponse> r2 = this->transport_->Send(del);
  ASSERT_TRUE(r2.ok()) << r2.error().ToString();
  EXPECT_EQ(r2->status, 204);
  EXPECT_EQ(r2->body, "");
  HttpRequest get;
  get.url = server.Url("/object");
  get.timeout = milliseconds(5000);
  Result<HttpResponse> r3 = this->transport_->Send(get);
  ASSERT_TRUE(r3.ok()) << r3.error().ToString();
  EXPECT_EQ(r3->body, "third");
  EXPECT_EQ(this->Stats().connections_opened, 1u);
  this->transport_.reset();
}

TEST_F(HttpTransportTest, InterimContinueBeforeTheRealResponseIsSkipped) {
  LocalSocket server;
  ServerThread serve([&] {
    ServeOnce(server.fd(),
              "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
              "HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 4\r\n\r\ndone");
  });
  HttpRequest request;
  request.method = "PUT";
  request.url = server.Url("/k");
  request.body = "payload";
  request.timeout = milliseconds(10000);
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "done");
  EXPECT_EQ(result->Header("x-final"), "yes");
  EXPECT_FALSE(result->Header("x-interim").has_value());
}

TEST_F(HttpTransportTest, ServerClosingAnIdleConnectionCostsANewConnectionNotAnError) {
  LocalSocket server;
  std::atomic<bool> closed{false};
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    SendAll(fd, OkResponse("one"));
    ::close(fd);  // the server's keep-alive timer fired
    closed = true;
    ServeOnce(server.fd(), OkResponse("two"));
  });
  HttpRequest request;
  request.url = server.Url("/");
  request.timeout = milliseconds(10000);
  Result<HttpResponse> first = this->transport_->Send(request);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_TRUE(testing::WaitUntil([&] { return closed.load(); }, milliseconds(10000)));
  Result<HttpResponse> second = this->transport_->Send(request);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(second->body, "two");
  EXPECT_EQ(this->Stats().requests, 2u);
  EXPECT_EQ(this->Stats().connections_opened, 2u);
}

TEST_F(HttpTransportTest, ConnectionCloseResponseMakesTheNextRequestOpenANewConnection) {
  LocalSocket server;
  ServerThread serve([&] {
    int first = Accept(server.fd());
    if (first < 0) return;
    ReadRequest(first);
    // Announces the close but keeps the socket open: only the header may stop the reuse.
    SendAll(first, OkResponse("one", "Connection: close\r\n"));
    ServeOnce(server.fd(), OkResponse("two"));
    ::close(first);
  });
  HttpRequest request;
  request.url = server.Url("/");
  request.timeout = milliseconds(5000);
  Result<HttpResponse> first = this->transport_->Send(request);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  Result<HttpResponse> second = this->transport_->Send(request);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(second->body, "two");
  EXPECT_EQ(this->Stats().connections_opened, 2u);
}

TEST_F(HttpTransportTest, ReusedConnectionDyingBeforeTheResponseIsRetriedWithTheSameBody) {
  LocalSocket server;
  const std::string content = RandomBytes(600000, 5);
  const std::string source = this->dir_ + "/source";
  std::ofstream(source, std::ios::binary) << "JUNK" << content << "JUNK";
  std::string dropped, retried;
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    SendAll(fd, OkResponse("one"));
    dropped = ReadRequest(fd);
    ::close(fd);  // closed without an answer, as when an idle timeout races the request
    retried = ServeOnce(server.fd(), OkResponse("stored"));
  });
  HttpRequest get;
  get.url = server.Url("/");
  get.timeout = milliseconds(10000);
  Result<HttpResponse> first = this->transport_->Send(get);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  HttpRequest put;
  put.method = "PUT";
  put.url = server.Url("/object");
  put.body_file = FileRange{source, 4, content.size()};
  put.timeout = milliseconds(10000);
  Result<HttpResponse> second = this->transport_->Send(put);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(second->body, "stored");
  serve.Join();
  EXPECT_EQ(this->Stats().connections_opened, 2u);
  EXPECT_GT(retried.size(), content.size());
  EXPECT_TRUE(retried.substr(retried.size() - content.size()) == content);
  EXPECT_TRUE(dropped == retried) << "the retry sends the same request again";
}

TEST_F(HttpTransportTest, NoRetryOnceResponseBytesArrived) {
  LocalSocket server;
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    SendAll(fd, OkResponse("one"));
    ReadRequest(fd);
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    ::close(fd);
  });
  HttpRequest request;
  request.url = server.Url("/");
  request.timeout = milliseconds(10000);
  ASSERT_TRUE(this->transport_->Send(request).ok());
  Result<HttpResponse> cut = this->transport_->Send(request);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(cut.error().code, "ConnectionFailed");
  serve.Join();
  EXPECT_EQ(this->Stats().connections_opened, 1u);
  EXPECT_FALSE(server.HasPendingConnection());
}

TEST_F(HttpTransportTest, FreshConnectionClosedWithoutResponseIsConnectionFailed) {
  LocalSocket server;
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    ::close(fd);
  });
  HttpRequest request;
  request.url = server.Url("/");
  request.timeout = milliseconds(10000);
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(result.error().code, "ConnectionFailed");
  serve.Join();
  EXPECT_EQ(this->Stats().connections_opened, 1u);
  EXPECT_FALSE(server.HasPendingConnection());
}

TEST_F(HttpTransportTest, ServerClosingDuringAnUploadIsConnectionFailedWithoutSigpipe) {
  LocalSocket server;
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    char head[512];
    ::recv(fd, head, sizeof head, 0);
    ::close(fd);  // unread data: the kernel answers further segments with a reset
  });
  HttpRequest request;
  request.method = "PUT";
  request.url = server.Url("/big");
  request.body = std::string(16 << 20, 'x');
  request.timeout = milliseconds(10000);
  // A SIGPIPE would end this process here.
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(result.error().code, "ConnectionFailed") << result.error().ToString();
}

// The agent's 20 s long poll: the server took the request and never answers. Raising the stop
// must end Send() at once (the multi interface wakes on the stop's eventfd; curl's progress
// callback would take up to a second), close that connection, and leave the transport usable.
TEST_F(HttpTransportTest, RaisedStopAbandonsALongPollWithin300Milliseconds) {
  LocalSocket server;
  std::atomic<bool> request_arrived{false}, closed_by_client{false};
  std::string next;
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    request_arrived = true;
    DrainUntilClosed(fd);  // never answers, like a long poll with nothing to deliver
    closed_by_client = true;
    next = ServeOnce(server.fd(), OkResponse("after"));
  });
  StopSource stop;
  HttpRequest request;
  request.url = server.Url("/long-poll");
  request.timeout = milliseconds(60000);
  request.stop = &stop;
  std::optional<Result<HttpResponse>> result;
  std::atomic<bool> returned{false};
  std::chrono::steady_clock::time_point returned_at;
  std::thread sender([&] {
    result.emplace(this->transport_->Send(request));
    returned_at = std::chrono::steady_clock::now();
    returned = true;
  });
  ASSERT_TRUE(testing::WaitUntil([&] { return request_arrived.load(); }, milliseconds(10000)));
  // Still waiting for the answer: the stop, not the server, will end it.
  EXPECT_FALSE(returned.load());
  const auto raised = std::chrono::steady_clock::now();
  stop.Request();
  sender.join();
  EXPECT_LT(returned_at - raised, milliseconds(300));
  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(result->ok());
  EXPECT_EQ(result->error().category, ErrorCategory::kCancelled);
  EXPECT_EQ(result->error().code, "Cancelled");
  EXPECT_TRUE(testing::WaitUntil([&] { return closed_by_client.load(); }, milliseconds(5000)))
      << "the abandoned connection must be closed, not pooled";

  HttpRequest again;
  again.url = server.Url("/next");
  again.timeout = milliseconds(10000);
  Result<HttpResponse> after = this->transport_->Send(again);
  ASSERT_TRUE(after.ok()) << after.error().ToString();
  EXPECT_EQ(after->body, "after");
  serve.Join();
  EXPECT_EQ(this->Stats().connections_opened, 2u);
}

TEST_F(HttpTransportTest, StopRaisedBeforeSendIsCancelledWithoutAConnection) {
  LocalSocket silent;
  StopSource stop;
  stop.Request();
  HttpRequest request;
  request.url = silent.Url("/");
  request.stop = &stop;
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, "Cancelled");
  EXPECT_FALSE(silent.HasPendingConnection());
}

TEST_F(HttpTransportTest, StalledTransferAbortsWithTimeoutLongBeforeTheTotalTimeout) {
  LocalSocket server;
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    DrainUntilClosed(fd);  // stalls until the client gives up
  });
  HttpRequest request;
  request.url = server.Url("/");
  request.timeout = milliseconds(60000);
  request.low_speed_bytes = 1;
  request.low_speed_time = std::chrono::seconds(1);
  const auto start = std::chrono::steady_clock::now();
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(result.error().code, "Timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST_F(HttpTransportTest, ResponseFileGetsA2xxBodyStreamedAndAnErrorBodyStaysInMemory) {
  LocalSocket server;
  const std::string content = RandomBytes(3 << 20, 9);
  const std::string error = "<Error><Code>NoSuchKey</Code></Error>";
  ServerThread serve([&] {
    int fd = Accept(server.fd());
    if (fd < 0) return;
    ReadRequest(fd);
    SendAll(fd, OkResponse(content));
    ReadRequest(fd);
    SendAll(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: " + std::to_string(error.size()) +
                    "\r\n\r\n" + error);
    ReadRequest(fd);
    SendAll(fd, OkResponse(""));
    DrainUntilClosed(fd);
  });
  HttpRequest request;
  request.url = server.Url("/object");
  request.timeout = milliseconds(10000);
  request.response_file = this->dir_ + "/object";
  Result<HttpResponse> ok = this->transport_->Send(request);
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_TRUE(ok->body.empty());
  EXPECT_TRUE(ReadFile(request.response_file) == content);

  request.response_file = this->dir_ + "/missing";
  Result<HttpResponse> missing = this->transport_->Send(request);
  ASSERT_TRUE(missing.ok()) << missing.error().ToString();
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, error);
  EXPECT_FALSE(std::filesystem::exists(request.response_file));

  request.response_file = this->dir_ + "/empty";
  Result<HttpResponse> empty = this->transport_->Send(request);
  ASSERT_TRUE(empty.ok()) << empty.error().ToString();
  EXPECT_TRUE(std::filesystem::exists(request.response_file));
  EXPECT_EQ(std::filesystem::file_size(request.response_file), 0u);
  EXPECT_EQ(this->Stats().connections_opened, 1u);
  this->transport_.reset();
}

TEST_F(HttpTransportTest, HeaderWithLineBreakIsRejectedBeforeSending) {
  LocalSocket silent;
  HttpRequest request;
  request.url = silent.Url("/");
  request.headers = {{"x-amz-meta-a", "value\r\nInjected: yes"}};
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(result.error().code, "InvalidHeader");
  EXPECT_FALSE(silent.HasPendingConnection());
}

TEST_F(HttpTransportTest, Ipv6LiteralUrlReachesTheServer) {
  LocalSocket server(/*ipv6=*/true);
  std::string received;
  ServerThread serve([&] { received = ServeOnce(server.fd(), OkResponse("v6")); });
  HttpRequest request;
  request.url = server.Url("/six");
  request.timeout = milliseconds(10000);
  Result<HttpResponse> result = this->transport_->Send(request);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->body, "v6");
  serve.Join();
  EXPECT_NE(Lower(received).find("host: [::1]:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos)
      << received;
}

// --- Trust store, URL and header validation ------------------------------------------------

// Without a CA bundle the system store is read from the hashed certificate directory (libcurl's
// CApath; the test names its own), so only the issuers a handshake needs are ever loaded: a
// certificate linked there under its subject hash is trusted, and the same server is refused
// when the directory does not hold it.
TEST_F(HttpTransportTest, SystemTrustStoreIsReadFromTheHashedCertificateDirectory) {
  const std::string cert = MakeCertificate("ip", "/CN=127.0.0.1", "IP:127.0.0.1");
  ASSERT_FALSE(cert.empty());
  const std::string url = StartTlsServer(cert);
  ASSERT_FALSE(url.empty());
  const std::string trusted_dir = dir_ + "/trusted", other_dir = dir_ + "/other";
  std::filesystem::create_directories(trusted_dir);
  std::filesystem::create_directories(other_dir);
  // Another certificate hashed into the other directory, so it looks like a store too.
  const std::string other = MakeCertificate("other", "/CN=example.invalid", "DNS:example.invalid");
  std::filesystem::copy_file(cert, trusted_dir + "/ca.pem");
  std::filesystem::copy_file(other, other_dir + "/ca.pem");
  for (const std::string& d : {trusted_dir, other_dir}) {
    auto rehash =
        testing::ChildProcess::Start({{"openssl", "rehash", d}, {}, {}, dir_ + "/rehash.log", ""});
    ASSERT_TRUE(rehash.ok()) << rehash.error().ToString();
    ASSERT_TRUE((*rehash)->Wait(std::chrono::seconds(30)));
    ASSERT_EQ((*rehash)->ExitCode(), 0) << (*rehash)->ReadLog();
  }
  HttpRequest request;
  request.url = url;
  request.timeout = milliseconds(10000);

  CurlTransportOptions trusting_options;
  trusting_options.ca_directory = trusted_dir;
  CurlTransport trusting(trusting_options);
  Result<HttpResponse> trusted = trusting.Send(request);
  ASSERT_TRUE(trusted.ok()) << trusted.error().ToString();
  EXPECT_EQ(trusted->body, "secure");

  CurlTransportOptions refusing_options;
  refusing_options.ca_directory = other_dir;
  CurlTransport refusing(refusing_options);
  Result<HttpResponse> refused = refusing.Send(request);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "TlsError");
}

TEST_F(HttpTransportTest, MalformedUrlsAreInvalidUrlWithoutARequest) {
  // "127.0.0.1/x" matters most: libcurl would guess http:// for it.
  for (const char* url :
       {"ftp://127.0.0.1/", "http://", "127.0.0.1/x", "http://user@host/", "http://[::1/",
        "http://[::zz]/", "http://host:0/", "http://host:99999/", "http://host:/", "http://ho st/",
        "http://host/a b", "https://host:12ab/", "http://host/\xc3\xa9"}) {
    HttpRequest request;
    request.url = url;
    Result<HttpResponse> result = transport_->Send(request);
    ASSERT_FALSE(result.ok()) << url;
    EXPECT_EQ(result.error().category, ErrorCategory::kClient) << url;
    EXPECT_EQ(result.error().code, "InvalidUrl") << url;
  }
  EXPECT_EQ(Stats().requests, 0u);
}

TEST_F(HttpTransportTest, HeaderNameWithColonOrSpaceIsInvalidHeader) {
  LocalSocket silent;
  for (const char* name : {"x-bad:name", "x bad", ""}) {
    HttpRequest request;
    request.url = silent.Url("/");
    request.headers = {{name, "v"}};
    Result<HttpResponse> result = transport_->Send(request);
    ASSERT_FALSE(result.ok()) << name;
    EXPECT_EQ(result.error().category, ErrorCategory::kInvalidInput) << name;
    EXPECT_EQ(result.error().code, "InvalidHeader") << name;
  }
  EXPECT_FALSE(silent.HasPendingConnection());
}

// --- Proxies ----------------------------------------------------------------------------------

// tests/harness/connect_proxy.py on a free port, recording what it receives.
class ProxyTest : public HttpTransportTest {
 protected:
  // Starts the proxy (refusing every request when `refuse`); returns "http://127.0.0.1:PORT".
  std::string StartProxy(bool refuse = false) {
    record_ = dir_ + "/proxy-record.txt";
    std::vector<std::string> argv = {"/usr/bin/python3",
                                     std::string(SPOTGRID_HARNESS_DIR) + "/connect_proxy.py",
                                     "--record", record_};
    if (refuse) argv.push_back("--refuse");
    auto proxy = testing::ChildProcess::StartServer(argv, dir_, "proxy");
    EXPECT_TRUE(proxy.ok()) << proxy.error().ToString();
    if (!proxy.ok()) return "";
    proxy_ = std::move(*proxy);
    return "http://127.0.0.1:" + std::to_string(proxy_->port());
  }
  // The proxy's record: one "METHOD TARGET auth=VALUE" per request it received.
  std::vector<std::string> Record() const {
    std::vector<std::string> lines;
    std::ifstream in(record_);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  // A transport whose proxy variables are `vars` (as the AWS CLI reads them).
  std::shared_ptr<CurlTransport> WithProxies(std::map<std::string, std::string, std::less<>> vars,
                                             const std::string& ca_bundle = "") {
    CurlTransportOptions options;
    options.ca_bundle = ca_bundle;
    options.proxies = ProxyEnvironment::Read(MapEnvironment(std::move(vars)));
    return std::make_shared<CurlTransport>(options);
  }

  std::string record_;
  std::unique_ptr<testing::ChildProcess> proxy_;
};

TEST_F(ProxyTest, HttpsGoesThroughAConnectTunnelWithProxyCredentialsAndIsReused) {
  const std::string cert = MakeCertificate("ip", "/CN=127.0.0.1", "IP:127.0.0.1");
  ASSERT_FALSE(cert.empty());
  const std::string url = StartTlsServer(cert);
  ASSERT_FALSE(url.empty());
  const std::string proxy = StartProxy();
  ASSERT_FALSE(proxy.empty());
  // "p%40ss" is "p@ss" percent-encoded, as in a URL; the proxy gets the decoded password.
  auto transport = WithProxies(
      {{"HTTPS_PROXY", "http://alice:p%40ss@" + proxy.substr(std::string("http://").size())}},
      cert);
  HttpRequest request;
  request.url = url + "secure";
  request.timeout = milliseconds(10000);
  for (int i = 0; i < 2; ++i) {
    Result<HttpResponse> r = transport->Send(request);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->body, "secure");
  }
  const std::string target =
      url.substr(std::string("https://").size(), url.size() - std::string("https://").size() - 1);
  // One tunnel for both requests (keep-alive through the proxy), with Basic alice:p@ss.
  EXPECT_EQ(Record(),
            std::vector<std::string>{"CONNECT " + target + " auth=Basic YWxpY2U6cEBzcw=="});
  EXPECT_EQ(Stats(*transport).connections_opened, 1u);
}

TEST_F(ProxyTest, HttpGoesThroughHttpProxyInAbsoluteForm) {
  LocalSocket server;
  std::string received;
  ServerThread serve([&] { received = ServeOnce(server.fd(), OkResponse("via proxy")); });
  const std::string proxy = StartProxy();
  ASSERT_FALSE(proxy.empty());
  // Upper-case HTTP_PROXY: libcurl alone would ignore it; the AWS CLI honours it.
  auto transport = WithProxies({{"HTTP_PROXY", proxy}});
  HttpRequest request;
  request.method = "PUT";
  request.url = server.Url("/bucket/key?x=1");
  request.headers = {{"x-amz-date", "20260101T000000Z"}};
  request.body = "payload";
  request.timeout = milliseconds(10000);
  Result<HttpResponse> r = transport->Send(request);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "via proxy");
  serve.Join();
  EXPECT_EQ(Record(), std::vector<std::string>{"PUT " + server.Url("/bucket/key?x=1") + " auth=-"});
  // What reached the server is what we sent, forwarded by the proxy.
  EXPECT_EQ(received.rfind("PUT /bucket/key?x=1 HTTP/1.1\r\n", 0), 0u) << received;
  EXPECT_NE(received.find("x-amz-date: 20260101T000000Z\r\n"), std::string::npos) << received;
  EXPECT_EQ(received.substr(received.find("\r\n\r\n") + 4), "payload");
}

TEST_F(ProxyTest, NoProxyEntryBypassesTheProxy) {
  LocalSocket server;
  ServerThread serve([&] { ServeOnce(server.fd(), OkResponse("direct")); });
  const std::string proxy = StartProxy();
  ASSERT_FALSE(proxy.empty());
  // A domain entry for another host first, then this host with its port, as botocore matches.
  auto transport =
      WithProxies({{"http_proxy", proxy},
                   {"NO_PROXY", "amazonaws.com, 127.0.0.1:" + std::to_string(server.port())}});
  HttpRequest request;
  request.url = server.Url("/");
  request.timeout = milliseconds(10000);
  Result<HttpResponse> r = transport->Send(request);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->body, "direct");
  EXPECT_TRUE(Record().empty());
}

TEST_F(ProxyTest, RefusedConnectIsConnectionFailedNamingTheProxyButNotItsCredentials) {
  const std::string proxy = StartProxy(/*refuse=*/true);
  ASSERT_FALSE(proxy.empty());
  const std::string host_port = proxy.substr(std::string("http://").size());
  auto transport = WithProxies({{"https_proxy", "bob:hunter2secret@" + host_port}});
  HttpRequest request;
  request.url = "https://127.0.0.1:9/never";  // the proxy refuses before any connection
  request.timeout = milliseconds(10000);
  Result<HttpResponse> r = transport->Send(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(r.error().code, "ConnectionFailed") << r.error().ToString();
  EXPECT_NE(r.error().message.find("proxy http://" + host_port), std::string::npos)
      << r.error().ToString();
  EXPECT_EQ(r.error().ToString().find("hunter2secret"), std::string::npos);
  EXPECT_EQ(r.error().ToString().find("bob"), std::string::npos);
  EXPECT_EQ(Record(),
            std::vector<std::string>{"CONNECT 127.0.0.1:9 auth=Basic Ym9iOmh1bnRlcjJzZWNyZXQ="});
}

TEST_F(ProxyTest, ProxyNotListeningIsConnectionFailedWithoutCredentials) {
  int port;
  {
    LocalSocket closed;
    port = closed.port();
  }
  auto transport =
      WithProxies({{"HTTP_PROXY", "http://carol:topsecret@127.0.0.1:" + std::to_string(port)}});
  HttpRequest request;
  request.url = "http://127.0.0.1:9/";
  request.timeout = milliseconds(10000);
  Result<HttpResponse> r = transport->Send(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "ConnectionFailed") << r.error().ToString();
  EXPECT_EQ(r.error().ToString().find("topsecret"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(r.error().ToString().find("carol"), std::string::npos) << r.error().ToString();
}

TEST_F(ProxyTest, UnusableProxyUrlIsInvalidInputWithoutCredentials) {
  auto transport = WithProxies({{"HTTPS_PROXY", "socks5://dave:pw-xyz@127.0.0.1:1080"}});
  HttpRequest request;
  request.url = "https://127.0.0.1:9/";
  Result<HttpResponse> r = transport->Send(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().category, ErrorCategory::kInvalidInput);
  EXPECT_NE(r.error().message.find("HTTPS_PROXY"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(r.error().ToString().find("pw-xyz"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(Stats(*transport).requests, 0u);
}

// --- What AwsContext wires into the transport ---------------------------------------------

class AwsContextTransportTest : public ProxyTest {
 protected:
  // An environment with keys and a region, no IMDS, and its own (absent) shared files.
  MapEnvironment BaseEnv() {
    MapEnvironment env;
    env.Set("AWS_REGION", "us-east-1");
    env.Set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    env.Set("AWS_SECRET_ACCESS_KEY", "secret");
    env.Set("AWS_EC2_METADATA_DISABLED", "true");
    env.Set("AWS_CONFIG_FILE", dir_ + "/config");
    env.Set("AWS_SHARED_CREDENTIALS_FILE", dir_ + "/credentials");
    return env;
  }
  Result<HttpResponse> SendThroughContext(const Environment& env, const std::string& url) {
    AwsContextOptions options;
    options.env = &env;
    auto context = AwsContext::Create(options);
    if (!context.ok()) return context.error();
    HttpRequest request;
    request.url = url;
    request.timeout = milliseconds(10000);
    return (*context)->transport().Send(request);
  }
};

TEST_F(AwsContextTransportTest, AwsCaBundleFromTheEnvironmentIsTrusted) {
  const std::string cert = MakeCertificate("ip", "/CN=127.0.0.1", "IP:127.0.0.1");
  ASSERT_FALSE(cert.empty());
  const std::string url = StartTlsServer(cert);
  ASSERT_FALSE(url.empty());
  MapEnvironment env = BaseEnv();
  Result<HttpResponse> untrusted = SendThroughContext(env, url);
  ASSERT_FALSE(untrusted.ok());
  EXPECT_EQ(untrusted.error().code, "TlsError");
  env.Set("AWS_CA_BUNDLE", cert);
  Result<HttpResponse> trusted = SendThroughContext(env, url);
  ASSERT_TRUE(trusted.ok()) << trusted.error().ToString();
  EXPECT_EQ(trusted->body, "secure");
}

TEST_F(AwsContextTransportTest, ProfileCaBundleIsTrustedAndAwsCaBundleWinsOverIt) {
  const std::string cert = MakeCertificate("ip", "/CN=127.0.0.1", "IP:127.0.0.1");
  const std::string other = MakeCertificate("other", "/CN=example.invalid", "DNS:example.invalid");
  ASSERT_FALSE(cert.empty());
  ASSERT_FALSE(other.empty());
  const std::string url = StartTlsServer(cert);
  ASSERT_FALSE(url.empty());
  MapEnvironment env = BaseEnv();
  env.Set("AWS_PROFILE", "research");
  std::ofstream(dir_ + "/config") << "[default]\nregion = eu-west-1\n\n"
                                  << "[profile research]\nca_bundle = " << cert << "\n";
  Result<HttpResponse> from_profile = SendThroughContext(env, url);
  ASSERT_TRUE(from_profile.ok()) << from_profile.error().ToString();
  EXPECT_EQ(from_profile->body, "secure");
  // botocore's order: the environment first. A bundle without this server's issuer fails.
  env.Set("AWS_CA_BUNDLE", other);
  Result<HttpResponse> from_env = SendThroughContext(env, url);
  ASSERT_FALSE(from_env.ok());
  EXPECT_EQ(from_env.error().code, "TlsError");
}

TEST_F(AwsContextTransportTest, UnreadableCaBundleFailsAtStartNamingItsSource) {
  MapEnvironment env = BaseEnv();
  env.Set("AWS_CA_BUNDLE", dir_ + "/missing.pem");
  AwsContextOptions options;
  options.env = &env;
  auto context = AwsContext::Create(options);
  ASSERT_FALSE(context.ok());
  EXPECT_EQ(context.error().category, ErrorCategory::kInvalidInput);
  EXPECT_NE(context.error().message.find("AWS_CA_BUNDLE"), std::string::npos);
}

TEST_F(AwsContextTransportTest, ProxyVariablesOfTheEnvironmentAreHonoured) {
  LocalSocket server;
  ServerThread serve([&] {
    ServeOnce(server.fd(), OkResponse("one"));
    ServeOnce(server.fd(), OkResponse("two"));
  });
  const std::string proxy = StartProxy();
  ASSERT_FALSE(proxy.empty());
  MapEnvironment env = BaseEnv();
  env.Set("HTTP_PROXY", proxy);
  Result<HttpResponse> proxied = SendThroughContext(env, server.Url("/first"));
  ASSERT_TRUE(proxied.ok()) << proxied.error().ToString();
  EXPECT_EQ(proxied->body, "one");
  env.Set("no_proxy", "127.0.0.1");
  Result<HttpResponse> direct = SendThroughContext(env, server.Url("/second"));
  ASSERT_TRUE(direct.ok()) << direct.error().ToString();
  EXPECT_EQ(direct->body, "two");
  serve.Join();
  EXPECT_EQ(Record(), std::vector<std::string>{"GET " + server.Url("/first") + " auth=-"});
}

// --- DNS resolution is bounded by the connect timeout --------------------------------------

// The sandboxed half of the next test, run by it in a private user, mount and network
// namespace: only a loopback interface exists, /etc/resolv.conf names 127.0.0.1, and a UDP
// socket there takes the queries and never answers. glibc would wait 5 s for it; the connect
// timeout must end the request after 300 ms, and a stop must end one at once.
void ResolutionIsCutByTheConnectTimeoutInSandbox(const char* resolv) {
  ASSERT_EQ(::mount(resolv, "/etc/resolv.conf", nullptr, MS_BIND, nullptr), 0) << strerror(errno);
  int ioctl_fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  ASSERT_EQ(::ioctl(ioctl_fd, SIOCGIFFLAGS, &ifr), 0) << strerror(errno);
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  ASSERT_EQ(::ioctl(ioctl_fd, SIOCSIFFLAGS, &ifr), 0) << strerror(errno);
  ::close(ioctl_fd);
  int dns = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(53);
  ASSERT_EQ(::bind(dns, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);

  CurlTransport transport;
  HttpRequest request;
  request.url = "http://never-answered.spotgrid.test:8080/";
  request.connect_timeout = milliseconds(300);
  request.timeout = milliseconds(60000);
  const auto start = std::chrono::steady_clock::now();
  Result<HttpResponse> result = transport.Send(request);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, "Timeout") << result.error().ToString();
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(2000)) << "glibc's own DNS timeout is 5 s";
  // The query reached the silent server: the time went into resolution.
  char buf[512];
  EXPECT_GT(::recv(dns, buf, sizeof buf, MSG_DONTWAIT), 0);

  // A stop raised while a resolution hangs ends the request at once too.
  StopSource stop;
  HttpRequest stopped = request;
  stopped.url = "http://also-never-answered.spotgrid.test:8080/";
  stopped.connect_timeout = milliseconds(30000);
  stopped.stop = &stop;
  std::optional<Result<HttpResponse>> cancelled;
  std::chrono::steady_clock::time_point returned_at;
  std::thread sender([&] {
    cancelled.emplace(transport.Send(stopped));
    returned_at = std::chrono::steady_clock::now();
  });
  // The resolver's query for this name arriving at the silent server is the sign that the
  // request is resolving (earlier datagrams are the first request's).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool asked = false;
  while (!asked && std::chrono::steady_clock::now() < deadline) {
    pollfd p{dns, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) continue;
    ssize_t n = ::recv(dns, buf, sizeof buf, 0);
    asked = n > 0 && std::string(buf, static_cast<std::size_t>(n)).find("also-never-answered") !=
                         std::string::npos;
  }
  EXPECT_TRUE(asked);
  const auto raised = std::chrono::steady_clock::now();
  stop.Request();
  sender.join();
  ASSERT_TRUE(cancelled.has_value());
  ASSERT_FALSE(cancelled->ok());
  EXPECT_EQ(cancelled->error().code, "Cancelled");
  EXPECT_LT(returned_at - raised, milliseconds(300));
  ::close(dns);
}

// The test binary runs itself again, filtered to this test, inside the sandbox; the
// environment variable tells the sandboxed run to do the sandboxed half.
TEST(DnsResolutionTest, ResolutionThatNeverAnswersEndsAtTheConnectTimeout) {
  if (const char* resolv = std::getenv("SPOTGRID_TEST_RESOLV_CONF")) {
    ResolutionIsCutByTheConnectTimeoutInSandbox(resolv);
    return;
  }
  // unshare(1) with a user namespace gives the child the rights to mount and configure its own
  // network namespace without privileges. A kernel that refuses it skips the test, except in
  // CI, which must prove the bound.
  const testing::ScopedTempDir scoped("dns-sandbox");
  const std::string& dir = scoped.path();
  auto probe =
      testing::ChildProcess::Start({{"unshare", "-rmn", "true"}, {}, {}, dir + "/probe.log", ""});
  if (!probe.ok() || !(*probe)->Wait(std::chrono::seconds(30)) || (*probe)->ExitCode() != 0) {
    const std::string why = "no user+network namespaces here (unshare -rmn): " +
                            (probe.ok() ? (*probe)->ReadLog() : probe.error().ToString());
    if (std::getenv("CI") != nullptr) FAIL() << why;
    GTEST_SKIP() << why;
  }
  const std::string resolv = dir + "/resolv.conf";
  std::ofstream(resolv) << "nameserver 127.0.0.1\noptions timeout:5 attempts:1\n";
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  auto child = testing::ChildProcess::Start(
      {{"unshare", "-rmn", self,
        "--gtest_filter=DnsResolutionTest.ResolutionThatNeverAnswersEndsAtTheConnectTimeout"},
       {{"SPOTGRID_TEST_RESOLV_CONF", resolv}},
       {},
       dir + "/dns-sandbox.log",
       ""});
  ASSERT_TRUE(child.ok()) << child.error().ToString();
  ASSERT_TRUE((*child)->Wait(std::chrono::seconds(60))) << (*child)->ReadLog();
  EXPECT_EQ((*child)->ExitCode(), 0) << (*child)->ReadLog();
  EXPECT_NE((*child)->ReadLog().find("[  PASSED  ] 1 test"), std::string::npos)
      << (*child)->ReadLog();
}

}  // namespace
}  // namespace spotgrid
