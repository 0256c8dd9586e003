// Digests and their encodings: SHA-256 (SigV4 payload hashes, grid fingerprints), HMAC-SHA256
// (SigV4 keys), MD5 (S3's Content-MD5 and single-part ETags), hex and base64. One home for
// all of them, on OpenSSL's EVP interface with the algorithms fetched once per process.
//
// Thread-safety: pure functions, safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "spotgrid/core/status.h"

namespace spotgrid {

// Lower-case hex of `bytes`.
std::string HexEncode(std::string_view bytes);
// Standard base64 with padding.
std::string Base64Encode(std::string_view bytes);

std::string Sha256(std::string_view data);  // raw 32 bytes
std::string Sha256Hex(std::string_view data);
// Streams `length` bytes of `path` from `offset` through SHA-256 without loading them; an
// error if the file can't be read or ends before the range does.
Result<std::string> Sha256HexOfFile(const std::string& path, std::uint64_t offset,
                                    std::uint64_t length);
std::string HmacSha256(std::string_view key, std::string_view data);  // raw bytes

std::string Md5(std::string_view data);  // raw 16 bytes
// Hex MD5 of a whole file.
Result<std::string> Md5HexOfFile(const std::string& path);

}  // namespace spotgrid
