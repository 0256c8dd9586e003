#include "spotgrid/core/digest.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

namespace spotgrid {

namespace {

// Fetched once: in OpenSSL 3 every implicit fetch by name costs a lock and a lookup.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md != nullptr ? md : EVP_sha256();
}

const EVP_MD* Md5Md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "MD5", nullptr);
  return md != nullptr ? md : EVP_md5();
}

std::string OneShot(const EVP_MD* md, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, md, nullptr);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

struct CtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Hashes `length` bytes of `path` from `offset` (to the end of the file when `length` is
// nullopt) and returns the hex digest.
Result<std::string> HashFile(const EVP_MD* md, const std::string& path, std::uint64_t offset,
                             std::optional<std::uint64_t> length) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::Io("hash file", "cannot open " + path + ": " + std::strerror(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) {
    return Error::Io("hash file", "cannot initialise the digest");
  }
  std::vector<char> buffer(1 << 16);
  std::uint64_t position = offset;
  std::uint64_t remaining = length.value_or(UINT64_MAX);
  while (remaining > 0) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(remaining, buffer.size()));
    const ssize_t got = ::pread(fd, buffer.data(), want, static_cast<off_t>(position));
    if (got < 0) {
      if (errno == EINTR) continue;
      return Error::Io("hash file", "cannot read " + path + ": " + std::strerror(errno));
    }
    if (got == 0) {
      if (!length) break;
      return Error::Io("hash file", path + " ended " + std::to_string(remaining) +
                                        " bytes before the end of the requested range");
    }
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(got));
    position += static_cast<std::uint64_t>(got);
    remaining -= static_cast<std::uint64_t>(got);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &digest_length);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), digest_length));
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kHex[b >> 4];
    out[2 * i + 1] = kHex[b & 0x0F];
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string Sha256(std::string_view data) { return OneShot(Sha256Md(), data); }

std::string Sha256Hex(std::string_view data) { return HexEncode(Sha256(data)); }

Result<std::string> Sha256HexOfFile(const std::string& path, std::uint64_t offset,
                                    std::uint64_t length) {
  return HashFile(Sha256Md(), path, offset, length);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  // One HMAC context per thread with its digest set once: HMAC() would fetch the MAC and the
  // digest by name on every call, which costs more than hashing a canonical request.
  struct MacCtxFree {
    void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
  };
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  thread_local std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx = [] {
    std::unique_ptr<EVP_MAC_CTX, MacCtxFree> c(mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr);
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                                 OSSL_PARAM_construct_end()};
    if (c && EVP_MAC_CTX_set_params(c.get(), params) != 1) c.reset();
    return c;
  }();
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t length = 0;
  // An empty key must still be a valid (non-null) pointer for EVP_MAC_init to set it.
  static const unsigned char kNoKey = 0;
  const auto* key_bytes =
      key.empty() ? &kNoKey : reinterpret_cast<const unsigned char*>(key.data());
  if (!ctx || EVP_MAC_init(ctx.get(), key_bytes, key.size(), nullptr) != 1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) !=
          1 ||
      EVP_MAC_final(ctx.get(), out, &length, sizeof(out)) != 1) {
    // Only a broken OpenSSL installation gets here; fall back to the one-shot API.
    unsigned int fallback_length = 0;
    HMAC(Sha256Md(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &fallback_length);
    length = fallback_length;
  }
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string Md5(std::string_view data) { return OneShot(Md5Md(), data); }

Result<std::string> Md5HexOfFile(const std::string& path) {
  return HashFile(Md5Md(), path, 0, std::nullopt);
}

}  // namespace spotgrid
