#include "spotgrid/aws/aws_client.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "core/strings.h"
#include "spotgrid/aws/sigv4.h"
#include "spotgrid/aws/uri.h"
#include "spotgrid/aws/xml.h"
#include "spotgrid/core/deadline.h"
#include "spotgrid/core/log.h"

namespace spotgrid {
namespace {

// RFC 1123 date as in the HTTP Date header: "Sun, 06 Nov 1994 08:49:37 GMT". Parsed by hand
// (it is read on every response): strptime's %a/%b depend on the locale, and sscanf plus timegm
// cost more than the rest of the response handling around them. Accepts what
// `sscanf(" %d %3s %d %d:%d:%d %3s")` after the comma accepted before.
std::optional<Clock::WallTime> ParseHttpDate(std::string_view value) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::string_view text = TrimView(value);
  std::size_t pos = text.find(',');
  if (pos == std::string_view::npos) return std::nullopt;
  ++pos;
  auto skip_spaces = [&] {
    while (pos < text.size() && IsAsciiSpace(text[pos])) ++pos;
  };
  // A run of 1 to 4 digits (no field of the date needs more).
  auto number = [&](int& out) {
    const std::size_t begin = pos;
    out = 0;
    while (pos < text.size() && pos - begin < 4 && text[pos] >= '0' && text[pos] <= '9') {
      out = out * 10 + (text[pos] - '0');
      ++pos;
    }
    return pos > begin;
  };
  auto literal = [&](char c) {
    if (pos >= text.size() || text[pos] != c) return false;
    ++pos;
    return true;
  };
  auto word = [&](std::string_view& out) {
    const std::size_t begin = pos;
    while (pos < text.size() && pos - begin < 3 && !IsAsciiSpace(text[pos])) ++pos;
    out = text.substr(begin, pos - begin);
    return !out.empty();
  };
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  std::string_view month, zone;
  skip_spaces();
  if (!number(day)) return std::nullopt;
  skip_spaces();
  if (!word(month)) return std::nullopt;
  skip_spaces();
  if (!number(year)) return std::nullopt;
  skip_spaces();
  if (!number(hour) || !literal(':') || !number(minute) || !literal(':') || !number(second)) {
    return std::nullopt;
  }
  skip_spaces();
  if (!word(zone) || (zone != "GMT" && zone != "UTC")) return std::nullopt;
  int mon = -1;
  for (int i = 0; i < 12; ++i) {
    if (month == kMonths[i]) mon = i;
  }
  if (mon < 0 || day < 1 || day > 31 || year < 1970 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  // Out-of-range days (31 Feb) roll over into the next month, as timegm did.
  const std::chrono::sys_days date =
      std::chrono::sys_days(std::chrono::year(year) / std::chrono::month(mon + 1) / 1) +
      std::chrono::days(day - 1);
  return Clock::WallTime(date + std::chrono::hours(hour) + std::chrono::minutes(minute) +
                         std::chrono::seconds(second));
}

const char* StatusCodeName(int status) {
  switch (status) {
    case 301:
      return "PermanentRedirect";
    case 304:
      return "NotModified";
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 412:
      return "PreconditionFailed";
    case 413:
      return "RequestEntityTooLarge";
    case 416:
      return "InvalidRange";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 502:
      return "BadGateway";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "GatewayTimeout";
    default:
      return "";
  }
}

// "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException:http://..." ->
// "ConditionalCheckFailedException".
std::string CleanErrorType(std::string_view type) {
  auto hash = type.rfind('#');
  if (hash != std::string_view::npos) type = type.substr(hash + 1);
  auto colon = type.find(':');
  if (colon != std::string_view::npos) type = type.substr(0, colon);
  return std::string(TrimView(type));
}

// A printable excerpt of a body that is not an AWS error document (e.g. a proxy's HTML page).
std::string Excerpt(std::string_view body) {
  constexpr std::size_t kMax = 200;
  std::string out;
  for (char c : body.substr(0, kMax)) {
    out += std::isprint(static_cast<unsigned char>(c)) ? c : ' ';
  }
  if (body.size() > kMax) out += "...";
  return std::string(TrimView(out));
}

bool Is2xx(int status) { return status >= 200 && status < 300; }

}  // namespace

std::string RequestIdOf(const HttpResponse& response) {
  if (auto id = response.Header("x-amzn-requestid")) return *id;
  return response.Header("x-amz-request-id").value_or("");
}

Error InvalidRequestError(const ServiceInfo& service, std::string_view operation,
                          std::string message) {
  Error e = Error::InvalidInput(std::move(message));
  e.service = std::string(service.name);
  e.operation = std::string(operation);
  return e;
}

Error MalformedResponseError(const ServiceInfo& service, std::string_view operation,
                             std::string message) {
  Error e;
  e.category = ErrorCategory::kTransient;
  e.service = std::string(service.name);
  e.operation = std::string(operation);
  e.code = "MalformedResponse";
  e.message = std::move(message);
  return e;
}

Error MalformedResponseError(const ServiceInfo& service, std::string_view operation,
                             std::string message, const HttpResponse& response) {
  Error e = MalformedResponseError(service, operation, std::move(message));
  e.http_status = response.status;
  e.request_id = RequestIdOf(response);
  return e;
}

Error ParseAwsError(const ServiceInfo& service, const std::string& operation,
                    const HttpResponse& response) {
  Error e;
  e.service = std::string(service.name);
  e.operation = operation;
  e.http_status = response.status;
  e.request_id = RequestIdOf(response);

  std::string_view body = TrimView(response.body);
  if (body.size() <= 64 * 1024) e.response_body = std::string(body);
  bool parsed = false;
  if (!body.empty() && body.front() == '{') {
    nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object()) {
      parsed = true;
      for (const char* key : {"__type", "code", "Code"}) {
        auto it = doc.find(key);
        if (it != doc.end() && it->is_string()) {
          e.code = CleanErrorType(it->get<std::string>());
          break;
        }
      }
      for (const char* key : {"message", "Message", "errorMessage"}) {
        auto it = doc.find(key);
        if (it != doc.end() && it->is_string()) {
          e.message = it->get<std::string>();
          break;
        }
      }
    }
  } else if (!body.empty() && body.front() == '<') {
    Result<XmlElement> doc = ParseXml(body);
    if (doc.ok()) {
      parsed = true;
      // S3: <Error> is the root; Query: ErrorResponse/Error; EC2: Response/Errors/Error.
      if (const XmlElement* error = doc->Find("Error")) {
        e.code = std::string(TrimView(error->ChildText("Code")));
        e.message = error->ChildText("Message");
      }
      if (e.request_id.empty()) {
        const XmlElement* id = doc->Find("RequestId");
        if (id == nullptr) id = doc->Find("RequestID");
        if (id != nullptr) e.request_id = std::string(TrimView(id->text));
      }
    }
  }
  if (e.code.empty()) {
    if (auto type = response.Header("x-amzn-errortype")) e.code = CleanErrorType(*type);
  }
  if (e.code.empty()) e.code = StatusCodeName(response.status);
  if (e.message.empty()) {
    e.message =
        !parsed && !body.empty() ? Excerpt(body) : "HTTP " + std::to_string(response.status);
  }
  e.category = ClassifyAwsError(response.status, e.code, e.message);
  return e;
}

