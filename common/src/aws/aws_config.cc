// Shared config files, region and endpoint resolution (see aws_config.h).
#include "spotgrid/aws/aws_config.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/strings.h"
#include "spotgrid/core/file_io.h"

namespace spotgrid {

namespace {

bool IsTrue(std::string_view s) { return Lower(TrimView(s)) == "true"; }

// Strips a comment that starts with '#' or ';' preceded by whitespace (the SDK file-format
// rule for values; a '#' inside a value such as a URL fragment is kept when not spaced).
std::string_view StripInlineComment(std::string_view s) {
  for (size_t i = 1; i < s.size(); ++i) {
    if ((s[i] == '#' || s[i] == ';') && IsAsciiSpace(s[i - 1])) {
      return TrimView(s.substr(0, i));
    }
  }
  return s;
}

Error ParseError(std::string_view source, int line, std::string_view what) {
  return Error::InvalidInput(std::string(source) + ":" + std::to_string(line) + ": " +
                             std::string(what));
}

// Expands a leading "~/" the way the SDKs do for file-path variables.
std::string ExpandHome(const std::string& path, const Environment& env) {
  if (path.size() >= 2 && path[0] == '~' && path[1] == '/') {
    return env.GetOr("HOME", "") + path.substr(1);
  }
  return path;
}

// Reads a whole file; nullopt when it does not exist, an Error when it exists but can't be
// read.
Result<std::optional<std::string>> ReadOptionalFile(const std::string& path) {
  Result<std::string> text = ReadFile(path, "ReadConfig");
  if (text.ok()) return std::optional<std::string>(std::move(*text));
  // A missing file is normal (no ~/.aws at all); anything else is worth reporting.
  if (text.error().IsNotFound()) return std::optional<std::string>();
  return text.error();
}

}  // namespace

std::optional<std::string> ProfileFiles::Get(const std::string& key) const {
  return GetFor(profile_name, key);
}

bool ProfileFiles::HasProfile(const std::string& profile) const {
  return credentials.count(profile) > 0 || config.count(profile) > 0;
}

std::optional<std::string> ProfileFiles::GetFor(const std::string& profile,
                                                const std::string& key) const {
  for (const auto* files : {&credentials, &config}) {
    auto section = files->find(profile);
    if (section == files->end()) continue;
    auto value = section->second.find(key);
    if (value != section->second.end()) return value->second;
  }
  return std::nullopt;
}

Status ProfileFiles::ParseInto(std::string_view text, std::string_view source, bool is_config,
                               ProfileFiles& out) {
  // Where property lines currently go. `section` is null inside a config-file section we
  // ignore (e.g. a bare "[name]", which the SDKs skip).
  ProfileSection* section = nullptr;
  std::map<std::string, ProfileSection>* service_section = nullptr;
  bool in_section = false;
  std::string last_key;  // the property an indented line belongs to
  bool last_key_is_parent = false;

  int line_number = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    std::string_view trimmed = TrimView(line);
    if (trimmed.empty() || trimmed.front() == '#' || trimmed.front() == ';') {
      continue;
    }
    const bool indented = IsAsciiSpace(line.front());

    if (!indented && trimmed.front() == '[') {
      size_t close = trimmed.find(']');
      if (close == std::string_view::npos) {
        return ParseError(source, line_number, "section header is missing ']'");
      }
      std::string_view rest = TrimView(trimmed.substr(close + 1));
      if (!rest.empty() && rest.front() != '#' && rest.front() != ';') {
        return ParseError(source, line_number, "unexpected text after section header");
      }
      std::string name(TrimView(trimmed.substr(1, close - 1)));
      if (name.empty()) return ParseError(source, line_number, "empty section name");
      in_section = true;
      last_key.clear();
      section = nullptr;
      service_section = nullptr;
      if (!is_config) {
        section = &out.credentials[name];
      } else if (name == "default") {
        section = &out.config["default"];
      } else if (name.rfind("profile", 0) == 0 && name.size() > 7 && IsAsciiSpace(name[7])) {
        std::string profile(TrimView(std::string_view(name).substr(8)));
        if (profile.empty()) return ParseError(source, line_number, "empty profile name");
        section = &out.config[profile];
      } else if (name.rfind("services", 0) == 0 && name.size() > 8 && IsAsciiSpace(name[8])) {
        std::string services_name(TrimView(std::string_view(name).substr(9)));
        if (services_name.empty()) {
          return ParseError(source, line_number, "empty services section name");
        }
        std::string key = "services " + services_name;
        section = &out.config[key];
        service_section = &out.services[key];
      } else if (name.rfind("sso-session", 0) == 0 && name.size() > 11 && IsAsciiSpace(name[11])) {
        std::string session(TrimView(std::string_view(name).substr(12)));
        if (session.empty()) {
          return ParseError(source, line_number, "empty sso-session section name");
        }
        section = &out.sso_sessions[session];
      }
      continue;
    }

    if (!in_section) {
      return ParseError(source, line_number, "property outside of any [section]");
    }

    if (indented) {
      if (last_key.empty()) {
        return ParseError(source, line_number, "indented line without a property above it");
      }
      if (section == nullptr) continue;
      if (last_key_is_parent) {
        // A sub-property: "s3 =" followed by "  endpoint_url = ...".
        size_t eq = trimmed.find('=');
        if (eq == std::string_view::npos) {
          return ParseError(source, line_number, "expected 'key = value' in a sub-section");
        }
        std::string sub_key = Lower(TrimView(trimmed.substr(0, eq)));
        if (sub_key.empty()) return ParseError(source, line_number, "empty key");
        std::string value(StripInlineComment(TrimView(trimmed.substr(eq + 1))));
        if (service_section != nullptr) (*service_section)[last_key][sub_key] = value;
        (*section)[last_key + "." + sub_key] = std::move(value);
      } else {
        // A continuation of a multi-line value.
        std::string& value = (*section)[last_key];
        value += "\n";
        value += std::string(trimmed);
      }
      continue;
    }

    size_t eq = trimmed.find('=');
    if (eq == std::string_view::npos) {
      return ParseError(source, line_number, "expected 'key = value'");
    }
    std::string key = Lower(TrimView(trimmed.substr(0, eq)));
    if (key.empty()) return ParseError(source, line_number, "empty key");
    std::string value(StripInlineComment(TrimView(trimmed.substr(eq + 1))));
    last_key = key;
    last_key_is_parent = value.empty();
    if (section != nullptr) (*section)[key] = std::move(value);
  }
  return Status::Ok();
}

