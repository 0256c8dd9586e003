#include "spotgrid/aws/sigv4.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/strings.h"
#include "spotgrid/aws/uri.h"

namespace spotgrid {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

// Headers an HTTP stack or a proxy may add, drop or rewrite after we sign (libcurl sets Expect and
// Accept-Encoding itself, proxies add trace ids), plus Authorization itself. Signing one of them
// would make the signature depend on the transport. botocore skips the same first three.
constexpr std::array<std::string_view, 7> kUnsignedHeaders = {
    "authorization",     "expect",         "user-agent", "x-amzn-trace-id", "connection",
    "transfer-encoding", "accept-encoding"};

// Trims and squeezes every whitespace run (folded line breaks included) to one space.
std::string TrimAll(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (IsAsciiSpace(c)) {
      pending_space = !out.empty();
    } else {
      if (pending_space) out.push_back(' ');
      pending_space = false;
      out.push_back(c);
    }
  }
  return out;
}

bool IsUnsignedHeader(std::string_view lower_name) {
  return std::find(kUnsignedHeaders.begin(), kUnsignedHeaders.end(), lower_name) !=
         kUnsignedHeaders.end();
}

struct CanonicalHeaders {
  std::string block;         // "name:value\n" lines
  std::string signed_names;  // "a;b;c"
};

CanonicalHeaders Canonicalize(const Headers& headers) {
  std::vector<std::pair<std::string, std::string>> lines;
  lines.reserve(headers.size());
  for (const auto& [name, value] : headers) {
    std::string lower = Lower(TrimAll(name));
    if (lower.empty() || IsUnsignedHeader(lower)) continue;
    lines.emplace_back(std::move(lower), TrimAll(value));
  }
  // Stable: repeated headers keep the order they were sent in when joined below.
  std::stable_sort(lines.begin(), lines.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  CanonicalHeaders out;
  for (std::size_t i = 0; i < lines.size();) {
    const std::string& name = lines[i].first;
    out.block += name;
    out.block.push_back(':');
    out.block += lines[i].second;
    std::size_t j = i + 1;
    for (; j < lines.size() && lines[j].first == name; ++j) {
      out.block.push_back(',');
      out.block += lines[j].second;
    }
    out.block.push_back('\n');
    if (!out.signed_names.empty()) out.signed_names.push_back(';');
    out.signed_names += name;
    i = j;
  }
  return out;
}

// Removes "." and ".." segments and empty segments ("//"); keeps a trailing slash.
std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> segments;
  bool trailing_slash = false;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    const std::size_t slash = path.find('/', pos);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    const std::string_view segment = path.substr(pos, end - pos);
    const bool last = slash == std::string_view::npos;
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    if (last) {
      trailing_slash = segment.empty() || segment == "." || segment == "..";
      break;
    }
    pos = slash + 1;
  }
  std::string out = "/";
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out.push_back('/');
    out += segments[i];
  }
  if (trailing_slash && !segments.empty()) out.push_back('/');
  return out;
}

std::string CanonicalUri(std::string_view path, PathMode mode) {
  if (path.empty()) return "/";
  switch (mode) {
    case PathMode::kS3:
      return std::string(path);
    case PathMode::kEncodeOnly:
      return UriEncode(path, /*keep_slash=*/true);
    case PathMode::kNormalizePath:
      break;
  }
  return UriEncode(NormalizePath(path), /*keep_slash=*/true);
}

std::string CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  std::size_t pos = 0;
  while (pos <= query.size()) {
    std::size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    const std::string_view piece = query.substr(pos, amp - pos);
    if (!piece.empty()) {
      const std::size_t eq = piece.find('=');
      const std::string_view name = piece.substr(0, eq);
      const std::string_view value =
          eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
      params.emplace_back(UriEncode(UriDecode(name)), UriEncode(UriDecode(value)));
    }
    pos = amp + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

// The derived key depends only on (secret, day, region, service), so caching it saves four HMACs
// on nearly every request. One process-wide entry per (region, service), replaced when the day or
// the secret changes: a rotated secret stays in memory only until that scope signs again, and
// the table stays as small as the set of services this process talks to. A thread-local cache
// would miss once per thread and service, and a single entry thrashes when requests alternate
// between services (an enqueue interleaves SQS and DynamoDB).
std::string SigningKey(const std::string& secret, std::string_view day, const std::string& region,
                       const std::string& service) {
  struct Entry {
    std::string region, service, secret, day, key;
  };
  struct Cache {
    std::mutex mutex;
    std::vector<Entry> entries;  // a handful: a linear scan beats hashing
  };
  // Never destroyed: a detached thread may still sign while static destructors run.
  static Cache* const shared = new Cache;
  std::mutex& mutex = shared->mutex;
  std::vector<Entry>& cache = shared->entries;
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (const Entry& e : cache) {
      if (e.region == region && e.service == service) {
        if (e.day == day && e.secret == secret) return e.key;
        break;
      }
    }
  }
  // Derived outside the lock: concurrent misses for one scope compute the same key.
  std::string key = HmacSha256("AWS4" + secret, day);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  key = HmacSha256(key, "aws4_request");
  std::lock_guard<std::mutex> lock(mutex);
  auto it = std::find_if(cache.begin(), cache.end(), [&](const Entry& e) {
    return e.region == region && e.service == service;
  });
  if (it == cache.end()) {
    cache.push_back(Entry{region, service, secret, std::string(day), key});
  } else {
    it->secret = secret;
    it->day = std::string(day);
    it->key = key;
  }
  return key;
}

