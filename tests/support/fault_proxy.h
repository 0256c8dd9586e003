// One tests/harness/fault_proxy.py process owned by a test, and its control API.
//
// Start() runs the proxy in front of `upstream` on a free port; the destructor kills exactly
// that process group and removes the proxy's directory (kept for post-mortem when the test
// failed). Each test starts its own proxy, so parallel tests never share fault rules.
//
// Thread-safety: one FaultProxy is used by one test thread.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "spotgrid/http/http.h"
#include "support/child_process.h"

namespace spotgrid::testing {

class FaultProxy {
 public:
  // nullptr (and the test has failed) when the proxy did not start.
  static std::unique_ptr<FaultProxy> Start(const std::string& upstream);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // "http://127.0.0.1:<port>": what an endpoint override points at.
  const std::string& url() const { return url_; }

  // POST /__fault__/rules: the faults to apply to the next matching requests, in order.
  void AddRules(const nlohmann::json& rules);
  // GET /__fault__/stats: {"requests": n, "connections": n, "faults": n}.
  nlohmann::json Stats();
  // What the proxy has logged so far.
  std::string Log() const;

 private:
  FaultProxy() = default;
  nlohmann::json Control(const std::string& method, const std::string& what,
                         const nlohmann::json& body = nullptr);

  std::string dir_;
  std::string url_;
  std::unique_ptr<ChildProcess> child_;
  std::shared_ptr<HttpTransport> transport_;
};

}  // namespace spotgrid::testing
