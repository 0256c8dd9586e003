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
  std::string path;    // "/..." (may be empty)
  // "host" or "host:port" exactly as the Host header is sent (port only when non-default).
  std::string Authority() const;
  // scheme://authority
  std::string Origin() const;
};

Result<Url> ParseUrl(std::string_view url);

}  // namespace spotgrid
