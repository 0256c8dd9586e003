#include "spotgrid/aws/uri.h"

#include <charconv>
#include <string>

namespace spotgrid {
namespace {

constexpr char kHexUpper[] = "0123456789ABCDEF";

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Error BadUrl(std::string_view url, std::string_view problem) {
  return Error::InvalidInput("invalid URL \"" + std::string(url) + "\": " + std::string(problem));
}

}  // namespace

std::string UriEncode(std::string_view in, bool keep_slash) {
  std::string out;
  out.reserve(in.size() + in.size() / 4);
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHexUpper[c >> 4]);
      out.push_back(kHexUpper[c & 0x0F]);
    }
  }
  return out;
}

std::string UriDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>((hi << 4) | lo));
        i += 2;
        continue;
      }
    }
    // A '%' not followed by two hex digits is kept literally, as servers do.
    out.push_back(in[i]);
  }
  return out;
}

std::string BuildQuery(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += UriEncode(name);
    out.push_back('=');
    out += UriEncode(value);
  }
  return out;
}

// Space is written %20 rather than '+': both decode to a space in a form body, and %20 is the one
// spelling that means the same thing in a query string, so the two encoders never differ.
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& params) {
  return BuildQuery(params);
}

std::string Url::Authority() const {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  const int default_port = scheme == "https" ? 443 : 80;
  if (port != 0 && port != default_port) {
    out.push_back(':');
    out += std::to_string(port);
  }
  return out;
}

std::string Url::Origin() const { return scheme + "://" + Authority(); }

Result<Url> ParseUrl(std::string_view url) {
  for (char ch : url) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7F) return BadUrl(url, "contains whitespace or a control character");
  }
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return BadUrl(url, "missing scheme (expected http:// or https://)");
  }
  Url out;
  for (char c : url.substr(0, scheme_end)) {
    out.scheme.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  if (out.scheme != "http" && out.scheme != "https") {
    return BadUrl(url, "unsupported scheme \"" + out.scheme + "\" (expected http or https)");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  if (rest.find('#') != std::string_view::npos) return BadUrl(url, "fragments are not allowed");

  const std::size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view tail =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    // The URL is not echoed: user info may hold a password.
    return Error::InvalidInput("invalid URL: user info (user@host) is not supported");
  }

  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return BadUrl(url, "unterminated IPv6 literal");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return BadUrl(url, "unexpected text after IPv6 literal");
      port_text = after.substr(1);
      if (port_text.empty()) return BadUrl(url, "empty port");
    }
    if (out.host.find(':') == std::string::npos) return BadUrl(url, "invalid IPv6 literal");
  } else {
    const std::size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return BadUrl(url, "empty port");
    }
  }
  if (out.host.empty()) return BadUrl(url, "empty host");
  for (char c : out.host) {
    if (c == '[' || c == ']' || c == '%' || c == '\\') return BadUrl(url, "invalid host");
  }

  if (!port_text.empty()) {
    int port = 0;
    const auto [ptr, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port < 1 ||
        port > 65535) {
      return BadUrl(url, "port must be a number from 1 to 65535");
    }
    out.port = port;
  }

  const std::size_t query_start = tail.find('?');
  out.path = std::string(tail.substr(0, query_start));
  if (query_start != std::string_view::npos) out.query = std::string(tail.substr(query_start + 1));
  return out;
}

}  // namespace spotgrid
