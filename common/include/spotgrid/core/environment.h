// Read-only access to environment variables behind an interface, so that the credential
// chain and endpoint resolution can be tested with a map instead of the process environment.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace spotgrid {

class Environment {
 public:
  virtual ~Environment() = default;
  // The variable's value; nullopt when unset. An empty value is returned as "".
  virtual std::optional<std::string> Get(std::string_view name) const = 0;

  // Value if set and non-empty, otherwise `fallback`.
  std::string GetOr(std::string_view name, std::string fallback) const;

  // The real process environment.
  static const Environment& Process();
};

class MapEnvironment : public Environment {
 public:
  MapEnvironment() = default;
  explicit MapEnvironment(std::map<std::string, std::string, std::less<>> vars)
      : vars_(std::move(vars)) {}
  std::optional<std::string> Get(std::string_view name) const override;
  void Set(std::string name, std::string value) { vars_[std::move(name)] = std::move(value); }

 private:
  std::map<std::string, std::string, std::less<>> vars_;
};

}  // namespace spotgrid
