// IMDSv2 client (see imds_client.h).
#include "spotgrid/aws/imds_client.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "aws/credentials_json.h"
#include "core/strings.h"
#include "spotgrid/aws/aws_client.h"

namespace spotgrid {

namespace {

constexpr std::string_view kService = "IMDS";
constexpr std::string_view kTokenTtlHeader = "X-aws-ec2-metadata-token-ttl-seconds";
constexpr std::string_view kTokenHeader = "X-aws-ec2-metadata-token";
// Renew the session token this long before IMDS would stop accepting it.
constexpr std::chrono::seconds kTokenRenewMargin{300};

Error ImdsError(ErrorCategory category, const std::string& operation, int http_status,
                std::string code, std::string message) {
  Error e;
  e.category = category;
  e.service = std::string(kService);
  e.operation = operation;
  e.http_status = http_status;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

Error StatusError(const std::string& operation, const std::string& what, int status) {
  ErrorCategory category = ErrorCategory::kClient;
  std::string code = "HttpError";
  if (status == 429) {
    category = ErrorCategory::kThrottled;
    code = "Throttled";
  } else if (status >= 500) {
    category = ErrorCategory::kTransient;
    code = "ServiceUnavailable";
  } else if (status == 404) {
    category = ErrorCategory::kNotFound;
    code = "NotFound";
  } else if (status == 403) {
    code = "Forbidden";
  } else if (status == 401) {
    code = "Unauthorized";
  }
  return ImdsError(category, operation, status, code, what);
}

bool IsRetryableStatus(int status) { return status == 429 || status >= 500; }

Error Malformed(const std::string& operation, const std::string& what) {
  return ImdsError(ErrorCategory::kClient, operation, 200, "MalformedResponse", what);
}

}  // namespace

Result<ImdsOptions> ImdsOptions::FromEnvironment(const Environment& env) {
  ImdsOptions options;
  std::string endpoint = env.GetOr("AWS_EC2_METADATA_SERVICE_ENDPOINT", "");
  if (endpoint.empty() &&
      Lower(env.GetOr("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "")) == "ipv6") {
    endpoint = "http://[fd00:ec2::254]";
  }
  if (!endpoint.empty()) {
    endpoint = Trim(endpoint);
    if (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0) {
      return Error::InvalidInput(
          "AWS_EC2_METADATA_SERVICE_ENDPOINT must be an http:// or "
          "https:// URL, got '" +
          endpoint + "'");
    }
    options.endpoint = endpoint;
  }
  options.disabled = Lower(Trim(env.GetOr("AWS_EC2_METADATA_DISABLED", ""))) == "true";

  if (auto text = env.GetOr("AWS_METADATA_SERVICE_TIMEOUT", ""); !text.empty()) {
    // botocore accepts fractional seconds ("0.5").
    char* end = nullptr;
    double seconds = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0' || !std::isfinite(seconds) || seconds <= 0 ||
        seconds > 3600) {
      return Error::InvalidInput(
          "AWS_METADATA_SERVICE_TIMEOUT must be a number of seconds "
          "greater than 0, got '" +
          text + "'");
    }
    options.timeout = std::chrono::milliseconds(
        std::max<long long>(1, static_cast<long long>(std::llround(seconds * 1000))));
  }
  if (auto text = env.GetOr("AWS_METADATA_SERVICE_NUM_ATTEMPTS", ""); !text.empty()) {
    int attempts = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), attempts);
    if (ec != std::errc() || ptr != text.data() + text.size() || attempts < 1 || attempts > 10) {
      return Error::InvalidInput(
          "AWS_METADATA_SERVICE_NUM_ATTEMPTS must be an integer from 1 to 10, got '" + text + "'");
    }
    options.attempts = attempts;
  }
  return options;
}

Result<std::shared_ptr<ImdsClient>> ImdsClient::Create(const Environment& env,
                                                       std::shared_ptr<HttpTransport> transport,
                                                       Clock& clock) {
  auto options = ImdsOptions::FromEnvironment(env);
  if (!options.ok()) return options.error();
  return std::make_shared<ImdsClient>(std::move(*options), std::move(transport), clock);
}

Result<std::shared_ptr<ImdsClient>> ImdsClient::Create(std::shared_ptr<AwsContext> context) {
  if (auto imds = context->imds()) return imds;
  return Create(context->env(), context->shared_transport(), context->clock());
}

ImdsClient::ImdsClient(ImdsOptions options, std::shared_ptr<HttpTransport> transport, Clock& clock)
    : options_(std::move(options)), transport_(std::move(transport)), clock_(clock) {
  base_ = options_.endpoint;
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
  if (options_.attempts < 1) options_.attempts = 1;
}

Error ImdsClient::DisabledError(const std::string& operation) const {
  return ImdsError(ErrorCategory::kClient, operation, 0, "ImdsDisabled",
                   "IMDS disabled (AWS_EC2_METADATA_DISABLED=true)");
}

Result<HttpResponse> ImdsClient::Exchange(HttpRequest request, const std::string& operation) {
  request.connect_timeout = options_.timeout;
  request.timeout = options_.timeout;
  Result<HttpResponse> result = ImdsError(ErrorCategory::kTransient, operation, 0, "", "");
  for (int attempt = 1; attempt <= options_.attempts; ++attempt) {
    if (attempt > 1) clock_.SleepFor(std::chrono::milliseconds(100) * (1 << (attempt - 2)));
    result = transport_->Send(request);
    if (result.ok()) {
      if (!IsRetryableStatus(result->status)) return result;
      continue;
    }
  }
  if (!result.ok()) {
    Error e = result.error();
    e.service = std::string(kService);
    e.operation = operation;
    e.message = "cannot reach IMDS at " + base_ +
                " (not on EC2, or the metadata hop limit "
                "is too low for a container?): " +
                e.message;
    return e;
  }
  return result;
}

Result<std::string> ImdsClient::FetchToken() {
  HttpRequest request;
  request.method = "PUT";
  request.url = base_ + "/latest/api/token";
  request.headers.emplace_back(std::string(kTokenTtlHeader),
                               std::to_string(options_.token_ttl.count()));
  auto response = Exchange(std::move(request), "GetToken");
  if (!response.ok()) return response.error();
  if (response->status == 200) {
    std::string token = Trim(response->body);
    if (token.empty()) return Malformed("GetToken", "IMDS returned an empty session token");
    return token;
  }
  // No IMDSv1 fallback, whatever the status: say what the status usually means instead.
  std::string why;
  switch (response->status) {
    case 400:
      why = "IMDS rejected the token request (bad TTL)";
      break;
    case 403:
      why =
          "IMDS refused a session token (IMDS disabled for this instance, or the request "
          "went through a proxy)";
      break;
    case 404:
    case 405:
      why = "IMDS offers no IMDSv2 session tokens at " + base_ + " (spotgrid does not use IMDSv1)";
      break;
    default:
      why = "IMDS failed to issue a session token";
      break;
  }
  Error e = StatusError("GetToken", why, response->status);
  if (e.category == ErrorCategory::kNotFound) e.category = ErrorCategory::kClient;
  return e;
}

Result<std::string> ImdsClient::Token(const std::string& stale) {
  std::lock_guard<std::mutex> lock(token_mu_);
  if (!token_.empty() && token_ != stale && clock_.Monotonic() < token_renew_at_) return token_;
  auto token = FetchToken();
  if (!token.ok()) return token.error();
  const auto ttl = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.token_ttl);
  const auto margin = std::min<std::chrono::nanoseconds>(kTokenRenewMargin, ttl / 4);
  token_ = *token;
  token_renew_at_ = clock_.Monotonic() + (ttl - margin);
  return token_;
}