Result<ProfileFiles> ProfileFiles::Load(const Environment& env) {
  ProfileFiles files;
  files.profile_name = env.GetOr("AWS_PROFILE", env.GetOr("AWS_DEFAULT_PROFILE", ""));
  files.profile_explicit = !files.profile_name.empty();
  if (!files.profile_explicit) files.profile_name = "default";

  const std::string home = env.GetOr("HOME", "");
  auto path_for = [&](const char* variable, const char* default_name) -> std::string {
    std::string configured = env.GetOr(variable, "");
    if (!configured.empty()) return ExpandHome(configured, env);
    if (home.empty()) return "";
    return home + "/.aws/" + default_name;
  };

  struct FileSpec {
    std::string path;
    bool is_config;
  };
  for (const FileSpec& spec :
       {FileSpec{path_for("AWS_SHARED_CREDENTIALS_FILE", "credentials"), false},
        FileSpec{path_for("AWS_CONFIG_FILE", "config"), true}}) {
    if (spec.path.empty()) continue;
    auto text = ReadOptionalFile(spec.path);
    if (!text.ok()) return text.error();
    if (!text->has_value()) continue;
    Status parsed = ParseInto(**text, spec.path, spec.is_config, files);
    if (!parsed.ok()) return parsed.error();
  }
  return files;
}