bool HasHeader(const Headers& headers, std::string_view name) {
  return FindHeader(headers, name).has_value();
}

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;
};

Signature Compute(const std::string& method, std::string_view path, std::string_view query,
                  const CanonicalHeaders& headers, std::string_view payload_hash,
                  std::string_view amz_date, std::string_view scope, const Credentials& credentials,
                  const SigningParams& params) {
  Signature out;
  std::string& cr = out.canonical_request;
  cr.reserve(256 + headers.block.size() + query.size() + path.size());
  cr += method;
  cr.push_back('\n');
  cr += CanonicalUri(path, params.path_mode);
  cr.push_back('\n');
  cr += CanonicalQuery(query);
  cr.push_back('\n');
  cr += headers.block;
  cr.push_back('\n');
  cr += headers.signed_names;
  cr.push_back('\n');
  cr += payload_hash;

  std::string& sts = out.string_to_sign;
  sts += kAlgorithm;
  sts.push_back('\n');
  sts += amz_date;
  sts.push_back('\n');
  sts += scope;
  sts.push_back('\n');
  sts += Sha256Hex(cr);

  const std::string key = SigningKey(credentials.secret_access_key, amz_date.substr(0, 8),
                                     params.region, params.service);
  out.signature = HexEncode(HmacSha256(key, sts));
  return out;
}

std::string Scope(std::string_view amz_date, const SigningParams& params) {
  std::string scope(amz_date.substr(0, 8));
  scope += '/';
  scope += params.region;
  scope += '/';
  scope += params.service;
  scope += "/aws4_request";
  return scope;
}

std::string PayloadHash(const SigningRequest& request) {
  return request.payload_hash.empty() ? std::string(kEmptyPayloadSha256) : request.payload_hash;
}

}  // namespace

SignedRequest SignRequest(const SigningRequest& request, const Credentials& credentials,
                          const SigningParams& params) {
  const std::string amz_date = FormatAmzDate(params.time);
  const std::string scope = Scope(amz_date, params);
  const std::string payload_hash = PayloadHash(request);
  const bool add_token = !credentials.session_token.empty();

  SignedRequest out;
  out.added_headers.emplace_back("X-Amz-Date", amz_date);
  if (add_token) out.added_headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  if (params.add_content_sha256_header) {
    out.added_headers.emplace_back("X-Amz-Content-SHA256", payload_hash);
  }

  // The caller's copies of the headers we set are replaced, never signed twice (a retry re-signs
  // the same request).
  Headers all;
  all.reserve(request.headers.size() + out.added_headers.size());
  for (const auto& header : request.headers) {
    if (HasHeader(out.added_headers, header.first)) continue;
    all.push_back(header);
  }
  all.insert(all.end(), out.added_headers.begin(), out.added_headers.end());
  const CanonicalHeaders headers = Canonicalize(all);

  Signature sig = Compute(request.method, request.path, request.query, headers, payload_hash,
                          amz_date, scope, credentials, params);
  out.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" +
                      scope + ", SignedHeaders=" + headers.signed_names +
                      ", Signature=" + sig.signature;
  out.added_headers.emplace_back("Authorization", out.authorization);
  out.canonical_request = std::move(sig.canonical_request);
  out.string_to_sign = std::move(sig.string_to_sign);
  out.signature = std::move(sig.signature);
  return out;
}

SignedRequest PresignRequest(const SigningRequest& request, const Credentials& credentials,
                             const SigningParams& params, std::chrono::seconds expires) {
  const std::string amz_date = FormatAmzDate(params.time);
  const std::string scope = Scope(amz_date, params);
  const CanonicalHeaders headers = Canonicalize(request.headers);

  std::vector<std::pair<std::string, std::string>> auth_params = {
      {"X-Amz-Algorithm", std::string(kAlgorithm)},
      {"X-Amz-Credential", credentials.access_key_id + "/" + scope},
      {"X-Amz-Date", amz_date},
      {"X-Amz-Expires", std::to_string(expires.count())},
      {"X-Amz-SignedHeaders", headers.signed_names},
  };
  if (!credentials.session_token.empty()) {
    auth_params.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  std::string query = request.query;
  if (!query.empty()) query.push_back('&');
  query += BuildQuery(auth_params);

  Signature sig = Compute(request.method, request.path, query, headers, PayloadHash(request),
                          amz_date, scope, credentials, params);
  SignedRequest out;
  out.signed_query = std::move(query) + "&X-Amz-Signature=" + sig.signature;
  out.canonical_request = std::move(sig.canonical_request);
  out.string_to_sign = std::move(sig.string_to_sign);
  out.signature = std::move(sig.signature);
  return out;
}

std::string FormatAmzDate(Clock::WallTime time) {
  using namespace std::chrono;
  const auto seconds = floor<std::chrono::seconds>(time);
  const auto day = floor<days>(seconds);
  const year_month_day ymd(day);
  const hh_mm_ss hms(seconds - day);
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buffer;
}

}  // namespace spotgrid
