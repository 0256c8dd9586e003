// Runs AWS's own SigV4 test suite (tests/data/sigv4-test-suite/v4, see its README.md) through our
// signer: every case folder, header form and query (presigned) form, comparing the canonical
// request, the string to sign, the signature and the signed request byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "spotgrid/aws/sigv4.h"
#include "spotgrid/aws/uri.h"

namespace spotgrid {
namespace {

namespace fs = std::filesystem;

const fs::path kSuiteDir = fs::path(SPOTGRID_TEST_DATA_DIR) / "sigv4-test-suite" / "v4";
constexpr std::size_t kExpectedCases = 38;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A raw HTTP request as the suite writes it: "METHOD target HTTP/1.1", headers "Name:value"
// (continuation lines start with whitespace), a blank line, then the body. The target is not
// percent-encoded and may contain spaces, so the version is split off at the last space.
struct RawRequest {
  std::string method;
  std::string path;
  std::string query;
  Headers headers;
  std::string body;
};

RawRequest ParseRawRequest(const std::string& text) {
  RawRequest out;
  std::size_t pos = text.find('\n');
  const std::string request_line = text.substr(0, pos);
  const std::size_t first_space = request_line.find(' ');
  const std::size_t last_space = request_line.rfind(' ');
  out.method = request_line.substr(0, first_space);
  const std::string target = request_line.substr(first_space + 1, last_space - first_space - 1);
  const std::size_t question = target.find('?');
  out.path = target.substr(0, question);
  if (question != std::string::npos) out.query = target.substr(question + 1);

  pos = pos == std::string::npos ? text.size() : pos + 1;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) {
      if (pos < text.size()) out.body = text.substr(pos);
      break;
    }
    if ((line[0] == ' ' || line[0] == '\t') && !out.headers.empty()) {
      // Obsolete line folding: kept as sent; the signer must fold it into one value.
      out.headers.back().second += "\n" + line;
      continue;
    }
    const std::size_t colon = line.find(':');
    out.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  return out;
}

Clock::WallTime ParseTimestamp(const std::string& iso) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  EXPECT_EQ(std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s), 6) << iso;
  using namespace std::chrono;
  return sys_days{year{y} / month{static_cast<unsigned>(mo)} / day{static_cast<unsigned>(d)}} +
         hours{h} + minutes{mi} + seconds{s};
}

