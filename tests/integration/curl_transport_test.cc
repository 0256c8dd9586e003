// CurlTransport against real servers: s3rver for streamed bodies and connection reuse, and
// sockets opened by the test itself for exact wire bytes, timeouts and refused connections.
#include "spotgrid/http/curl_transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "spotgrid/aws/aws_client.h"
#include "support/child_process.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

using std::chrono::milliseconds;

// A listening TCP socket on 127.0.0.1 that never accepts unless told to: the kernel
// completes handshakes into the backlog, so a client connects and then waits forever.
class LocalSocket {
 public:
  LocalSocket() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~LocalSocket() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }
  int port() const { return port_; }
  std::string Url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Accepts one connection, reads one request (headers + Content-Length body) and answers
// with `response`. Returns the raw request bytes.
std::string ServeOnce(int listen_fd, const std::string& response) {
  int fd = ::accept(listen_fd, nullptr, nullptr);
  if (fd < 0) return {};
  std::string data;
  char buf[65536];
  std::size_t need = std::string::npos;
  while (need == std::string::npos || data.size() < need) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
    auto end = data.find("\r\n\r\n");
    if (need == std::string::npos && end != std::string::npos) {
      std::size_t length = 0;
      auto cl = data.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) length = std::stoull(data.substr(cl + 16));
      need = end + 4 + length;
    }
  }
  ::send(fd, response.data(), response.size(), MSG_NOSIGNAL);
  ::close(fd);
  return data;
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

class CurlTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::UseEmulators();
    transport_ = std::make_shared<CurlTransport>();
    dir_ = testing::MakeTempDir("curl-transport-test");
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
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
    std::string bucket = testing::UniqueName("curl");
    AwsRequest create;
    create.operation = "CreateBucket";
    create.method = "PUT";
    create.path = "/" + bucket;
    Result<HttpResponse> r = s3.Send(create);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return bucket;
  }

  std::shared_ptr<CurlTransport> transport_;
  std::string dir_;
};

TEST_F(CurlTransportTest, StreamsBodyFromFileRangeAndResponseToFile) {
  auto s3 = S3();
  ASSERT_TRUE(s3);
  std::string bucket = NewBucket(*s3);
  // 3 MiB of data surrounded by bytes that must not be sent.
  const std::string content = RandomBytes(3 << 20, 7);
  const std::string source = dir_ + "/source";
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
  get.response_file = dir_ + "/downloaded";
  Result<HttpResponse> get_result = s3->Send(get);
  ASSERT_TRUE(get_result.ok()) << get_result.error().ToString();
  EXPECT_TRUE(get_result->body.empty());
  EXPECT_EQ(ReadFile(get.response_file).size(), content.size());
  EXPECT_TRUE(ReadFile(get.response_file) == content);
}

TEST_F(CurlTransportTest, ErrorBodyArrivesInMemoryWhenResponseFileIsSet) {
  auto s3 = S3();
  ASSERT_TRUE(s3);
  std::string bucket = NewBucket(*s3);
  AwsRequest get;
  get.operation = "GetObject";
  get.method = "GET";
  get.path = "/" + bucket + "/missing";
  get.response_file = dir_ + "/never-written";
  Result<HttpResponse> result = s3->Send(get);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, "NoSuchKey");
  EXPECT_TRUE(result.error().IsNotFound());
  EXPECT_FALSE(std::filesystem::exists(get.response_file));
}

TEST_F(CurlTransportTest, SequentialRequestsReuseOneConnection) {
  auto s3 = S3();
  ASSERT_TRUE(s3);
  std::string bucket = NewBucket(*s3);
  const auto before = transport_->stats();
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
  const auto after = transport_->stats();
  EXPECT_EQ(after.requests - before.requests, static_cast<std::uint64_t>(kRequests));
  // The server may close an idle connection now and then; without reuse this would be 40.
  EXPECT_LE(after.connections_opened - before.connections_opened, 2u);
}

TEST_F(CurlTransportTest, ConcurrentSendersShareTheTransportSafely) {
  auto s3 = S3();
  ASSERT_TRUE(s3);
  std::string bucket = NewBucket(*s3);
  const auto before = transport_->stats();
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
  EXPECT_LE(transport_->stats().connections_opened - before.connections_opened, 8u);
}

