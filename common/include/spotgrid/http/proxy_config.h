// Which proxy, if any, carries a request: the AWS CLI's rules, as a pure function.
//
// botocore asks Python's urllib (get_environ_proxies -> getproxies_environment and
// proxy_bypass_environment on Linux), and this file mirrors exactly what that does, nothing
// more:
//   - `https://` URLs use https_proxy, else HTTPS_PROXY; `http://` URLs use http_proxy, else
//     HTTP_PROXY. The lower-case variable wins, and set to "" it means "no proxy" even when the
//     upper-case one is set. An empty upper-case variable is the same as unset. ALL_PROXY is
//     not consulted (botocore looks the proxy up by the URL's scheme only). When
//     REQUEST_METHOD is set (a CGI script), HTTP_PROXY is ignored (CVE-2016-1000110); the
//     lower-case http_proxy still counts.
//   - no_proxy, else NO_PROXY: exactly "*" bypasses every host. Otherwise a comma-separated
//     list; each entry is trimmed, loses its leading dots and is compared case-insensitively
//     with the URL's host, and with its host:port: an entry equal to either, or matching a
//     suffix after a dot ("example.com" covers "s3.example.com"), bypasses the proxy. So an
//     entry with a port ("localhost:9000") matches only that explicit port, and an IPv6 host
//     is compared in brackets ("[::1]"). There is no CIDR matching ("10.0.0.0/8" matches no
//     host) and no wildcard inside an entry: urllib has neither.
//   - A proxy URL without a scheme gets "http://" in front ("//h:p" gets "http:"). The scheme
//     is compared case-insensitively, and one other than http or https is an error (botocore
//     would prefix it with "http://" and fail on the result).
//     Credentials in it ("http://user:pass@proxy:3128") are percent-decoded and sent as Basic
//     proxy authentication only when both user and password are non-empty, as botocore does.
//   - The default proxy port is the proxy scheme's (80, 443), as urllib3's; libcurl's own
//     default would be 1080, so the chosen route always names its port.
//
// Only the variables named here are read: other spellings ("Https_Proxy") that urllib would
// also pick up by scanning the whole environment are not, since the Environment seam looks
// variables up by name.
//
// Credentials never leave ProxyRoute's username/password: ProxyRoute::url and every Error
// message here are free of them.
//
// Thread-safety: pure functions over values.
#pragma once

#include <string>
#include <string_view>

#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"

namespace spotgrid {

// The proxy variables, read once. A field is "" when no proxy applies for that scheme.
struct ProxyEnvironment {
  std::string https;
  std::string https_variable;  // the variable it came from, for messages ("HTTPS_PROXY")
  std::string http;
  std::string http_variable;
  std::string no_proxy;

  bool empty() const { return https.empty() && http.empty(); }
  static ProxyEnvironment Read(const Environment& env);
};

// How one request leaves this machine.
struct ProxyRoute {
  std::string url;       // "http://proxy.example:3128": scheme, host, port only; "" = direct
  std::string username;  // percent-decoded; both empty unless both were given
  std::string password;

  bool direct() const { return url.empty(); }
};

// True when `netloc` ("host" or "host:port", as in the URL) must not use a proxy under
// `no_proxy` (urllib's proxy_bypass_environment).
bool ShouldBypassProxy(std::string_view no_proxy, std::string_view netloc);

// The route for `request_url` ("scheme://host[:port]/..."). An unusable proxy URL (no host,
// a bad port, a scheme other than http or https) is an InvalidInput error naming the variable;
// its message never contains the credentials.
Result<ProxyRoute> ChooseProxy(const ProxyEnvironment& proxies, std::string_view request_url);

}  // namespace spotgrid