Result<std::shared_ptr<AwsClient>> AwsClient::Create(std::shared_ptr<AwsContext> context,
                                                     const ServiceInfo& service) {
  Result<Endpoint> endpoint =
      ResolveEndpoint(service, context->region(), context->env(), context->profiles());
  if (!endpoint.ok()) {
    Error e = endpoint.error();
    if (e.service.empty()) e.service = std::string(service.name);
    return e;
  }
  return std::make_shared<AwsClient>(std::move(context), service, std::move(endpoint).value());
}

AwsClient::AwsClient(std::shared_ptr<AwsContext> context, const ServiceInfo& service,
                     Endpoint endpoint)
    : context_(std::move(context)), service_(service), endpoint_(std::move(endpoint)) {}

AwsClient::Call::Call(AwsClient& client, const AwsRequest& request)
    : client_(client), request_(request), deadline_(ScopedDeadline::Current()) {
  // The URL: endpoint origin + endpoint base path + the request path, each path segment
  // percent-encoded ('/' kept, so an S3 key's slashes stay slashes).
  Url url = client_.endpoint_.url;
  if (!request.host_override.empty()) url.host = request.host_override;
  std::string base = url.path;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string path =
      request.path.empty() || request.path.front() != '/' ? "/" + request.path : request.path;
  wire_path_ = base + UriEncode(path, /*keep_slash=*/true);
  query_ = BuildQuery(request.query);
  full_url_ = url.Origin() + wire_path_ + (query_.empty() ? "" : "?" + query_);
  authority_ = url.Authority();

  // The payload hash does not change between attempts: computed once.
  if (request.body_file) {
    if (url.scheme == "https") {
      payload_hash_ = std::string(kUnsignedPayload);
    } else {
      // Without TLS nothing else protects the body, so it is signed.
      Result<std::string> hash = Sha256HexOfFile(*request.body_file);
      if (hash.ok()) {
        payload_hash_ = std::move(hash).value();
      } else {
        setup_error_ = Named(hash.error());
      }
    }
  } else {
    payload_hash_ = Sha256Hex(request.body);
  }
}

