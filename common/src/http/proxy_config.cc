#include "spotgrid/http/proxy_config.h"

#include <optional>

#include "core/strings.h"

namespace spotgrid {
namespace {

// getproxies_environment for one scheme: the lower-case variable decides when it is set at
// all (an empty value removes the proxy); otherwise a non-empty upper-case one.
void ReadScheme(const Environment& env, const char* lower, const char* upper, bool upper_allowed,
                std::string& value, std::string& variable) {
  if (std::optional<std::string> v = env.Get(lower)) {
    if (!v->empty()) {
      value = std::move(*v);
      variable = lower;
    }
    return;
  }
  if (!upper_allowed) return;
  if (std::optional<std::string> v = env.Get(upper); v && !v->empty()) {
    value = std::move(*v);
    variable = upper;
  }
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// urllib's _splitport: "host:123" -> "host"; the split is at the last colon and only when
// digits (at least one) follow it, so "[::1]" and "host:" stay whole.
std::string_view HostOnly(std::string_view netloc) {
  auto colon = netloc.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == netloc.size()) return netloc;
  for (char c : netloc.substr(colon + 1)) {
    if (c < '0' || c > '9') return netloc;
  }
  return netloc.substr(0, colon);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's unquote for ASCII input: %XX becomes the byte, anything else stays as it is.
std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// The authority of "scheme://authority/...": up to the first '/', '?' or '#'.
std::string_view Authority(std::string_view url, std::size_t after_scheme) {
  std::string_view rest = url.substr(after_scheme);
  return rest.substr(0, rest.find_first_of("/?#"));
}

Error BadProxy(const std::string& variable, const std::string& reason) {
  return Error::InvalidInput("the proxy in " + variable + " is unusable: " + reason);
}

}  // namespace

ProxyEnvironment ProxyEnvironment::Read(const Environment& env) {
  ProxyEnvironment p;
  std::string no_variable;
  ReadScheme(env, "https_proxy", "HTTPS_PROXY", true, p.https, p.https_variable);
  // A CGI script's HTTP_PROXY may come from a client's "Proxy:" header (CVE-2016-1000110).
  ReadScheme(env, "http_proxy", "HTTP_PROXY", !env.Get("REQUEST_METHOD").has_value(), p.http,
             p.http_variable);
  ReadScheme(env, "no_proxy", "NO_PROXY", true, p.no_proxy, no_variable);
  return p;
}

bool ShouldBypassProxy(std::string_view no_proxy, std::string_view netloc) {
  if (no_proxy.empty()) return false;
  if (no_proxy == "*") return true;  // the whole value, untrimmed, as urllib compares it
  const std::string host = Lower(netloc);
  const std::string_view host_only = HostOnly(host);
  std::string_view list = no_proxy;
  while (true) {
    auto comma = list.find(',');
    std::string_view entry = TrimView(list.substr(0, comma));
    if (!entry.empty()) {  // empty entries ("a,,b") are skipped
      // Leading dots go; an entry of dots only then matches hosts ending in "." as in urllib.
      while (!entry.empty() && entry.front() == '.') entry.remove_prefix(1);
      const std::string name = Lower(entry);
      if (host_only == name || host == name) return true;
      const std::string dotted = "." + name;
      if (EndsWith(host_only, dotted) || EndsWith(host, dotted)) return true;
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

Result<ProxyRoute> ChooseProxy(const ProxyEnvironment& proxies, std::string_view request_url) {
  const auto scheme_end = request_url.find("://");
  if (scheme_end == std::string_view::npos) return ProxyRoute{};  // the transport rejects it
  const std::string scheme = Lower(request_url.substr(0, scheme_end));
  const std::string* configured = nullptr;
  const std::string* variable = nullptr;
  if (scheme == "https") {
    configured = &proxies.https;
    variable = &proxies.https_variable;
  } else if (scheme == "http") {
    configured = &proxies.http;
    variable = &proxies.http_variable;
  }
  if (configured == nullptr || configured->empty()) return ProxyRoute{};
  if (ShouldBypassProxy(proxies.no_proxy, Authority(request_url, scheme_end + 3))) {
    return ProxyRoute{};
  }

  // botocore's _fix_proxy_url: a value without a scheme is an http:// proxy. A scheme other
  // than http or https is refused here; botocore would prefix it with "http://" and fail later.
  std::string url = *configured;
  if (url.find("://") == std::string::npos)
    url = (url.rfind("//", 0) == 0 ? "http:" : "http://") + url;
  const auto proxy_scheme_end = url.find("://");
  const std::string proxy_scheme = Lower(std::string_view(url).substr(0, proxy_scheme_end));
  if (proxy_scheme != "http" && proxy_scheme != "https") {
    return BadProxy(*variable, "scheme " + proxy_scheme + " (only http and https proxies)");
  }
  std::string_view authority = Authority(url, proxy_scheme_end + 3);

  ProxyRoute route;
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      std::string user = PercentDecode(userinfo.substr(0, colon));
      std::string password = PercentDecode(userinfo.substr(colon + 1));
      if (!user.empty() && !password.empty()) {
        route.username = std::move(user);
        route.password = std::move(password);
      }
    }
  }

  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return BadProxy(*variable, "unterminated IPv6 address");
    host = authority.substr(0, close + 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return BadProxy(*variable, "junk after the IPv6 address");
      port = after.substr(1);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || host == "[]") return BadProxy(*variable, "no host");
  long port_number = proxy_scheme == "https" ? 443 : 80;
  if (!port.empty()) {
    port_number = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || port_number > 65535) return BadProxy(*variable, "bad port");
      port_number = port_number * 10 + (c - '0');
    }
    if (port_number == 0 || port_number > 65535) return BadProxy(*variable, "bad port");
  }
  route.url = proxy_scheme + "://" + std::string(host) + ":" + std::to_string(port_number);
  return route;
}

}  // namespace spotgrid
