#include "spotgrid/core/environment.h"

#include <cstdlib>
#include <string>

namespace spotgrid {

std::string Environment::GetOr(std::string_view name, std::string fallback) const {
  auto value = Get(name);
  if (!value || value->empty()) return fallback;
  return *value;
}

namespace {

class ProcessEnvironment final : public Environment {
 public:
  std::optional<std::string> Get(std::string_view name) const override {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  }
};

}  // namespace

const Environment& Environment::Process() {
  static ProcessEnvironment env;
  return env;
}

std::optional<std::string> MapEnvironment::Get(std::string_view name) const {
  auto it = vars_.find(name);
  if (it == vars_.end()) return std::nullopt;
  return it->second;
}

}  // namespace spotgrid