Error AwsClient::Call::Named(Error error) const {
  if (error.service.empty()) error.service = std::string(client_.service_.name);
  if (error.operation.empty()) error.operation = request_.operation;
  return error;
}

Result<HttpRequest> AwsClient::Call::Attempt() {
  if (setup_error_) return *setup_error_;
  ++attempt_;
  const AwsRequest& request = request_;
  HttpRequest http;
  http.method = request.method;
  http.url = full_url_;
  http.body = request.body;
  http.body_file = request.body_file;
  http.response_file = request.response_file;
  http.timeout = request.timeout;
  if (deadline_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        *deadline_ - client_.context_->clock().Monotonic());
    if (left <= std::chrono::milliseconds(0)) {
      return Named(DeadlineExceeded(std::string(client_.service_.name), request.operation));
    }
    if (http.timeout.count() == 0 || http.timeout > left) http.timeout = left;
    http.connect_timeout = std::min(http.connect_timeout, left);
  }
  http.stop = request.stop;
  http.headers.reserve(request.headers.size() + 4);
  http.headers.emplace_back("host", authority_);
  for (const auto& header : request.headers) {
    if (EqualsIgnoreCase(header.first, "host")) continue;  // host is the endpoint's
    http.headers.push_back(header);
  }

  if (!request.anonymous) {
    Result<Credentials> credentials = client_.context_->credentials().GetCredentials();
    if (!credentials.ok()) return Named(credentials.error());
    SigningRequest to_sign;
    to_sign.method = request.method;
    to_sign.path = wire_path_;
    to_sign.query = query_;
    to_sign.headers = http.headers;
    to_sign.payload_hash = payload_hash_;
    SigningParams params;
    params.region = client_.context_->region();
    params.service = std::string(client_.service_.signing_name);
    params.time = client_.context_->SigningTime();  // every attempt: the offset may change
    const bool s3 = client_.service_.protocol == Protocol::kRestXml;
    params.path_mode = s3 ? PathMode::kS3 : PathMode::kNormalizePath;
    params.add_content_sha256_header = s3;
    SignedRequest signed_request = SignRequest(to_sign, *credentials, params);
    for (auto& header : signed_request.added_headers) http.headers.push_back(std::move(header));
  }
  return http;
}