TEST_F(CurlTransportTest, SendsExactlyTheGivenHeadersWithContentLength) {
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
  Result<HttpResponse> result = transport_->Send(request);
  serve.join();
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->status, 201);
  EXPECT_EQ(result->body, "ok");
  EXPECT_EQ(result->Header("x-amz-request-id"), "RID");
  EXPECT_EQ(result->headers.at(0).first, "x-amz-request-id");

  std::string head = received.substr(0, received.find("\r\n\r\n") + 2);
  EXPECT_EQ(head.rfind("POST /path?x=1 HTTP/1.1\r\n", 0), 0u) << head;
  // curl writes a given Host header with its own capitalisation; names are case-insensitive.
  EXPECT_NE(head.find("Host: example.test\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("Host:"), head.rfind("Host:")) << "exactly one Host header\n" << head;
  EXPECT_NE(head.find("x-amz-target: AmazonSQS.SendMessage\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos)
      << head;
  for (const char* unwanted :
       {"Expect", "Content-Type", "Accept:", "Transfer-Encoding", "User-Agent"}) {
    EXPECT_EQ(head.find(unwanted), std::string::npos) << unwanted << " in\n" << head;
  }
  EXPECT_TRUE(received.substr(received.find("\r\n\r\n") + 4) == body);
}

TEST_F(CurlTransportTest, SilentServerGivesTransientTimeout) {
  LocalSocket silent;  // accepts into the backlog, never answers
  HttpRequest request;
  request.url = silent.Url();
  request.timeout = milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  Result<HttpResponse> result = transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(result.error().code, "Timeout");
  EXPECT_FALSE(result.error().message.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(CurlTransportTest, RefusedConnectionGivesConnectionFailed) {
  int port;
  {
    LocalSocket closed;
    port = closed.port();
  }  // nothing listens on `port` any more
  HttpRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  Result<HttpResponse> result = transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kTransient);
  EXPECT_EQ(result.error().code, "ConnectionFailed");
  EXPECT_EQ(result.error().http_status, 0);
}

TEST_F(CurlTransportTest, BodyFileShorterThanRangeFailsWithIoError) {
  LocalSocket silent;
  const std::string path = dir_ + "/short";
  std::ofstream(path) << "only a few bytes";
  HttpRequest request;
  request.method = "PUT";
  request.url = silent.Url("/k");
  request.body_file = FileRange{path, 0, 1 << 20};
  request.timeout = milliseconds(10000);
  Result<HttpResponse> result = transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kIo);
  EXPECT_EQ(result.error().code, "BodyReadFailed");
}

TEST_F(CurlTransportTest, MissingBodyFileFailsBeforeConnecting) {
  LocalSocket silent;
  HttpRequest request;
  request.method = "PUT";
  request.url = silent.Url("/k");
  request.body_file = FileRange{dir_ + "/does-not-exist", 0, 10};
  Result<HttpResponse> result = transport_->Send(request);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category, ErrorCategory::kIo);
  EXPECT_EQ(transport_->stats().requests, 0u);
}

// A one-file HTTPS server: answers every GET with 200 "secure" using the given certificate.
constexpr char kTlsServerScript[] = R"py(
import argparse, http.server, os, ssl
p = argparse.ArgumentParser()
p.add_argument("--cert"); p.add_argument("--key")
p.add_argument("--port", type=int); p.add_argument("--port-file")
a = p.parse_args()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "6"); self.end_headers()
        self.wfile.write(b"secure")
    def log_message(self, *args): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(a.cert, a.key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
with open(a.port_file + ".tmp", "w") as f: f.write(str(s.server_address[1]))
os.rename(a.port_file + ".tmp", a.port_file)
s.serve_forever()
)py";

TEST_F(CurlTransportTest, UntrustedCertificateIsTlsErrorAndTrustedBundleSucceeds) {
  const std::string cert = dir_ + "/cert.pem", key = dir_ + "/key.pem";
  auto gen = testing::ChildProcess::Start(
      {{"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"},
       {},
       {},
       dir_ + "/openssl.log",
       ""});
  ASSERT_TRUE(gen.ok()) << gen.error().ToString();
  ASSERT_TRUE((*gen)->Wait(std::chrono::seconds(30)));
  ASSERT_EQ((*gen)->ExitCode(), 0) << (*gen)->ReadLog();
  const std::string script = dir_ + "/tls_server.py";
  std::ofstream(script) << kTlsServerScript;
  auto server = testing::ChildProcess::StartServer(
      {"/usr/bin/python3", script, "--cert", cert, "--key", key}, dir_, "tls_server");
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  auto port = (*server)->WaitForPortFile(dir_ + "/tls_server.port", std::chrono::seconds(15));
  ASSERT_TRUE(port.ok()) << port.error().ToString();

  HttpRequest request;
  request.url = "https://127.0.0.1:" + std::to_string(*port) + "/";
  request.timeout = milliseconds(10000);
  Result<HttpResponse> untrusted = transport_->Send(request);
  ASSERT_FALSE(untrusted.ok());
  EXPECT_EQ(untrusted.error().category, ErrorCategory::kClient);
  EXPECT_EQ(untrusted.error().code, "TlsError");

  CurlTransportOptions options;
  options.ca_bundle = cert;
  CurlTransport trusting(options);
  Result<HttpResponse> trusted = trusting.Send(request);
  ASSERT_TRUE(trusted.ok()) << trusted.error().ToString();
  EXPECT_EQ(trusted->status, 200);
  EXPECT_EQ(trusted->body, "secure");
}

}  // namespace
}  // namespace spotgrid
