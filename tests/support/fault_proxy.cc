#include "support/fault_proxy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <utility>

#include "spotgrid/http/curl_transport.h"
#include "support/test_env.h"

namespace spotgrid::testing {

std::unique_ptr<FaultProxy> FaultProxy::Start(const std::string& upstream) {
  auto proxy = std::unique_ptr<FaultProxy>(new FaultProxy());
  proxy->dir_ = MakeTempDir("fault-proxy");
  proxy->transport_ = MakeCurlTransport();
  auto child = ChildProcess::StartServer(
      {"/usr/bin/python3", std::string(SPOTGRID_HARNESS_DIR) + "/fault_proxy.py", "--upstream",
       upstream},
      proxy->dir_, "fault_proxy");
  if (!child.ok()) {
    ADD_FAILURE() << "fault_proxy did not start: " << child.error().ToString();
    return nullptr;
  }
  proxy->child_ = std::move(child).value();
  proxy->url_ = "http://127.0.0.1:" + std::to_string(proxy->child_->port());
  return proxy;
}

FaultProxy::~FaultProxy() {
  child_.reset();  // kills the proxy's process group
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_);
}

void FaultProxy::AddRules(const nlohmann::json& rules) { Control("POST", "rules", rules); }

nlohmann::json FaultProxy::Stats() { return Control("GET", "stats"); }

std::string FaultProxy::Log() const { return child_ ? child_->ReadLog() : ""; }

nlohmann::json FaultProxy::Control(const std::string& method, const std::string& what,
                                   const nlohmann::json& body) {
  HttpRequest request;
  request.method = method;
  request.url = url_ + "/__fault__/" + what;
  request.timeout = std::chrono::seconds(10);
  if (!body.is_null()) request.body = body.dump();
  auto response = transport_->Send(request);
  if (!response.ok()) {
    ADD_FAILURE() << method << " " << request.url << ": " << response.error().ToString();
    return nlohmann::json::object();
  }
  EXPECT_EQ(response->status, 200) << response->body;
  return nlohmann::json::parse(response->body, nullptr,
                               /*allow_exceptions=*/false);
}

}  // namespace spotgrid::testing