AwsClient::Call::Verdict AwsClient::Call::Judge(Result<HttpResponse> outcome) {
  AwsContext& context = *client_.context_;
  const std::string_view service_name = client_.service_.name;
  const std::string& operation = request_.operation;
  RetryPolicy& retry = context.retry();
  Error error;
  bool clock_corrected = false;
  if (outcome.ok()) {
    const HttpResponse& response = *outcome;
    // Cached responses (Age) say nothing about the server's clock now.
    if (!response.Header("age")) {
      if (auto date = response.Header("date")) {
        if (auto server_time = ParseHttpDate(*date)) {
          clock_corrected = context.ObserveServerTime(*server_time);
        }
      }
    }
    if (Is2xx(response.status)) {
      retry.OnSuccess(last_retry_cost_);
      if (attempt_ > 1) {
        Logger().debug("{} {} succeeded on attempt {}", service_name, operation, attempt_);
      }
      return Verdict{std::move(outcome), {}};
    }
    error = ParseAwsError(client_.service_, operation, response);
  } else {
    error = Named(outcome.error());
  }

  if (clock_corrected) {
    Logger().warn(
        "{} {}: local clock differs from the server's by 5 minutes or more; "
        "signing with a corrected offset of {} ms (fix NTP on this host)",
        service_name, operation, context.clock_offset().count());
  }
  if (!error.IsRetryable()) return Verdict{std::move(error), {}};
  if (attempt_ >= retry.options().max_attempts) {
    if (attempt_ > 1) {
      Logger().warn("{} {} failed after {} attempts: {} (request id {})", service_name,
                    operation, attempt_, error.code, error.request_id);
    }
    return Verdict{std::move(error), {}};
  }
  if (error.category == ErrorCategory::kClockSkew) {
    // The Date header of this very response has corrected the offset (if it could); one
    // immediate re-signed retry is all that can help. A second skew error is final.
    if (skew_retry_done_) return Verdict{std::move(error), {}};
    skew_retry_done_ = true;
    Logger().warn(
        "{} {} attempt {} rejected for clock skew ({}), retrying with offset {} ms "
        "(request id {})",
        service_name, operation, attempt_, error.code, context.clock_offset().count(),
        error.request_id);
    return Verdict{std::nullopt, std::chrono::milliseconds(0), /*at_once=*/true};
  }
  std::optional<int> cost = retry.AcquireRetry(error);
  if (!cost) {
    Logger().warn(
        "{} {} attempt {} failed with {}; retry quota exhausted, giving up "
        "(request id {})",
        service_name, operation, attempt_, error.code, error.request_id);
    return Verdict{std::move(error), {}};
  }
  last_retry_cost_ = *cost;
  std::chrono::milliseconds delay = retry.Backoff(attempt_);
  Logger().debug("{} {} attempt {} failed with {} (HTTP {}, request id {}); retrying in {} ms",
                 service_name, operation, attempt_, error.code, error.http_status,
                 error.request_id, delay.count());
  if (deadline_ && context.clock().Monotonic() + delay >= *deadline_) {
    Logger().debug("{} {}: no time left for another attempt before the deadline", service_name,
                   operation);
    return Verdict{std::move(error), {}};
  }
  return Verdict{std::nullopt, delay};
}

Result<HttpResponse> AwsClient::Send(const AwsRequest& request) {
  Call call(*this, request);
  while (true) {
    Result<HttpRequest> http = call.Attempt();
    if (!http.ok()) return http.error();
    Call::Verdict verdict = call.Judge(context_->transport().Send(*http));
    if (verdict.result) return std::move(*verdict.result);
    if (verdict.at_once) continue;
    // Even a zero delay (full jitter can draw 0) goes through SleepFor, so a stop requested
    // meanwhile ends the retries the same way every time.
    if (!context_->clock().SleepFor(verdict.retry_after, request.stop)) {
      return call.Named(Error::Cancelled(request.operation));
    }
  }
}

}  // namespace spotgrid
