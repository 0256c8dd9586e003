// An HttpTransport for unit tests: records every request and answers from a script.
//
// Responses are queued with Push*(); when the queue is empty, the `fallback` handler (if any)
// answers, otherwise Send fails the test with a clear message. Thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "spotgrid/http/http.h"

namespace spotgrid::testing {

class FakeTransport final : public HttpTransport {
 public:
  using Handler = std::function<Result<HttpResponse>(const HttpRequest&)>;

  Result<HttpResponse> Send(const HttpRequest& request) override;

  void PushResponse(int status, std::string body, Headers headers = {});
  void PushError(Error error);  // a transport failure (no HTTP response)
  void SetFallback(Handler handler);

  std::vector<HttpRequest> requests() const;
  size_t request_count() const;

 private:
  mutable std::mutex mu_;
  std::deque<Result<HttpResponse>> script_;
  Handler fallback_;
  std::vector<HttpRequest> requests_;
};

// A transient transport error like the curl transport produces for a dropped connection.
Error ConnectionResetError();

}  // namespace spotgrid::testing
