// Credential providers and the default chain (see credentials.h).
//
// Nothing here formats a secret access key, session token or container authorization token
// into an Error or a log line; error messages name variables, files and profiles instead.
#include "spotgrid/aws/credentials.h"

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>

#include "aws/credentials_json.h"
#include "core/strings.h"
#include "spotgrid/aws/aws_config.h"
#include "spotgrid/aws/credentials/assume_role.h"
#include "spotgrid/aws/credentials/basic_sources.h"
#include "spotgrid/aws/credentials/profile_sources.h"
#include "spotgrid/aws/imds_client.h"
#include "spotgrid/core/file_io.h"
#include "spotgrid/core/iso8601.h"
#include "spotgrid/core/log.h"

namespace spotgrid {

namespace {

Error CredentialsError(ErrorCategory category, const std::string& service,
                       const std::string& operation, std::string code, std::string message,
                       int http_status = 0) {
  Error e;
  e.category = category;
  e.service = service;
  e.operation = operation;
  e.http_status = http_status;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

}  // namespace

Result<Credentials> ParseCredentialsJson(std::string_view body, bool check_code,
                                         const std::string& service, const std::string& operation) {
  auto malformed = [&](const std::string& what) {
    return CredentialsError(ErrorCategory::kClient, service, operation, "MalformedCredentials",
                            what);
  };
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception&) {
    return malformed("the credentials response is not JSON");
  }
  if (!json.is_object()) return malformed("the credentials response is not a JSON object");
  auto string_field = [&](const char* key) -> std::optional<std::string> {
    auto it = json.find(key);
    if (it == json.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  if (check_code) {
    auto code = string_field("Code");
    if (code && *code != "Success") {
      std::string message = "the credentials response says Code=" + *code;
      if (auto text = string_field("Message"); text && !text->empty()) message += ": " + *text;
      return CredentialsError(ErrorCategory::kClient, service, operation, *code, message);
    }
  }
  Credentials credentials;
  auto access_key = string_field("AccessKeyId");
  auto secret_key = string_field("SecretAccessKey");
  if (!access_key || access_key->empty() || !secret_key || secret_key->empty()) {
    return malformed("the credentials response lacks AccessKeyId or SecretAccessKey");
  }
  credentials.access_key_id = std::move(*access_key);
  credentials.secret_access_key = std::move(*secret_key);
  if (auto token = string_field("Token")) credentials.session_token = std::move(*token);
  if (auto expiration = string_field("Expiration")) {
    credentials.expiration = ParseIso8601(*expiration);
    if (!credentials.expiration) {
      // The value is not quoted: a garbled response may have run into a secret.
      return malformed("the credentials response has an unreadable Expiration");
    }
  }
  return credentials;
}

// ---------------------------------------------------------------------------------------------
// Static and refreshing providers.

namespace {

class StaticCredentialsProvider final : public CredentialsProvider {
 public:
  explicit StaticCredentialsProvider(Credentials credentials)
      : credentials_(std::move(credentials)) {}
  Result<Credentials> GetCredentials() override { return credentials_; }

 private:
  const Credentials credentials_;
};

// When credentials a refresh just returned already sit inside the window, use them this long
// before asking the source again.
constexpr std::chrono::minutes kInWindowHold{1};
// After a failed advisory refresh, wait this long before the next advisory attempt.
constexpr std::chrono::seconds kAdvisoryRetryDelay{30};
// Held credentials are given up this close to their Expiration.
constexpr std::chrono::minutes kMinimumRemaining{1};

class RefreshingCredentialsProvider final : public CredentialsProvider {
 public:
  RefreshingCredentialsProvider(std::function<Result<Credentials>()> fetch, Clock& clock,
                                std::string name)
      : fetch_(std::move(fetch)), clock_(clock), name_(std::move(name)) {}

  Result<Credentials> GetCredentials() override {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      const State state = Evaluate(clock_.Now());
      if (state == State::kFresh) return *cached_;
      if (refreshing_) {
        // Another thread is fetching: the advisory window still allows the cached ones.
        if (state == State::kAdvisory) return *cached_;
        cv_.wait(lock, [this] { return !refreshing_; });
        continue;
      }
      refreshing_ = true;
      lock.unlock();
      Result<Credentials> fetched = fetch_();
      lock.lock();
      refreshing_ = false;
      cv_.notify_all();
      const auto now = clock_.Now();
      if (fetched.ok()) {
        cached_ = std::move(*fetched);
        advisory_retry_at_ = {};
        hold_until_ = {};
        if (Evaluate(now) != State::kFresh) hold_until_ = now + kInWindowHold;
        return *cached_;
      }
      if (state == State::kAdvisory && cached_ && now < *cached_->expiration) {
        advisory_retry_at_ = now + kAdvisoryRetryDelay;
        const auto left =
            std::chrono::duration_cast<std::chrono::seconds>(*cached_->expiration - now);
        Logger().warn(
            "{}: refreshing credentials failed; using the current ones, which expire "
            "in {} s: {}",
            name_, left.count(), fetched.error().ToString());
        return *cached_;
      }
      return fetched.error();
    }
  }

 private:
  enum class State { kFresh, kAdvisory, kMandatory };

  State Evaluate(Clock::WallTime now) const {
    if (!cached_) return State::kMandatory;
    if (!cached_->expiration) return State::kFresh;
    const auto remaining = *cached_->expiration - now;
    if (remaining > kAdvisoryRefreshWindow) return State::kFresh;
    if (now < hold_until_ && remaining > kMinimumRemaining) return State::kFresh;
    if (remaining > kMandatoryRefreshWindow) {
      return now < advisory_retry_at_ ? State::kFresh : State::kAdvisory;
    }
    return State::kMandatory;
  }

  std::function<Result<Credentials>()> fetch_;
  Clock& clock_;
  const std::string name_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Credentials> cached_;
  bool refreshing_ = false;  // one fetch at a time
  Clock::WallTime hold_until_{};
  Clock::WallTime advisory_retry_at_{};
};

}  // namespace

std::shared_ptr<CredentialsProvider> MakeStaticCredentialsProvider(Credentials credentials) {
  return std::make_shared<StaticCredentialsProvider>(std::move(credentials));
}

std::shared_ptr<CredentialsProvider> MakeRefreshingCredentialsProvider(
    std::function<Result<Credentials>()> fetch, Clock& clock, std::string name) {
  return std::make_shared<RefreshingCredentialsProvider>(std::move(fetch), clock, std::move(name));
}

// ---------------------------------------------------------------------------------------------
// The individual sources of the default chain.

namespace {

const std::string kChain = "Credentials";

Error ConfigError(std::string message) {
  return CredentialsError(ErrorCategory::kInvalidInput, "", kChain, "InvalidCredentialsConfig",
                          std::move(message));
}

}  // namespace

std::optional<Result<Credentials>> CredentialsFromEnvironment(const Environment& env) {
  const std::string access_key = env.GetOr("AWS_ACCESS_KEY_ID", "");
  const std::string secret_key = env.GetOr("AWS_SECRET_ACCESS_KEY", "");
  if (access_key.empty() && secret_key.empty()) return std::nullopt;
  if (access_key.empty() || secret_key.empty()) {
    return Result<Credentials>(ConfigError(
        std::string(access_key.empty() ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") +
        " is set but " + (access_key.empty() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") +
        " is not: set both, or neither to use another credentials source"));
  }
  Credentials credentials;
  credentials.access_key_id = access_key;
  credentials.secret_access_key = secret_key;
  credentials.session_token = env.GetOr("AWS_SESSION_TOKEN", env.GetOr("AWS_SECURITY_TOKEN", ""));
  if (auto expiration = env.GetOr("AWS_CREDENTIAL_EXPIRATION", ""); !expiration.empty()) {
    credentials.expiration = ParseIso8601(expiration);
    if (!credentials.expiration) {
      return Result<Credentials>(
          ConfigError("AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time: '" + expiration + "'"));
    }
  }
  return Result<Credentials>(std::move(credentials));
}

std::optional<Result<Credentials>> StaticKeysFromSection(const ProfileSection& section,
                                                         const std::string& where) {
  auto find = [&](const char* key) -> std::string {
    auto it = section.find(key);
    return it == section.end() ? std::string() : Trim(it->second);
  };
  const std::string access_key = find("aws_access_key_id");
  const std::string secret_key = find("aws_secret_access_key");
  if (access_key.empty() && secret_key.empty()) return std::nullopt;
  if (access_key.empty() || secret_key.empty()) {
    return Result<Credentials>(ConfigError(
        where + " has " + (access_key.empty() ? "aws_secret_access_key" : "aws_access_key_id") +
        " but no " + (access_key.empty() ? "aws_access_key_id" : "aws_secret_access_key")));
  }
  Credentials credentials;
  credentials.access_key_id = access_key;
  credentials.secret_access_key = secret_key;
  credentials.session_token = find("aws_session_token");
  if (credentials.session_token.empty()) credentials.session_token = find("aws_security_token");
  return Result<Credentials>(std::move(credentials));
}

namespace {

// http:// container endpoints are only trusted on these hosts (botocore's list plus any
// loopback address): anything else could be an attacker-controlled server.
bool IsAllowedHttpContainerHost(std::string host) {
  host = Lower(host);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "169.254.170.2" || host == "169.254.170.23" ||
      host == "fd00:ec2::23" || host == "::1") {
    return true;
  }
  // 127.0.0.0/8
  if (host.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

// scheme and host of an absolute URL; nullopt when it is not one.
std::optional<std::pair<std::string, std::string>> SchemeAndHost(const std::string& url) {
  size_t sep = url.find("://");
  if (sep == std::string::npos) return std::nullopt;
  std::string scheme = Lower(url.substr(0, sep));
  std::string rest = url.substr(sep + 3);
  std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.find('@') != std::string::npos) return std::nullopt;
  std::string host;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    host = authority.substr(0, close + 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  if (host.empty()) return std::nullopt;
  return std::make_pair(scheme, host);
}

class ContainerSource {
 public:
  static Result<ContainerSource> Create(const Environment& env, HttpTransport& transport,
                                        Clock& clock) {
    ContainerSource source(env, transport, clock);
    std::string relative = env.GetOr("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "");
    if (!relative.empty()) {
      if (relative.front() != '/') relative = "/" + relative;
      source.url_ = "http://169.254.170.2" + relative;
      return source;
    }
    std::string full = Trim(env.GetOr("AWS_CONTAINER_CREDENTIALS_FULL_URI", ""));
    auto parts = SchemeAndHost(full);
    if (!parts || (parts->first != "http" && parts->first != "https")) {
      return ConfigError("AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http(s) URL: '" + full +
                         "'");
    }
    if (parts->first == "http" && !IsAllowedHttpContainerHost(parts->second)) {
      return ConfigError("AWS_CONTAINER_CREDENTIALS_FULL_URI uses http:// with host '" +
                         parts->second +
                         "'; http is only allowed to loopback, 169.254.170.2, "
                         "169.254.170.23 or fd00:ec2::23 (use https)");
    }
    source.url_ = full;
    return source;
  }

  Result<Credentials> Fetch() {
    const std::string operation = "GetContainerCredentials";
    HttpRequest request;
    request.method = "GET";
    request.url = url_;
    request.connect_timeout = std::chrono::seconds(2);
    request.timeout = std::chrono::seconds(2);
    request.headers.emplace_back("Accept", "application/json");
    auto token = AuthorizationToken();
    if (!token.ok()) return token.error();
    if (!token->empty()) request.headers.emplace_back("Authorization", *token);

    Result<HttpResponse> response = Error();
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
      if (attempt > 1) clock_.SleepFor(std::chrono::seconds(1));
      response = transport_.Send(request);
      if (response.ok() && response->status < 500 && response->status != 429) break;
    }
    if (!response.ok()) {
      Error e = response.error();
      e.service = kService;
      e.operation = operation;
      e.message = "cannot reach the container credentials endpoint " + url_ + ": " + e.message;
      return e;
    }
    if (response->status != 200) {
      std::string message = "the container credentials endpoint " + url_ + " answered HTTP " +
                            std::to_string(response->status);
      // ECS/EKS error bodies are {"code","message"}; the message never holds a secret.
      try {
        auto json = nlohmann::json::parse(response->body);
        if (json.is_object() && json.contains("message") && json["message"].is_string()) {
          message += ": " + json["message"].get<std::string>();
        }
      } catch (const nlohmann::json::exception&) {
      }
      ErrorCategory category = response->status >= 500 || response->status == 429
                                   ? ErrorCategory::kTransient
                                   : ErrorCategory::kClient;
      return CredentialsError(category, kService, operation, "HttpError", message,
                              response->status);
    }
    return ParseCredentialsJson(response->body, /*check_code=*/false, kService, operation);
  }

 private:
  static constexpr int kAttempts = 3;
  static constexpr const char* kService = "ContainerCredentials";

  ContainerSource(const Environment& env, HttpTransport& transport, Clock& clock)
      : env_(env), transport_(transport), clock_(clock) {}

  // Re-read on every fetch: EKS Pod Identity rotates the token file.
  Result<std::string> AuthorizationToken() const {
    std::string token;
    std::string origin;
    if (std::string path = env_.GetOr("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "");
        !path.empty()) {
      Result<std::string> text = ReadFile(path, "read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
      if (!text.ok()) return text.error();
      token = Trim(*text);
      origin = "the file AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names";
    } else {
      token = Trim(env_.GetOr("AWS_CONTAINER_AUTHORIZATION_TOKEN", ""));
      origin = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
    }
    if (token.find_first_of("\r\n") != std::string::npos) {
      return ConfigError("the container authorization token in " + origin +
                         " contains a line break");
    }
    return token;
  }

  const Environment& env_;
  HttpTransport& transport_;
  Clock& clock_;
  std::string url_;
};

}  // namespace

bool ContainerCredentialsConfigured(const Environment& env) {
  return !env.GetOr("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "").empty() ||
         !env.GetOr("AWS_CONTAINER_CREDENTIALS_FULL_URI", "").empty();
}

Result<std::shared_ptr<CredentialsProvider>> MakeContainerCredentialsProvider(
    const Environment& env, std::shared_ptr<HttpTransport> transport, Clock& clock) {
  auto source = ContainerSource::Create(env, *transport, clock);
  if (!source.ok()) return source.error();
  auto shared = std::make_shared<ContainerSource>(std::move(*source));
  // The lambda keeps the transport alive with the provider.
  return MakeRefreshingCredentialsProvider([shared, transport] { return shared->Fetch(); }, clock,
                                           "container credentials");
}

std::shared_ptr<CredentialsProvider> MakeImdsCredentialsProvider(std::shared_ptr<ImdsClient> imds,
                                                                 Clock& clock,
                                                                 std::string context) {
  return MakeRefreshingCredentialsProvider(
      [imds, context]() -> Result<Credentials> {
        auto credentials = imds->RoleCredentials();
        if (credentials.ok()) return credentials;
        Error e = credentials.error();
        e.message = context + "instance-role credentials from IMDS failed: " + e.message;
        return e;
      },
      clock, "instance-role credentials");
}

namespace {

// The chain: chooses a source on first use and keeps it.
class DefaultCredentialsChain final : public CredentialsProvider {
 public:
  DefaultCredentialsChain(const Environment& env, std::shared_ptr<HttpTransport> transport,
                          std::shared_ptr<ImdsClient> imds, Clock& clock, MfaPrompt mfa_prompt)
      : env_(env),
        transport_(std::move(transport)),
        imds_(std::move(imds)),
        clock_(clock),
        mfa_prompt_(std::move(mfa_prompt)) {}

  Result<Credentials> GetCredentials() override {
    std::shared_ptr<CredentialsProvider> selected;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!selected_) {
        auto chosen = Select();
        if (!chosen.ok()) return chosen.error();
        selected_ = std::move(*chosen);
      }
      selected = selected_;
    }
    return selected->GetCredentials();
  }

 private:
  // botocore's order (credentials.py create_credential_resolver): environment, a role profile,
  // the profile's own sources (ResolveProfileSources), container, IMDS.
  Result<std::shared_ptr<CredentialsProvider>> Select() {
    auto files = ProfileFiles::Load(env_);
    if (!files.ok()) return files.error();
    const std::string profile = files->profile_name;
    // botocore refuses a profile named by AWS_PROFILE that does not exist before it looks at
    // any source: a typo must not silently use other credentials.
    if (files->profile_explicit && !files->HasProfile(profile)) {
      return ConfigError("profile '" + profile + "' (AWS_PROFILE) is in neither " +
                         FileName(env_, "AWS_SHARED_CREDENTIALS_FILE", "credentials") + " nor " +
                         FileName(env_, "AWS_CONFIG_FILE", "config"));
    }

    if (auto from_env = CredentialsFromEnvironment(env_)) {
      if (!from_env->ok()) return from_env->error();
      return MakeStaticCredentialsProvider(std::move(from_env->value()));
    }

    auto context = std::make_shared<CredentialSourceContext>(
        CredentialSourceContext{env_, transport_, clock_, *files, "", imds_, mfa_prompt_});
    context->sts_region = ResolveRegionWithoutImds(env_, *files).value_or("us-east-1");

    if (IsRoleProfile(*files, profile)) return MakeAssumeRoleProvider(context, profile);
    if (auto from_profile = ResolveProfileSources(context, profile, /*use_env=*/true)) {
      return *from_profile;
    }

    if (ContainerCredentialsConfigured(env_)) {
      return MakeContainerCredentialsProvider(env_, transport_, clock_);
    }

    const std::string none =
        "no AWS credentials found: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set, "
        "profile '" +
        profile +
        "' has no credentials (keys, role_arn, web identity, SSO or credential_process), no "
        "container credentials are configured";
    if (imds_ == nullptr || imds_->disabled()) {
      return ConfigError(none + ", and IMDS is disabled (AWS_EC2_METADATA_DISABLED)");
    }
    return MakeImdsCredentialsProvider(imds_, clock_, none + ", and ");
  }

  static std::string FileName(const Environment& env, const char* variable,
                              const char* default_name) {
    std::string configured = env.GetOr(variable, "");
    return configured.empty() ? std::string("~/.aws/") + default_name : configured;
  }

  const Environment& env_;
  std::shared_ptr<HttpTransport> transport_;
  std::shared_ptr<ImdsClient> imds_;
  Clock& clock_;
  MfaPrompt mfa_prompt_;

  std::mutex mu_;
  std::shared_ptr<CredentialsProvider> selected_;
};

}  // namespace

std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain(
    const Environment& env, std::shared_ptr<HttpTransport> transport,
    std::shared_ptr<ImdsClient> imds, Clock& clock, MfaPrompt mfa_prompt) {
  if (!mfa_prompt) mfa_prompt = PromptOnTerminal;
  return std::make_shared<DefaultCredentialsChain>(env, std::move(transport), std::move(imds),
                                                   clock, std::move(mfa_prompt));
}

}  // namespace spotgrid
