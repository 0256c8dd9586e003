// AwsContext: the state every client of one process shares (see aws_client.h).
#include <chrono>
#include <fstream>
#include <utility>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/imds_client.h"
#include "spotgrid/http/curl_transport.h"

namespace spotgrid {

namespace {

// The SDKs correct the clock only when it is at least this far off; smaller differences are
// network latency and within what every service tolerates.
constexpr std::chrono::milliseconds kSkewThreshold = std::chrono::minutes(5);

// The process's transport, configured as the AWS CLI configures its HTTP session: the CA
// bundle from AWS_CA_BUNDLE, else the profile's ca_bundle (botocore's order; an empty value
// counts as unset, never as "do not verify"), and the proxy variables. A bundle that cannot be
// read fails here, naming where it came from, rather than as a TLS error on the first call.
Result<std::shared_ptr<HttpTransport>> MakeDefaultTransport(const Environment& env,
                                                            const ProfileFiles& profiles) {
  CurlTransportOptions options;
  std::string source;
  if (std::string bundle = env.GetOr("AWS_CA_BUNDLE", ""); !bundle.empty()) {
    options.ca_bundle = std::move(bundle);
    source = "AWS_CA_BUNDLE";
  } else if (std::optional<std::string> configured = profiles.Get("ca_bundle");
             configured && !configured->empty()) {
    options.ca_bundle = std::move(*configured);
    source = "ca_bundle in profile '" + profiles.profile_name + "'";
  }
  if (!options.ca_bundle.empty() && !std::ifstream(options.ca_bundle).is_open()) {
    return Error::InvalidInput("cannot read the CA bundle " + options.ca_bundle + " (" + source +
                               ")");
  }
  options.proxies = ProxyEnvironment::Read(env);
  return MakeCurlTransport(std::move(options));
}

}  // namespace

Result<std::shared_ptr<AwsContext>> AwsContext::Create(AwsContextOptions options) {
  const Environment& env = options.env != nullptr ? *options.env : Environment::Process();
  Clock& clock = options.clock != nullptr ? *options.clock : Clock::System();
  auto profiles = ProfileFiles::Load(env);
  if (!profiles.ok()) return profiles.error();

  std::shared_ptr<HttpTransport> transport = options.transport;
  if (transport == nullptr) {
    auto made = MakeDefaultTransport(env, *profiles);
    if (!made.ok()) return made.error();
    transport = std::move(*made);
  }

  auto imds = ImdsClient::Create(env, transport, clock);
  if (!imds.ok()) return imds.error();

  std::string region = options.region;
  if (region.empty()) {
    if (auto configured = ResolveRegionWithoutImds(env, *profiles)) region = *configured;
  }
  if (region.empty()) {
    std::string message =
        "no AWS region configured: set AWS_REGION (for example AWS_REGION=us-east-1), or "
        "`region` in profile '" +
        profiles->profile_name + "' of ~/.aws/config";
    if ((*imds)->disabled()) {
      return Error::InvalidInput(message + " (IMDS is disabled, so it can't be asked)");
    }
    auto from_imds = (*imds)->Region();
    if (!from_imds.ok()) {
      return Error::InvalidInput(message +
                                 "; asking IMDS failed too: " + from_imds.error().ToString());
    }
    region = *from_imds;
  }

  std::shared_ptr<CredentialsProvider> credentials =
      options.credentials != nullptr ? options.credentials
                                     : MakeDefaultCredentialsChain(env, transport, *imds, clock);

  RetryOptions retry_options = options.retry ? *options.retry : RetryOptions::FromEnvironment(env);
  auto retry = std::make_unique<RetryPolicy>(retry_options, std::move(options.random01));

  return std::make_shared<AwsContext>(std::move(region), std::move(transport),
                                      std::move(credentials), &clock, std::move(retry), &env,
                                      std::move(*profiles), std::move(*imds));
}

AwsContext::AwsContext(std::string region, std::shared_ptr<HttpTransport> transport,
                       std::shared_ptr<CredentialsProvider> credentials, Clock* clock,
                       std::unique_ptr<RetryPolicy> retry, const Environment* env,
                       ProfileFiles profiles, std::shared_ptr<ImdsClient> imds)
    : region_(std::move(region)),
      transport_(std::move(transport)),
      credentials_(std::move(credentials)),
      clock_(clock != nullptr ? clock : &Clock::System()),
      retry_(std::move(retry)),
      env_(env != nullptr ? env : &Environment::Process()),
      profiles_(std::move(profiles)),
      imds_(std::move(imds)) {}

Clock::WallTime AwsContext::SigningTime() const {
  return clock_->Now() + std::chrono::milliseconds(offset_ms_.load());
}

bool AwsContext::ObserveServerTime(Clock::WallTime server_time) {
  const auto now = clock_->Now();
  const auto corrected = now + std::chrono::milliseconds(offset_ms_.load());
  const auto diff = std::chrono::duration_cast<std::chrono::milliseconds>(server_time - corrected);
  if (std::chrono::abs(diff) < kSkewThreshold) return false;
  const auto offset = std::chrono::duration_cast<std::chrono::milliseconds>(server_time - now);
  offset_ms_.store(offset.count());
  return true;
}

}  // namespace spotgrid
