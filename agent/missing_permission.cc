#include "agent/missing_permission.h"

#include <cctype>

namespace spotgrid::agent {

namespace {

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

bool IsMissingPermission(const Error& error) {
  const std::string_view code = error.code;
  // A service that answered 403 with one of these codes: the caller's identity is known and
  // not allowed (a bad signature or expired credentials have codes of their own).
  return code == "AccessDenied" || code == "AccessDeniedException" ||
         EndsWith(code, "#AccessDeniedException");
}

std::string DeniedAction(const Error& error, std::string_view fallback) {
  if (error.service.empty() || error.operation.empty()) return std::string(fallback);
  std::string prefix;
  for (char c : error.service) prefix += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return prefix + ":" + error.operation;
}

std::optional<std::string> PermissionTracker::Record(std::string_view step, const Status& outcome) {
  if (outcome.ok()) {
    if (step_ == step) {
      step_.clear();
      action_.clear();
      denials_ = 0;
    }
    return std::nullopt;
  }
  if (!IsMissingPermission(outcome.error())) return std::nullopt;
  if (step_ != step) {
    step_ = std::string(step);
    denials_ = 0;
  }
  action_ = DeniedAction(outcome.error(), step);
  ++denials_;
  if (denials_ >= kMissingPermissionTries) return action_;
  return std::nullopt;
}

std::string PermissionTracker::Describe() const {
  if (denials_ == 0) return "";
  return "missing permission " + action_ + " (denied " + std::to_string(denials_) + " of " +
         std::to_string(kMissingPermissionTries) + " tries)";
}

}  // namespace spotgrid::agent