Result<std::string> ImdsClient::Get(std::string_view path) {
  const std::string operation = "GetMetadata";
  if (options_.disabled) return DisabledError(operation);
  std::string full_path =
      path.rfind("/latest/", 0) == 0 ? std::string(path) : "/latest/meta-data/" + std::string(path);
  std::string rejected;
  for (int round = 0; round < 2; ++round) {
    auto token = Token(rejected);
    if (!token.ok()) return token.error();
    HttpRequest request;
    request.method = "GET";
    request.url = base_ + full_path;
    request.headers.emplace_back(std::string(kTokenHeader), *token);
    auto response = Exchange(std::move(request), operation);
    if (!response.ok()) return response.error();
    if (response->status == 200) return std::move(response->body);
    if (response->status == 401 && round == 0) {
      // The token was lost or expired early: one new token, one retry.
      rejected = *token;
      continue;
    }
    std::string what;
    switch (response->status) {
      case 404:
        what = "IMDS has no " + full_path;
        break;
      case 401:
        what = "IMDS rejected a fresh session token for " + full_path;
        break;
      case 403:
        what = "IMDS denied access to " + full_path;
        break;
      default:
        what = "IMDS failed to return " + full_path;
        break;
    }
    return StatusError(operation, what, response->status);
  }
  return StatusError(operation, "IMDS rejected the session token", 401);  // not reached
}

