// Where requests go and for which region: shared config files, region and endpoint resolution.
//
// Region: AWS_REGION, then AWS_DEFAULT_REGION, then the profile's `region`, then (on EC2)
// the IMDS placement/region, which the caller supplies because it needs an ImdsClient.
//
// Endpoint, per service (the SDKs' "service-specific endpoints" order):
//   AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, `endpoint_url` in the profile's
//   [services ...] section, `endpoint_url` in the profile, else https://<prefix>.<region>.
//   amazonaws.com. AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true skips the configured ones.
// A configured endpoint changes only the URL; signing keeps the real service name and region.
// S3 uses path-style addressing whenever the endpoint is configured (emulators, MinIO).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "spotgrid/aws/service.h"
#include "spotgrid/aws/uri.h"
#include "spotgrid/core/environment.h"
#include "spotgrid/core/status.h"

namespace spotgrid {

// One section of an INI-style AWS file: key -> value (keys lower-cased).
using ProfileSection = std::map<std::string, std::string>;

// ~/.aws/credentials and ~/.aws/config, parsed once.
struct ProfileFiles {
  std::string profile_name = "default";  // AWS_PROFILE (or AWS_DEFAULT_PROFILE), else default
  // True when AWS_PROFILE or AWS_DEFAULT_PROFILE named the profile: such a profile must exist
  // in one of the files (botocore's ProfileNotFound), while an absent "default" is normal.
  bool profile_explicit = false;
  // Sections by name: credentials file "[name]" -> "name"; config file "[profile name]" and
  // "[default]" -> "name"; "[services name]" -> "services name". Credentials-file values win
  // over config-file values for the same profile.
  std::map<std::string, ProfileSection> credentials;
  std::map<std::string, ProfileSection> config;
  // Sub-sections of [services name]: "services name" -> service key -> (key -> value).
  std::map<std::string, std::map<std::string, ProfileSection>> services;
  // "[sso-session NAME]" sections of the config file: NAME -> keys (sso_start_url, sso_region,
  // sso_registration_scopes). Profiles refer to them with `sso_session = NAME`.
  std::map<std::string, ProfileSection> sso_sessions;

  // Value of `key` for the selected profile: credentials file first, then config file.
  std::optional<std::string> Get(const std::string& key) const;
  // The same for any profile (a source_profile of a role chain).
  std::optional<std::string> GetFor(const std::string& profile, const std::string& key) const;
  // Whether `profile` has a section in either file.
  bool HasProfile(const std::string& profile) const;

  // Loads the files named by the environment (missing files are not an error; a file that
  // exists but can't be parsed is, with file and line).
  static Result<ProfileFiles> Load(const Environment& env);
  // Parses INI text; `source` names the file in errors.
  static Status ParseInto(std::string_view text, std::string_view source, bool is_config,
                          ProfileFiles& out);
};

// Region from env and profile; nullopt if neither says.
std::optional<std::string> ResolveRegionWithoutImds(const Environment& env,
                                                    const ProfileFiles& profiles);

struct Endpoint {
  Url url;                  // scheme, host, port, base path (usually empty)
  bool configured = false;  // came from env/config rather than the default pattern
  bool s3_path_style = false;
};

Result<Endpoint> ResolveEndpoint(const ServiceInfo& service, const std::string& region,
                                 const Environment& env, const ProfileFiles& profiles);

}  // namespace spotgrid
