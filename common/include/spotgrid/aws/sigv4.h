// AWS Signature Version 4, as a pure function of (request, credentials, region, service, time).
//
// Nothing here does I/O or reads a clock: the caller passes the signing time. The canonical
// request and string-to-sign are returned alongside the signature so that tests can compare
// every intermediate step with the golden files of the SigV4 test suite.
//
// Two canonicalisation modes exist because S3 differs from every other service:
//  - kNormalizePath (SQS, DynamoDB, EC2, ...): remove "." and ".." segments, merge "//",
//    then URI-encode each segment of the already-encoded path again ("double encoding").
//  - kS3: the path is used exactly as sent (already encoded once), no normalisation.
//
// Thread-safety: every function is safe to call concurrently (the signing-key cache is
// thread-local).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "spotgrid/aws/credentials.h"
#include "spotgrid/core/digest.h"
#include "spotgrid/http/http.h"

namespace spotgrid {

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

enum class PathMode {
  kNormalizePath,  // every service but S3: normalise, then encode the wire path again
  kS3,             // S3: the wire path as is
  // Encode the path again without normalising it. No AWS service wants this; it exists for
  // the `normalize: false` cases of the generic SigV4 test suite.
  kEncodeOnly,
};

struct SigningRequest {
  std::string method;
  std::string path;   // as on the wire: percent-encoded once, without query ("/a%20b")
  std::string query;  // raw query as on the wire, without '?' ("a=1&b=%2F")
  // Every header to sign, including host (exactly as the transport will send it). Headers a
  // transport or proxy may rewrite (authorization, expect, user-agent, x-amzn-trace-id,
  // connection, transfer-encoding, accept-encoding) are never signed. Copies of the headers
  // the signer adds (x-amz-date, ...) are replaced, so re-signing a retried request is safe.
  Headers headers;
  std::string payload_hash;  // hex sha256 of the body, or kUnsignedPayload; empty = empty body
};

struct SigningParams {
  std::string region;
  std::string service;  // signing name: "sqs", "dynamodb", "s3", "ec2", "autoscaling"
  Clock::WallTime time;
  PathMode path_mode = PathMode::kNormalizePath;
  // S3 needs the x-amz-content-sha256 header; other services don't (but accept it).
  bool add_content_sha256_header = false;
};

struct SignedRequest {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      // lowercase hex
  std::string authorization;  // the Authorization header value (header form only)
  // Headers to add to the outgoing request: x-amz-date, x-amz-security-token (if any),
  // x-amz-content-sha256 (if asked) and Authorization (header form).
  Headers added_headers;
  std::string signed_query;  // query form only: the full query string including X-Amz-Signature
};

// Header form: the result's added_headers go onto the request.
SignedRequest SignRequest(const SigningRequest& request, const Credentials& credentials,
                          const SigningParams& params);

// Query (presigned URL) form with the given lifetime; payload hash as in `request` (S3:
// kUnsignedPayload). No header is added; add_content_sha256_header is ignored.
SignedRequest PresignRequest(const SigningRequest& request, const Credentials& credentials,
                             const SigningParams& params, std::chrono::seconds expires);

// The payload hash of a request body sent from a file range (see core/digest.h).
inline Result<std::string> Sha256HexOfFile(const FileRange& range) {
  return Sha256HexOfFile(range.path, range.offset, range.length);
}
// "YYYYMMDDTHHMMSSZ"
std::string FormatAmzDate(Clock::WallTime time);

}  // namespace spotgrid
