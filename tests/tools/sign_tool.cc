// sign_tool: signs requests described as JSON lines on stdin with our SigV4 signer, the way the
// service clients do, so tests/wire/botocore_signing_test.py can compare it with botocore.
//
// Input, one object per line:
//   {"method": "PUT", "url": "https://host/path?query", "headers": [["Name", "value"], ...],
//    "body": "..." | "payload": "UNSIGNED-PAYLOAD", "service": "s3", "region": "us-east-1",
//    "time": "20260101T000000Z", "access_key": "...", "secret_key": "...",
//    "session_token": "..." (optional), "s3": true|false}
// Output, one line per input: {"authorization": ..., "canonical_request": ...,
// "string_to_sign": ..., "added_headers": [[name, value], ...]} or {"error": "..."}.
// Exit status 1 if any line failed.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "spotgrid/aws/sigv4.h"
#include "spotgrid/aws/uri.h"

namespace {

using spotgrid::Result;

Result<spotgrid::Clock::WallTime> ParseAmzDate(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  char z = 0;
  if (text.size() != 16 ||
      std::sscanf(text.c_str(), "%4d%2d%2dT%2d%2d%2d%c", &y, &mo, &d, &h, &mi, &s, &z) != 7 ||
      z != 'Z') {
    return spotgrid::Error::InvalidInput("time must look like 20260101T000000Z: " + text);
  }
  using namespace std::chrono;
  const spotgrid::Clock::WallTime time =
      sys_days{year{y} / month{static_cast<unsigned>(mo)} / day{static_cast<unsigned>(d)}} +
      hours{h} + minutes{mi} + seconds{s};
  return time;
}

nlohmann::json SignOne(const nlohmann::json& in) {
  const auto url = spotgrid::ParseUrl(in.at("url").get<std::string>());
  if (!url.ok()) return {{"error", url.error().ToString()}};
  const auto time = ParseAmzDate(in.at("time").get<std::string>());
  if (!time.ok()) return {{"error", time.error().ToString()}};
  const bool s3 = in.value("s3", false);

  spotgrid::SigningRequest request;
  request.method = in.at("method").get<std::string>();
  request.path = url->path;
  request.query = url->query;
  for (const auto& header : in.value("headers", nlohmann::json::array())) {
    request.headers.emplace_back(header.at(0).get<std::string>(), header.at(1).get<std::string>());
  }
  // Like the clients: the Host header is the one curl sends for this URL.
  if (!spotgrid::FindHeader(request.headers, "host")) {
    request.headers.emplace_back("Host", url->Authority());
  }
  request.payload_hash = in.contains("payload")
                             ? in.at("payload").get<std::string>()
                             : spotgrid::Sha256Hex(in.value("body", std::string()));

  spotgrid::Credentials credentials;
  credentials.access_key_id = in.at("access_key").get<std::string>();
  credentials.secret_access_key = in.at("secret_key").get<std::string>();
  credentials.session_token = in.value("session_token", std::string());

  spotgrid::SigningParams params;
  params.region = in.at("region").get<std::string>();
  params.service = in.at("service").get<std::string>();
  params.time = *time;
  params.path_mode = s3 ? spotgrid::PathMode::kS3 : spotgrid::PathMode::kNormalizePath;
  params.add_content_sha256_header = s3;

  const spotgrid::SignedRequest signed_request = SignRequest(request, credentials, params);
  nlohmann::json added = nlohmann::json::array();
  for (const auto& [name, value] : signed_request.added_headers) added.push_back({name, value});
  return {{"authorization", signed_request.authorization},
          {"canonical_request", signed_request.canonical_request},
          {"string_to_sign", signed_request.string_to_sign},
          {"added_headers", added}};
}

}  // namespace

int main() {
  int status = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    nlohmann::json out;
    try {
      out = SignOne(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      out = {{"error", std::string("bad input line: ") + e.what()}};
    }
    if (out.contains("error")) status = 1;
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n'
              << std::flush;
  }
  return status;
}