std::optional<std::string> ResolveRegionWithoutImds(const Environment& env,
                                                    const ProfileFiles& profiles) {
  for (const char* variable : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    std::string value(TrimView(env.GetOr(variable, "")));
    if (!value.empty()) return value;
  }
  if (auto region = profiles.Get("region")) {
    std::string value(TrimView(*region));
    if (!value.empty()) return value;
  }
  return std::nullopt;
}

namespace {

// A region goes into a host name: only the characters real regions use.
bool IsValidRegion(std::string_view region) {
  if (region.empty() || region.size() > 64) return false;
  return std::all_of(region.begin(), region.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool IgnoreConfiguredEndpoints(const Environment& env, const ProfileFiles& profiles) {
  if (auto value = env.Get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"); value && !value->empty()) {
    return IsTrue(*value);
  }
  if (auto value = profiles.Get("ignore_configured_endpoint_urls")) return IsTrue(*value);
  return false;
}

// The configured endpoint for `service` and where it came from, or nullopt.
std::optional<std::pair<std::string, std::string>> ConfiguredEndpoint(
    const ServiceInfo& service, const Environment& env, const ProfileFiles& profiles) {
  std::string service_variable = "AWS_ENDPOINT_URL_" + std::string(service.env_suffix);
  if (auto value = env.GetOr(service_variable, ""); !value.empty()) {
    return std::make_pair(value, service_variable);
  }
  if (auto value = env.GetOr("AWS_ENDPOINT_URL", ""); !value.empty()) {
    return std::make_pair(value, std::string("AWS_ENDPOINT_URL"));
  }
  if (auto services_name = profiles.Get("services")) {
    std::string key = "services " + std::string(TrimView(*services_name));
    auto services = profiles.services.find(key);
    if (services != profiles.services.end()) {
      auto entry = services->second.find(std::string(service.config_key));
      if (entry != services->second.end()) {
        auto url = entry->second.find("endpoint_url");
        if (url != entry->second.end() && !url->second.empty()) {
          return std::make_pair(url->second, "endpoint_url for " + std::string(service.config_key) +
                                                 " in [" + key + "]");
        }
      }
    }
  }
  if (auto value = profiles.Get("endpoint_url"); value && !value->empty()) {
    return std::make_pair(*value, "endpoint_url in profile '" + profiles.profile_name + "'");
  }
  return std::nullopt;
}

}  // namespace

Result<Endpoint> ResolveEndpoint(const ServiceInfo& service, const std::string& region,
                                 const Environment& env, const ProfileFiles& profiles) {
  Endpoint endpoint;
  if (!IgnoreConfiguredEndpoints(env, profiles)) {
    if (auto configured = ConfiguredEndpoint(service, env, profiles)) {
      const auto& [text, origin] = *configured;
      auto url = ParseUrl(TrimView(text));
      if (!url.ok()) {
        // ParseUrl's message quotes the URL unless it holds user info (a password).
        return Error::InvalidInput(origin + " is not a valid endpoint URL: " + url.error().message);
      }
      // Keep a base path (tenant prefixes, proxies) but not a bare or trailing '/': the
      // operation's path is appended to it.
      while (!url->path.empty() && url->path.back() == '/') url->path.pop_back();
      endpoint.url = std::move(*url);
      endpoint.configured = true;
      endpoint.s3_path_style = true;
      return endpoint;
    }
  }
  if (!IsValidRegion(region)) {
    return Error::InvalidInput("invalid AWS region '" + region +
                               "': set AWS_REGION to a region such as us-east-1");
  }
  endpoint.url.scheme = "https";
  endpoint.url.host = std::string(service.endpoint_prefix) + "." + region +
                      (region.rfind("cn-", 0) == 0 ? ".amazonaws.com.cn" : ".amazonaws.com");
  return endpoint;
}

}  // namespace spotgrid
