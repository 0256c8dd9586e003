// Percent-encoding as SigV4 defines it, query/form building, and endpoint URL parsing.
#include "spotgrid/aws/uri.h"

#include <gtest/gtest.h>

#include <string>

namespace spotgrid {
namespace {

TEST(UriEncode, KeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(UriEncode("AZaz09-_.~"), "AZaz09-_.~");
  EXPECT_EQ(UriEncode("a b+c/d=e&f%g*h"), "a%20b%2Bc%2Fd%3De%26f%25g%2Ah");
  EXPECT_EQ(UriEncode("!#$'()*,:;?@[]"), "%21%23%24%27%28%29%2A%2C%3A%3B%3F%40%5B%5D");
}

TEST(UriEncode, UsesUpperCaseHexOverUtf8Bytes) {
  EXPECT_EQ(UriEncode("\xE1\x88\xB4"), "%E1%88%B4");
  EXPECT_EQ(UriEncode("\xC3\xA9t\xC3\xA9"), "%C3%A9t%C3%A9");
  EXPECT_EQ(UriEncode(std::string("\x00\x7F\xFF", 3)), "%00%7F%FF");
}

TEST(UriEncode, KeepsSlashOnlyWhenAsked) {
  EXPECT_EQ(UriEncode("a/b c/", /*keep_slash=*/true), "a/b%20c/");
  EXPECT_EQ(UriEncode("a/b c/", /*keep_slash=*/false), "a%2Fb%20c%2F");
  EXPECT_EQ(UriEncode("", true), "");
}

TEST(UriDecode, DecodesPercentSequencesInEitherCase) {
  EXPECT_EQ(UriDecode("a%20b%2fc%2F%E1%88%b4"), "a b/c/\xE1\x88\xB4");
}

TEST(UriDecode, LeavesPlusAlone) { EXPECT_EQ(UriDecode("a+b"), "a+b"); }

TEST(UriDecode, KeepsMalformedEscapesLiterally) {
  EXPECT_EQ(UriDecode("100%"), "100%");
  EXPECT_EQ(UriDecode("%4"), "%4");
  EXPECT_EQ(UriDecode("%zz%41"), "%zzA");
}

TEST(UriDecode, InvertsUriEncode) {
  const std::string original = "k\xC3\xA9y with/every+thing=&%~";
  EXPECT_EQ(UriDecode(UriEncode(original)), original);
  EXPECT_EQ(UriDecode(UriEncode(original, true)), original);
}

TEST(BuildQuery, EncodesNamesAndValuesInGivenOrder) {
  EXPECT_EQ(BuildQuery({{"uploadId", "a/b+c"}, {"partNumber", "3"}}),
            "uploadId=a%2Fb%2Bc&partNumber=3");
  EXPECT_EQ(BuildQuery({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(BuildQuery({}), "");
  EXPECT_EQ(BuildQuery({{"a b", "c d"}}), "a%20b=c%20d");
}

TEST(FormEncode, EncodesQueryProtocolParameters) {
  EXPECT_EQ(FormEncode({{"Action", "CreateTags"},
                        {"Version", "2016-11-15"},
                        {"ResourceId.1", "i-0123"},
                        {"Tag.1.Value", "a b&c=d/e\xC3\xA9"}}),
            "Action=CreateTags&Version=2016-11-15&ResourceId.1=i-0123&"
            "Tag.1.Value=a%20b%26c%3Dd%2Fe%C3%A9");
}

TEST(ParseUrl, ParsesHostPortAndBasePath) {
  const auto url = ParseUrl("http://127.0.0.1:4567/t-42");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(url->scheme, "http");
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 4567);
  EXPECT_EQ(url->path, "/t-42");
  EXPECT_EQ(url->query, "");
  EXPECT_EQ(url->Authority(), "127.0.0.1:4567");
  EXPECT_EQ(url->Origin(), "http://127.0.0.1:4567");
}

TEST(ParseUrl, DefaultPortIsZeroAndLeftOutOfAuthority) {
  const auto url = ParseUrl("https://sqs.us-east-1.amazonaws.com");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->port, 0);
  EXPECT_EQ(url->path, "");
  EXPECT_EQ(url->Authority(), "sqs.us-east-1.amazonaws.com");
  EXPECT_EQ(url->Origin(), "https://sqs.us-east-1.amazonaws.com");
}

TEST(ParseUrl, ExplicitDefaultPortIsLeftOutOfAuthority) {
  // curl omits a default port from the Host header, so the signed host must too.
  const auto http = ParseUrl("http://example.com:80/");
  ASSERT_TRUE(http.ok());
  EXPECT_EQ(http->port, 80);
  EXPECT_EQ(http->Authority(), "example.com");
  const auto https = ParseUrl("https://example.com:443");
  ASSERT_TRUE(https.ok());
  EXPECT_EQ(https->Authority(), "example.com");
  const auto swapped = ParseUrl("https://example.com:80");
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(swapped->Authority(), "example.com:80");
}

TEST(ParseUrl, SchemeIsCaseInsensitive) {
  const auto url = ParseUrl("HTTPS://Example.com/x");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->scheme, "https");
  EXPECT_EQ(url->host, "Example.com");
}

TEST(ParseUrl, KeepsPathAndQueryEncodedAsWritten) {
  const auto url = ParseUrl("http://localhost:9000/bucket/a%20b/c?uploadId=x%2Fy&partNumber=2");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->path, "/bucket/a%20b/c");
  EXPECT_EQ(url->query, "uploadId=x%2Fy&partNumber=2");
  const auto root_query = ParseUrl("http://h?x=1");
  ASSERT_TRUE(root_query.ok());
  EXPECT_EQ(root_query->path, "");
  EXPECT_EQ(root_query->query, "x=1");
}

TEST(ParseUrl, AcceptsIpv6Literal) {
  const auto url = ParseUrl("http://[fd00:ec2::254]/latest");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(url->host, "fd00:ec2::254");
  EXPECT_EQ(url->port, 0);
  EXPECT_EQ(url->Authority(), "[fd00:ec2::254]");
  const auto with_port = ParseUrl("http://[::1]:8080/");
  ASSERT_TRUE(with_port.ok());
  EXPECT_EQ(with_port->port, 8080);
  EXPECT_EQ(with_port->Origin(), "http://[::1]:8080");
}

void ExpectRejected(const std::string& url, const std::string& reason, bool echoed = true) {
  const auto parsed = ParseUrl(url);
  ASSERT_FALSE(parsed.ok()) << url << " was accepted";
  EXPECT_EQ(parsed.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(parsed.error().message.find(url) != std::string::npos, echoed)
      << parsed.error().message;
  EXPECT_NE(parsed.error().message.find(reason), std::string::npos) << parsed.error().message;
}

TEST(ParseUrl, RejectsBadUrlsWithAClearMessage) {
  ExpectRejected("localhost:4566", "missing scheme");
  ExpectRejected("ftp://example.com", "unsupported scheme \"ftp\"");
  ExpectRejected("http://", "empty host");
  ExpectRejected("http:///path", "empty host");
  ExpectRejected("http://:8080/", "empty host");
  ExpectRejected("http://host:/", "empty port");
  ExpectRejected("http://host:0/", "port must be a number from 1 to 65535");
  ExpectRejected("http://host:65536/", "port must be a number from 1 to 65535");
  ExpectRejected("http://host:80a/", "port must be a number from 1 to 65535");
  ExpectRejected("http://host:-1/", "port must be a number from 1 to 65535");
  // Never echoed: the user info may be a password.
  ExpectRejected("http://user:secret@host/", "user info", /*echoed=*/false);
  EXPECT_EQ(ParseUrl("http://user:secret@host/").error().message.find("secret"), std::string::npos);
  ExpectRejected("http://host/a#frag", "fragments");
  ExpectRejected("http://ho st/", "whitespace");
  ExpectRejected("http://host/\n", "whitespace");
  ExpectRejected("http://[::1/", "unterminated IPv6");
  ExpectRejected("http://[::1]x/", "after IPv6");
  ExpectRejected("", "missing scheme");
}

}  // namespace
}  // namespace spotgrid
