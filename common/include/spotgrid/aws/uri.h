// Percent-encoding as SigV4 defines it (RFC 3986 unreserved characters kept, everything else
// %XX with upper-case hex over UTF-8 bytes), and the pieces of a URL we need.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spotgrid/core/status.h"

namespace spotgrid {

// Encodes every byte except A-Z a-z 0-9 - _ . ~; '/' is kept when keep_slash is true
// (S3 object keys in paths).
std::string UriEncode(std::string_view in, bool keep_slash = false);
// Decodes %XX (and leaves '+' alone: AWS never means space by '+').
std::string UriDecode(std::string_view in);
// "a=1&b=x%20y" from unencoded pairs, in the given order.
std::string BuildQuery(const std::vector<std::pair<std::string, std::string>>& params);
// application/x-www-form-urlencoded body for the Query protocols.
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& params);

struct Url {
  std::string scheme;  // "http" | "https"
  std::string host;    // without port
  int port = 0;        // 0 = scheme default
  std::string path;    // "/..." exactly as written, still percent-encoded (may be empty)
  std::string query;   // after '?', without it, still percent-encoded (usually empty)
  // "host" or "host:port" exactly as the Host header is sent (port only when non-default).
  std::string Authority() const;
  // scheme://authority
  std::string Origin() const;
};

// Accepts "http(s)://host[:port][/path][?query]"; the host may be an IPv6 literal in brackets
// ("http://[::1]:8080/"). Rejects (kInvalidInput, message naming the URL and the problem): a
// missing or unsupported scheme, an empty host, user info ("user@host"), a port outside
// 1..65535, a fragment, and whitespace or control characters anywhere.
Result<Url> ParseUrl(std::string_view url);

}  // namespace spotgrid
