// Calls to the identity services that obtain credentials (STS AssumeRoleWithWebIdentity, SSO
// GetRoleCredentials, SSO OIDC CreateToken). They carry their own proof (a web identity token,
// an SSO bearer token, a refresh token) and go through AwsClient as anonymous requests, so
// they get what every AWS call gets: the endpoint from ResolveEndpoint, the standard retries
// with backoff and jitter, and errors naming service, operation, HTTP status, AWS code and
// request id.
//
// Secrets: requests carry tokens, so neither the request nor a 2xx body ever reaches an Error;
// only the services' error documents do.
#pragma once

#include <memory>
#include <string>

#include "spotgrid/aws/aws_client.h"
#include "spotgrid/aws/aws_config.h"
#include "spotgrid/aws/service.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"
#include "spotgrid/http/http.h"

namespace spotgrid {

// Where and how the providers reach an identity service.
struct IdentityCallContext {
  std::shared_ptr<HttpTransport> transport;
  Clock& clock;
  const Environment& env;
  const ProfileFiles& profiles;
};

// Sends `request` (operation, method, path, query, headers and body set; `anonymous` is set
// here) to `service` in `region` through AwsClient. A non-2xx answer becomes ParseAwsError's
// Error after the retry policy (RetryOptions::FromEnvironment) has had its attempts.
Result<HttpResponse> SendAnonymous(const IdentityCallContext& context, const ServiceInfo& service,
                                   const std::string& region, AwsRequest request);

}  // namespace spotgrid