// Multiset of decoded (name, value) pairs of a query string: the suite's expected presigned
// query is in the signer's output order, which the README says not to rely on.
std::vector<std::pair<std::string, std::string>> QueryParams(const std::string& query) {
  std::vector<std::pair<std::string, std::string>> out;
  std::stringstream ss(query);
  std::string piece;
  while (std::getline(ss, piece, '&')) {
    const std::size_t eq = piece.find('=');
    out.emplace_back(UriDecode(piece.substr(0, eq)),
                     eq == std::string::npos ? "" : UriDecode(piece.substr(eq + 1)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::pair<std::string, std::string>> LowerSorted(const Headers& headers) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : headers) out.emplace_back(Lower(name), value);
  std::sort(out.begin(), out.end());
  return out;
}

struct Case {
  std::string name;
  fs::path dir;
  RawRequest request;
  Credentials credentials;
  bool omit_session_token = false;
  bool sign_body = false;
  SigningParams params;
  std::chrono::seconds expires{0};

  std::string Expected(const char* file) const { return ReadFile(dir / file); }
};

Case LoadCase(const fs::path& dir) {
  Case c;
  c.name = dir.filename().string();
  c.dir = dir;
  c.request = ParseRawRequest(ReadFile(dir / "request.txt"));
  const auto context = nlohmann::json::parse(ReadFile(dir / "context.json"), nullptr, false);
  EXPECT_FALSE(context.is_discarded()) << c.name << ": context.json is not JSON";
  if (context.is_discarded()) return c;
  const auto& creds = context.at("credentials");
  c.credentials.access_key_id = creds.at("access_key_id").get<std::string>();
  c.credentials.secret_access_key = creds.at("secret_access_key").get<std::string>();
  c.credentials.session_token = creds.value("token", "");
  c.omit_session_token = context.value("omit_session_token", false);
  c.sign_body = context.value("sign_body", false);
  c.params.region = context.at("region").get<std::string>();
  c.params.service = context.at("service").get<std::string>();
  c.params.time = ParseTimestamp(context.at("timestamp").get<std::string>());
  // The suite's paths are the raw (unencoded) targets the CRT signer encodes once; a
  // normalising service also normalises first.
  c.params.path_mode =
      context.value("normalize", true) ? PathMode::kNormalizePath : PathMode::kEncodeOnly;
  c.expires = std::chrono::seconds(context.at("expiration_in_seconds").get<int>());
  return c;
}

SigningRequest ToSigningRequest(const Case& c) {
  SigningRequest request;
  request.method = c.request.method;
  request.path = c.request.path;
  request.query = c.request.query;
  request.headers = c.request.headers;
  request.payload_hash = Sha256Hex(c.request.body);
  return request;
}

Credentials SignedCredentials(const Case& c) {
  Credentials credentials = c.credentials;
  // "omit_session_token": the token is attached after signing, so it is not signed.
  if (c.omit_session_token) credentials.session_token.clear();
  return credentials;
}

// Returns "" when the header form matches, else the first stage that differs.
std::string CheckHeaderForm(const Case& c) {
  SigningParams params = c.params;
  params.add_content_sha256_header = c.sign_body;
  const SignedRequest signed_request =
      SignRequest(ToSigningRequest(c), SignedCredentials(c), params);

  if (signed_request.canonical_request != c.Expected("header-canonical-request.txt")) {
    return "header canonical request:\n" + signed_request.canonical_request + "\nexpected:\n" +
           c.Expected("header-canonical-request.txt");
  }
  if (signed_request.string_to_sign != c.Expected("header-string-to-sign.txt")) {
    return "header string to sign:\n" + signed_request.string_to_sign;
  }
  if (signed_request.signature != c.Expected("header-signature.txt")) {
    return "header signature " + signed_request.signature;
  }

  // The signed request must be exactly the original headers plus the ones we added (and, for
  // omit_session_token, the token attached afterwards).
  Headers ours = c.request.headers;
  ours.insert(ours.end(), signed_request.added_headers.begin(), signed_request.added_headers.end());
  if (c.omit_session_token) ours.emplace_back("X-Amz-Security-Token", c.credentials.session_token);
  const RawRequest expected = ParseRawRequest(c.Expected("header-signed-request.txt"));
  const auto expected_auth = FindHeader(expected.headers, "authorization");
  if (!expected_auth || signed_request.authorization != *expected_auth) {
    return "Authorization " + signed_request.authorization;
  }
  if (LowerSorted(ours) != LowerSorted(expected.headers)) {
    return "signed request headers differ from header-signed-request.txt";
  }
  return "";
}

std::string CheckQueryForm(const Case& c) {
  const SignedRequest signed_request =
      PresignRequest(ToSigningRequest(c), SignedCredentials(c), c.params, c.expires);

  if (signed_request.canonical_request != c.Expected("query-canonical-request.txt")) {
    return "query canonical request:\n" + signed_request.canonical_request + "\nexpected:\n" +
           c.Expected("query-canonical-request.txt");
  }
  if (signed_request.string_to_sign != c.Expected("query-string-to-sign.txt")) {
    return "query string to sign:\n" + signed_request.string_to_sign;
  }
  if (signed_request.signature != c.Expected("query-signature.txt")) {
    return "query signature " + signed_request.signature;
  }
  std::string query = signed_request.signed_query;
  if (c.omit_session_token) {
    query += "&X-Amz-Security-Token=" + UriEncode(c.credentials.session_token);
  }
  const RawRequest expected = ParseRawRequest(c.Expected("query-signed-request.txt"));
  if (QueryParams(query) != QueryParams(expected.query)) {
    return "presigned query " + query + "\nexpected " + expected.query;
  }
  return "";
}

TEST(SigV4Suite, EveryOfficialCaseMatchesInHeaderAndQueryForms) {
  ASSERT_TRUE(fs::is_directory(kSuiteDir)) << kSuiteDir;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(kSuiteDir)) {
    if (entry.is_directory()) dirs.push_back(entry.path());
  }
  std::sort(dirs.begin(), dirs.end());

  std::size_t passed = 0;
  for (const auto& dir : dirs) {
    const Case c = LoadCase(dir);
    const std::string header_problem = CheckHeaderForm(c);
    const std::string query_problem = CheckQueryForm(c);
    EXPECT_EQ(header_problem, "") << c.name;
    EXPECT_EQ(query_problem, "") << c.name;
    if (header_problem.empty() && query_problem.empty()) ++passed;
  }
  std::printf("SigV4 suite: %zu/%zu cases passed (header and query forms)\n", passed, dirs.size());
  EXPECT_GE(dirs.size(), kExpectedCases) << "the suite folder lost cases";
  EXPECT_EQ(passed, dirs.size());
}

// The parser is part of the proof: if it dropped folded lines or duplicate headers, cases
// could pass for the wrong reason.
TEST(SigV4Suite, ParserKeepsDuplicateAndFoldedHeaders) {
  const RawRequest duplicate =
      ParseRawRequest(ReadFile(kSuiteDir / "get-header-key-duplicate" / "request.txt"));
  ASSERT_EQ(duplicate.headers.size(), 4u);
  EXPECT_EQ(duplicate.headers[3].second, "value1");

  const RawRequest folded =
      ParseRawRequest(ReadFile(kSuiteDir / "get-header-value-multiline" / "request.txt"));
  ASSERT_EQ(folded.headers.size(), 2u);
  EXPECT_EQ(folded.headers[1].second, "value1\n  value2\n     value3");

  const RawRequest form =
      ParseRawRequest(ReadFile(kSuiteDir / "post-x-www-form-urlencoded" / "request.txt"));
  EXPECT_EQ(form.body, "Param1=value1");
  const RawRequest space =
      ParseRawRequest(ReadFile(kSuiteDir / "get-space-normalized" / "request.txt"));
  EXPECT_EQ(space.path, "/example space/");
}

// The primitives under the suite, against published vectors (FIPS 180-2, RFC 4231), so a
// suite failure can be told apart from a broken hash.
TEST(SigV4Primitives, Sha256MatchesPublishedVectors) {
  EXPECT_EQ(Sha256Hex(""), kEmptyPayloadSha256);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(SigV4Primitives, HmacSha256MatchesRfc4231) {
  EXPECT_EQ(HexEncode(HmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Keys longer than the block size are hashed first.
  EXPECT_EQ(HexEncode(HmacSha256(std::string(131, '\xaa'),
                                 "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(HexEncode(HmacSha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(SigV4Primitives, HexEncodeIsLowerCase) {
  EXPECT_EQ(HexEncode(std::string("\x00\x9f\xff", 3)), "009fff");
}

TEST(SigV4Primitives, AmzDateIsUtcAndTruncatesSubseconds) {
  using namespace std::chrono;
  EXPECT_EQ(FormatAmzDate(sys_days{year{2024} / February / 29} + hours{23} + minutes{59} +
                          seconds{59} + milliseconds{999}),
            "20240229T235959Z");
  EXPECT_EQ(FormatAmzDate(sys_days{year{2015} / August / 30} + hours{12} + minutes{36}),
            "20150830T123600Z");
}

}  // namespace
}  // namespace spotgrid
