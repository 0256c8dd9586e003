#include "spotgrid/http/http.h"

#include <strings.h>

#include <condition_variable>
#include <mutex>

namespace spotgrid {

std::optional<std::string> FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0) {
      return value;
    }
  }
  return std::nullopt;
}

namespace {

// HttpTransport::NewMulti's default: every exchange ends inside Start().
class SerialMulti final : public HttpMulti {
 public:
  explicit SerialMulti(HttpTransport& transport) : transport_(transport) {}

  void Start(std::uint64_t tag, HttpRequest request) override {
    ended_.push_back(Ended{tag, transport_.Send(request)});
  }

  std::vector<Ended> Poll(std::chrono::milliseconds wait) override {
    if (ended_.empty()) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, wait, [&] { return woken_; });
      woken_ = false;
    }
    return std::exchange(ended_, {});
  }

  std::size_t active() const override { return ended_.size(); }

  void Wake() override {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
    cv_.notify_all();
  }

 private:
  HttpTransport& transport_;
  std::vector<Ended> ended_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
};

}  // namespace

std::unique_ptr<HttpMulti> HttpTransport::NewMulti() { return std::make_unique<SerialMulti>(*this); }

}  // namespace spotgrid
