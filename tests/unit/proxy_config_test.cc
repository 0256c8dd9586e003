// ChooseProxy and ShouldBypassProxy against the rules of botocore (get_environ_proxies,
// ProxyConfiguration) and Python's urllib (getproxies_environment, proxy_bypass_environment).
// Every expectation below was checked against Debian's /usr/bin/python3 and botocore.
#include "spotgrid/http/proxy_config.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace spotgrid {
namespace {

ProxyEnvironment Read(std::map<std::string, std::string, std::less<>> vars) {
  return ProxyEnvironment::Read(MapEnvironment(std::move(vars)));
}

// The proxy URL chosen for `url`, "" for direct, or "error: ..." when unusable.
std::string Choose(const ProxyEnvironment& env, const std::string& url) {
  Result<ProxyRoute> route = ChooseProxy(env, url);
  if (!route.ok()) return "error: " + route.error().message;
  return route->url;
}

TEST(ProxyEnvironmentTest, LowerCaseWinsAndEmptyLowerCaseMeansNone) {
  EXPECT_EQ(Read({{"HTTPS_PROXY", "http://upper:1"}}).https, "http://upper:1");
  EXPECT_EQ(Read({{"HTTPS_PROXY", "http://upper:1"}}).https_variable, "HTTPS_PROXY");
  EXPECT_EQ(Read({{"HTTPS_PROXY", "http://upper:1"}, {"https_proxy", "http://lower:2"}}).https,
            "http://lower:2");
  EXPECT_EQ(Read({{"HTTPS_PROXY", "http://upper:1"}, {"https_proxy", ""}}).https, "");
  EXPECT_EQ(Read({{"HTTPS_PROXY", ""}}).https, "");
  EXPECT_EQ(Read({{"NO_PROXY", "a"}, {"no_proxy", "b"}}).no_proxy, "b");
  EXPECT_EQ(Read({{"NO_PROXY", "a"}}).no_proxy, "a");
  EXPECT_TRUE(Read({{"ALL_PROXY", "http://all:3"}}).empty()) << "botocore ignores ALL_PROXY";
}

TEST(ProxyEnvironmentTest, CgiRequestMethodIgnoresUpperCaseHttpProxyOnly) {
  EXPECT_EQ(Read({{"HTTP_PROXY", "http://p:1"}, {"REQUEST_METHOD", "GET"}}).http, "");
  EXPECT_EQ(Read({{"http_proxy", "http://p:1"}, {"REQUEST_METHOD", "GET"}}).http, "http://p:1");
  EXPECT_EQ(Read({{"HTTPS_PROXY", "http://p:1"}, {"REQUEST_METHOD", ""}}).https, "http://p:1");
}

TEST(ChooseProxyTest, SchemeSelectsTheVariable) {
  const ProxyEnvironment env =
      Read({{"HTTPS_PROXY", "http://tls:3128"}, {"HTTP_PROXY", "http://plain:8080"}});
  EXPECT_EQ(Choose(env, "https://sqs.us-east-1.amazonaws.com/"), "http://tls:3128");
  EXPECT_EQ(Choose(env, "http://127.0.0.1:4566/"), "http://plain:8080");
  EXPECT_EQ(Choose(Read({{"HTTP_PROXY", "http://plain:8080"}}), "https://s3.amazonaws.com/"), "")
      << "https never falls back to HTTP_PROXY";
  EXPECT_EQ(Choose(Read({}), "https://s3.amazonaws.com/"), "");
}

TEST(ChooseProxyTest, ProxyUrlIsCompletedAsBotocoreDoes) {
  const std::string url = "https://s3.amazonaws.com/b/k";
  EXPECT_EQ(Choose(Read({{"HTTPS_PROXY", "proxy.corp:3128"}}), url), "http://proxy.corp:3128");
  EXPECT_EQ(Choose(Read({{"HTTPS_PROXY", "//proxy.corp:3128"}}), url), "http://proxy.corp:3128");
  // urllib3's default ports, not libcurl's 1080.
  EXPECT_EQ(Choose(Read({{"HTTPS_PROXY", "http://proxy.corp"}}), url), "http://proxy.corp:80");
  EXPECT_EQ(Choose(Read({{"HTTPS_PROXY", "https://proxy.corp/"}}), url), "https://proxy.corp:443");
  EXPECT_EQ(Choose(Read({{"HTTPS_PROXY", "http://[fd00::1]:3128"}}), url), "http://[fd00::1]:3128");
  EXPECT_EQ(Choose(Read({{"HTTPS_PROXY", "HTTP://Proxy.Corp:3128"}}), url),
            "http://Proxy.Corp:3128");
}

TEST(ChooseProxyTest, CredentialsAreDecodedAndOnlyUsedWhenBothAreGiven) {
  const std::string url = "https://s3.amazonaws.com/";
  Result<ProxyRoute> route =
      ChooseProxy(Read({{"HTTPS_PROXY", "http://us%40er:p%3Ass:w@proxy:3128"}}), url);
  ASSERT_TRUE(route.ok()) << route.error().ToString();
  EXPECT_EQ(route->url, "http://proxy:3128");
  EXPECT_EQ(route->username, "us@er");
  EXPECT_EQ(route->password, "p:ss:w");
  for (const char* proxy :
       {"http://user@proxy:3128", "http://user:@proxy:3128", "http://:pass@proxy:3128"}) {
    Result<ProxyRoute> partial = ChooseProxy(Read({{"HTTPS_PROXY", proxy}}), url);
    ASSERT_TRUE(partial.ok()) << proxy;
    EXPECT_EQ(partial->url, "http://proxy:3128") << proxy;
    EXPECT_TRUE(partial->username.empty() && partial->password.empty()) << proxy;
  }
}

TEST(ChooseProxyTest, UnusableProxyIsAnErrorWithoutTheCredentials) {
  const std::string url = "https://s3.amazonaws.com/";
  for (const char* proxy : {"socks5://u:s3cr3t@proxy:1080", "http://u:s3cr3t@proxy:99999",
                            "http://u:s3cr3t@:3128", "http://u:s3cr3t@proxy:12ab"}) {
    const std::string chosen = Choose(Read({{"HTTPS_PROXY", proxy}}), url);
    EXPECT_EQ(chosen.rfind("error: the proxy in HTTPS_PROXY", 0), 0u) << proxy << " -> " << chosen;
    EXPECT_EQ(chosen.find("s3cr3t"), std::string::npos) << chosen;
  }
}

TEST(ShouldBypassProxyTest, SuffixExactAndPortRules) {
  // Domain suffixes at a dot boundary, case-insensitive, leading dots ignored, spaces trimmed.
  EXPECT_TRUE(ShouldBypassProxy("amazonaws.com", "s3.us-east-1.amazonaws.com"));
  EXPECT_TRUE(ShouldBypassProxy(".amazonaws.com", "amazonaws.com"));
  EXPECT_TRUE(ShouldBypassProxy("foo, AmazonAWS.com ", "SQS.us-east-1.amazonaws.com"));
  EXPECT_FALSE(ShouldBypassProxy("amazonaws.com", "notamazonaws.com"));
  EXPECT_FALSE(ShouldBypassProxy("s3.amazonaws.com", "amazonaws.com"));
  // The host with or without its port; an entry with a port matches only that port.
  EXPECT_TRUE(ShouldBypassProxy("localhost", "localhost:4566"));
  EXPECT_TRUE(ShouldBypassProxy("localhost:4566", "localhost:4566"));
  EXPECT_FALSE(ShouldBypassProxy("localhost:4566", "localhost:9000"));
  EXPECT_FALSE(ShouldBypassProxy("s3.amazonaws.com:443", "s3.amazonaws.com"))
      << "a default port is not in the URL, so it cannot match";
  // Addresses are plain strings: IPv4 exact, IPv6 only in brackets, no CIDR.
  EXPECT_TRUE(ShouldBypassProxy("127.0.0.1", "127.0.0.1:8080"));
  EXPECT_TRUE(ShouldBypassProxy("169.254.169.254", "169.254.169.254"));
  EXPECT_FALSE(ShouldBypassProxy("10.0.0.0/8", "10.1.2.3"));
  EXPECT_FALSE(ShouldBypassProxy("::1", "[::1]:8080"));
  EXPECT_TRUE(ShouldBypassProxy("[::1]", "[::1]:8080"));
  // "*" alone bypasses everything; inside a list or padded it is just a name.
  EXPECT_TRUE(ShouldBypassProxy("*", "anything.example"));
  EXPECT_FALSE(ShouldBypassProxy("*.amazonaws.com", "s3.amazonaws.com"));
  EXPECT_FALSE(ShouldBypassProxy("foo,*", "s3.amazonaws.com"));
  EXPECT_FALSE(ShouldBypassProxy(" *", "s3.amazonaws.com"));
  EXPECT_FALSE(ShouldBypassProxy("", "s3.amazonaws.com"));
  EXPECT_FALSE(ShouldBypassProxy(",, ,", "s3.amazonaws.com"));
}

TEST(ChooseProxyTest, NoProxyAppliesToTheUrlsHostAndPort) {
  const ProxyEnvironment env = Read({{"HTTPS_PROXY", "http://p:1"},
                                     {"HTTP_PROXY", "http://p:1"},
                                     {"no_proxy", "169.254.169.254,localhost:4566"}});
  EXPECT_EQ(Choose(env, "http://169.254.169.254/latest/api/token"), "");
  EXPECT_EQ(Choose(env, "http://localhost:4566/"), "");
  EXPECT_EQ(Choose(env, "http://localhost:4567/"), "http://p:1");
  EXPECT_EQ(Choose(env, "https://sqs.us-east-1.amazonaws.com/?Action=x"), "http://p:1");
}

}  // namespace
}  // namespace spotgrid