Result<std::optional<std::string>> ImdsClient::GetOptional(std::string_view path) {
  auto value = Get(path);
  if (value.ok()) return std::optional<std::string>(std::move(*value));
  if (value.error().IsNotFound()) return std::optional<std::string>();
  return value.error();
}

namespace {

Result<std::string> TrimmedNonEmpty(Result<std::string> value, const char* what) {
  if (!value.ok()) return value.error();
  std::string text = Trim(*value);
  if (text.empty()) return Malformed("GetMetadata", std::string("IMDS returned an empty ") + what);
  return text;
}

}  // namespace

Result<std::string> ImdsClient::InstanceId() {
  return TrimmedNonEmpty(Get("instance-id"), "instance-id");
}

Result<std::string> ImdsClient::InstanceType() {
  return TrimmedNonEmpty(Get("instance-type"), "instance-type");
}

Result<std::string> ImdsClient::Region() {
  return TrimmedNonEmpty(Get("placement/region"), "placement/region");
}

Result<std::string> ImdsClient::AvailabilityZone() {
  return TrimmedNonEmpty(Get("placement/availability-zone"), "placement/availability-zone");
}

Result<bool> ImdsClient::IsSpot() {
  auto life_cycle = Get("instance-life-cycle");
  if (!life_cycle.ok()) return life_cycle.error();
  return Trim(*life_cycle) == "spot";
}

Result<std::optional<SpotInstanceActionNotice>> ImdsClient::SpotInstanceAction() {
  const std::string operation = "GetSpotInstanceAction";
  auto body = GetOptional("spot/instance-action");
  if (!body.ok()) return body.error();
  if (!body->has_value()) return std::optional<SpotInstanceActionNotice>();
  try {
    auto json = nlohmann::json::parse(**body);
    SpotInstanceActionNotice notice;
    notice.action = json.at("action").get<std::string>();
    auto time = ParseIso8601(json.at("time").get<std::string>());
    if (!time) return Malformed(operation, "spot/instance-action has an unreadable time");
    notice.time = *time;
    return std::optional<SpotInstanceActionNotice>(std::move(notice));
  } catch (const nlohmann::json::exception&) {
    return Malformed(operation, "spot/instance-action is not {\"action\", \"time\"} JSON");
  }
}

Result<std::optional<RebalanceNotice>> ImdsClient::RebalanceRecommendation() {
  const std::string operation = "GetRebalanceRecommendation";
  auto body = GetOptional("events/recommendations/rebalance");
  if (!body.ok()) return body.error();
  if (!body->has_value()) return std::optional<RebalanceNotice>();
  try {
    auto json = nlohmann::json::parse(**body);
    auto time = ParseIso8601(json.at("noticeTime").get<std::string>());
    if (!time) return Malformed(operation, "rebalance recommendation has an unreadable time");
    return std::optional<RebalanceNotice>(RebalanceNotice{*time});
  } catch (const nlohmann::json::exception&) {
    return Malformed(operation, "rebalance recommendation is not {\"noticeTime\"} JSON");
  }
}

Result<std::optional<std::string>> ImdsClient::TargetLifecycleState() {
  auto body = GetOptional("autoscaling/target-lifecycle-state");
  if (!body.ok()) return body.error();
  if (!body->has_value()) return std::optional<std::string>();
  std::string state = Trim(**body);
  if (state.empty()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(state));
}

Result<Credentials> ImdsClient::RoleCredentials() {
  const std::string operation = "GetRoleCredentials";
  auto roles = Get("iam/security-credentials/");
  if (!roles.ok()) {
    Error e = roles.error();
    e.operation = operation;
    if (e.IsNotFound()) e.message = "no IAM role is attached to this instance";
    return e;
  }
  std::string role = Trim(std::string_view(*roles).substr(0, roles->find('\n')));
  if (role.empty() || role.find('/') != std::string::npos) {
    return ImdsError(ErrorCategory::kNotFound, operation, 200, "NoInstanceRole",
                     "no IAM role is attached to this instance");
  }
  auto body = Get("iam/security-credentials/" + role);
  if (!body.ok()) {
    Error e = body.error();
    e.operation = operation;
    return e;
  }
  auto credentials =
      ParseCredentialsJson(*body, /*check_code=*/true, std::string(kService), operation);
  if (!credentials.ok()) return credentials.error();
  if (!credentials->expiration) {
    return Malformed(operation, "role credentials from IMDS have no Expiration");
  }
  return credentials;
}

}  // namespace spotgrid
