// Http1ResponseParser on byte strings: framing, interim responses, keep-alive, malformed input,
// and the same results whether the bytes arrive whole, one at a time or split anywhere.
#include "http/http1_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace spotgrid {
namespace {

class CollectingSink final : public Http1BodySink {
 public:
  bool OnBody(std::string_view data) override {
    ++calls;
    if (refuse) return false;
    body.append(data);
    return true;
  }
  std::string body;
  int calls = 0;
  bool refuse = false;
};

struct Parsed {
  bool ok = false;
  bool done = false;
  int status = 0;
  bool keep_alive = false;
  Headers headers;
  std::string body;
  std::string error;
  std::size_t unconsumed = 0;  // bytes left over after done()
};

// Feeds `wire` in pieces of `piece` bytes, keeping unconsumed bytes as the transport does; at
// the end of input, `eof` says whether the peer closed the connection.
Parsed Parse(const std::string& wire, std::size_t piece, bool eof, bool head_request = false) {
  Parsed out;
  CollectingSink sink;
  Http1ResponseParser parser(head_request, &out.headers);
  std::string pending;
  std::size_t offset = 0;
  while (offset < wire.size() && !parser.done()) {
    pending.append(wire, offset, piece);
    offset += std::min(piece, wire.size() - offset);
    std::ptrdiff_t used = parser.Feed(pending, sink);
    if (used < 0) {
      out.error = parser.error();
      return out;
    }
    pending.erase(0, static_cast<std::size_t>(used));
  }
  out.unconsumed = pending.size() + (wire.size() - offset);
  if (!parser.done() && eof && !parser.FinishAtEof()) {
    out.error = parser.error();
    return out;
  }
  out.ok = true;
  out.done = parser.done();
  out.status = parser.status();
  out.keep_alive = parser.keep_alive();
  out.body = sink.body;
  return out;
}

// Every piece size from 1 byte to the whole input gives the same result.
void ExpectSameForEverySplit(const std::string& wire, bool eof, const Parsed& expected,
                             bool head_request = false) {
  for (std::size_t piece = 1; piece <= wire.size(); ++piece) {
    Parsed p = Parse(wire, piece, eof, head_request);
    ASSERT_EQ(p.ok, expected.ok) << "piece " << piece << ": " << p.error;
    EXPECT_EQ(p.status, expected.status) << "piece " << piece;
    EXPECT_EQ(p.body, expected.body) << "piece " << piece;
    EXPECT_EQ(p.headers, expected.headers) << "piece " << piece;
    EXPECT_EQ(p.keep_alive, expected.keep_alive) << "piece " << piece;
  }
}

TEST(Http1ParserTest, ContentLengthBodyWithLowerCasedTrimmedHeaders) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\nX-Amz-Request-Id:  RID \r\nContent-Length: 5\r\nETag:\t\"abc\"\r\n\r\n"
      "hello";
  Parsed p = Parse(wire, wire.size(), false);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(p.body, "hello");
  EXPECT_TRUE(p.keep_alive);
  Headers expected = {{"x-amz-request-id", "RID"}, {"content-length", "5"}, {"etag", "\"abc\""}};
  EXPECT_EQ(p.headers, expected);
  ExpectSameForEverySplit(wire, false, p);
}

TEST(Http1ParserTest, StopsAtTheEndOfTheResponseAndLeavesExtraBytes) {
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 junk";
  Parsed p = Parse(wire, wire.size(), false);
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.body, "ok");
  EXPECT_EQ(p.unconsumed, std::string("HTTP/1.1 junk").size());
}

TEST(Http1ParserTest, ChunkedBodyWithExtensionsAndTrailersDecodes) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n"
      "1A ; other\r\n abcdefghijklmnopqrstuvwxy\r\n"
      "0\r\nX-Checksum: 42\r\n\r\n";
  Parsed p = Parse(wire, wire.size(), false);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.body, "hello abcdefghijklmnopqrstuvwxy");
  EXPECT_TRUE(p.keep_alive);
  Headers expected = {{"transfer-encoding", "chunked"}, {"x-checksum", "42"}};
  EXPECT_EQ(p.headers, expected);
  EXPECT_EQ(p.unconsumed, 0u);
  ExpectSameForEverySplit(wire, false, p);
}

TEST(Http1ParserTest, TransferEncodingChunkedOverridesContentLength) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n";
  Parsed p = Parse(wire, 7, false);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.body, "abc");
}

