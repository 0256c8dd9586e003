#include "support/fake_transport.h"

#include <gtest/gtest.h>

namespace spotgrid::testing {

Result<HttpResponse> FakeTransport::Send(const HttpRequest& request) {
  Handler fallback;
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    if (!script_.empty()) {
      Result<HttpResponse> next = std::move(script_.front());
      script_.pop_front();
      return next;
    }
    fallback = fallback_;
  }
  if (fallback) return fallback(request);
  ADD_FAILURE() << "FakeTransport: unexpected request " << request.method << " " << request.url;
  Error e = ConnectionResetError();
  e.message = "FakeTransport has no scripted response";
  return e;
}

void FakeTransport::PushResponse(int status, std::string body, Headers headers) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers = std::move(headers);
  std::lock_guard<std::mutex> lock(mu_);
  script_.emplace_back(std::move(response));
}

void FakeTransport::PushError(Error error) {
  std::lock_guard<std::mutex> lock(mu_);
  script_.emplace_back(std::move(error));
}

void FakeTransport::SetFallback(Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  fallback_ = std::move(handler);
}

std::vector<HttpRequest> FakeTransport::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t FakeTransport::request_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_.size();
}

Error ConnectionResetError() {
  Error e;
  e.category = ErrorCategory::kTransient;
  e.code = "ConnectionFailed";
  e.message = "connection reset by peer";
  return e;
}

}  // namespace spotgrid::testing
