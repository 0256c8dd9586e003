// Parsing shared by the credential providers that receive JSON credentials (container
// endpoint, IMDS role). Private to spotgrid_common.
#pragma once

#include <optional>
#include <string_view>

#include "spotgrid/aws/credentials.h"
#include "spotgrid/core/clock.h"
#include "spotgrid/core/iso8601.h"
#include "spotgrid/core/status.h"

namespace spotgrid {

// {"AccessKeyId","SecretAccessKey","Token","Expiration"[,"Code","Message"]}. With check_code
// (IMDS), a Code other than "Success" is an error. Errors name `service` and
// `operation` and never quote the body (it holds secrets).
Result<Credentials> ParseCredentialsJson(std::string_view body, bool check_code,
                                         const std::string& service, const std::string& operation);

}  // namespace spotgrid