TEST(Http1ParserTest, BodyWithoutLengthEndsAtCloseAndIsNotKeptAlive) {
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
  Parsed open = Parse(wire, wire.size(), false);
  ASSERT_TRUE(open.ok);
  EXPECT_FALSE(open.done) << "more may come until the peer closes";
  Parsed closed = Parse(wire, wire.size(), true);
  ASSERT_TRUE(closed.ok) << closed.error;
  EXPECT_TRUE(closed.done);
  EXPECT_EQ(closed.body, "until the end");
  EXPECT_FALSE(closed.keep_alive);
  ExpectSameForEverySplit(wire, true, closed);
}

TEST(Http1ParserTest, InterimResponsesAreSkippedWithTheirHeaders) {
  const std::string wire =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
      "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  Parsed p = Parse(wire, wire.size(), false);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.status, 201);
  EXPECT_EQ(p.body, "ok");
  Headers expected = {{"content-length", "2"}};
  EXPECT_EQ(p.headers, expected);
  ExpectSameForEverySplit(wire, false, p);
}

TEST(Http1ParserTest, HeadAnd204And304HaveNoBody) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
  Parsed p = Parse(head, head.size(), false, /*head_request=*/true);
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.done);
  EXPECT_TRUE(p.keep_alive);
  EXPECT_EQ(p.body, "");
  for (const char* status : {"204 No Content", "304 Not Modified"}) {
    const std::string wire = std::string("HTTP/1.1 ") + status + "\r\nETag: x\r\n\r\n";
    Parsed q = Parse(wire, 1, false);
    ASSERT_TRUE(q.ok) << status;
    EXPECT_TRUE(q.done) << status;
    EXPECT_TRUE(q.keep_alive) << status;
    EXPECT_EQ(q.unconsumed, 0u);
  }
}

TEST(Http1ParserTest, KeepAliveFollowsVersionAndConnectionHeader) {
  EXPECT_FALSE(
      Parse("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n", 1000,
            false)
          .keep_alive);
  EXPECT_FALSE(Parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 1000, false).keep_alive);
  EXPECT_TRUE(
      Parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 1000, false)
          .keep_alive);
  EXPECT_TRUE(Parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1000, false).keep_alive);
}

TEST(Http1ParserTest, BareLineFeedsAndFoldedHeadersAreAccepted) {
  Parsed p = Parse("HTTP/1.1 200 OK\nX-Long: a\n  b\nContent-Length: 1\n\nz", 3, false);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.body, "z");
  Headers expected = {{"x-long", "a b"}, {"content-length", "1"}};
  EXPECT_EQ(p.headers, expected);
}

TEST(Http1ParserTest, MalformedInputFails) {
  for (const char* wire : {
           "HTTP/2 200 OK\r\n\r\n",
           "HTTP/1.1 2x0 OK\r\n\r\n",
           "HTTP/1.1 200OK\r\n\r\n",
           "SSH-2.0-OpenSSH\r\n\r\n",
           "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
           "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
       }) {
    Parsed p = Parse(wire, 1000, true);
    EXPECT_FALSE(p.ok) << wire;
    EXPECT_FALSE(p.error.empty()) << wire;
  }
}

TEST(Http1ParserTest, EofInsideHeadOrBodyFails) {
  for (const char* wire : {
           "",
           "HTTP/1.1 200 OK\r\nContent-Le",
           "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
       }) {
    Parsed p = Parse(wire, 1000, true);
    EXPECT_FALSE(p.ok) << wire;
    EXPECT_FALSE(p.error.empty()) << wire;
  }
}

TEST(Http1ParserTest, HeadLargerThanLimitFailsEvenWithoutLineEnd) {
  std::string many = "HTTP/1.1 200 OK\r\n";
  while (many.size() <= Http1ResponseParser::kMaxHeadBytes) many += "X-Pad: 0123456789abcdef\r\n";
  many += "\r\n";
  EXPECT_FALSE(Parse(many, 4096, false).ok);
  std::string one_line = "HTTP/1.1 200 OK\r\nX-Huge: " +
                         std::string(Http1ResponseParser::kMaxHeadBytes, 'a');  // no CRLF yet
  Parsed p = Parse(one_line, 4096, false);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.error.find("64 KiB"), std::string::npos) << p.error;
}

TEST(Http1ParserTest, SinkRefusalStopsParsing) {
  Headers headers;
  CollectingSink sink;
  sink.refuse = true;
  Http1ResponseParser parser(false, &headers);
  EXPECT_LT(parser.Feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", sink), 0);
  EXPECT_EQ(sink.calls, 1);
  EXPECT_TRUE(parser.failed());
}

}  // namespace
}  // namespace spotgrid
