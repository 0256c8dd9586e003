// Anonymous identity-service calls through the client core (see identity_call.h).
#include "spotgrid/aws/credentials/identity_call.h"

#include <utility>

namespace spotgrid {

namespace {

// The credentials of a context whose every request is anonymous: asking is a bug.
class NoCredentials final : public CredentialsProvider {
 public:
  Result<Credentials> GetCredentials() override {
    return Error::InvalidInput("an identity-service call asked for credentials it must not use");
  }
};

}  // namespace

Result<HttpResponse> SendAnonymous(const IdentityCallContext& context, const ServiceInfo& service,
                                   const std::string& region, AwsRequest request) {
  auto aws = std::make_shared<AwsContext>(
      region, context.transport, std::make_shared<NoCredentials>(), &context.clock,
      std::make_unique<RetryPolicy>(RetryOptions::FromEnvironment(context.env)), &context.env,
      context.profiles, /*imds=*/nullptr);
  auto client = AwsClient::Create(std::move(aws), service);
  if (!client.ok()) return client.error();
  request.anonymous = true;
  return (*client)->Send(request);
}

}  // namespace spotgrid
