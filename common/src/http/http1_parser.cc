#include "http/http1_parser.h"

#include <algorithm>
#include <cstring>

#include "core/strings.h"

namespace spotgrid {
namespace {

// HTTP optional whitespace, as CurlTransport trims it.
std::string_view TrimOws(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

// Whether the comma-separated token list `value` contains `token` (case-insensitive).
bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    if (EqualsIgnoreCase(TrimOws(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// The last coding of a Transfer-Encoding list.
std::string_view LastToken(std::string_view value) {
  std::size_t comma = value.rfind(',');
  return TrimOws(comma == std::string_view::npos ? value : value.substr(comma + 1));
}

bool ParseDecimal(std::string_view s, std::uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Http1ResponseParser::Http1ResponseParser(bool head_request, Headers* headers)
    : head_request_(head_request), headers_(headers) {}

std::ptrdiff_t Http1ResponseParser::Fail(std::string message) {
  state_ = State::kError;
  error_ = std::move(message);
  return -1;
}

std::ptrdiff_t Http1ResponseParser::Feed(std::string_view data, Http1BodySink& sink) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    switch (state_) {
      case State::kDone:
        return static_cast<std::ptrdiff_t>(pos);
      case State::kError:
        return -1;
      case State::kBodyUntilClose: {
        std::string_view piece = data.substr(pos);
        if (!sink.OnBody(piece)) return Fail("");
        pos = data.size();
        break;
      }
      case State::kBodyLength:
      case State::kChunkData: {
        std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size() - pos));
        if (!sink.OnBody(data.substr(pos, n))) return Fail("");
        pos += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          state_ = state_ == State::kBodyLength ? State::kDone : State::kChunkDataEnd;
        }
        break;
      }
      default: {
        // A line: the status line, a header, a chunk size, the CRLF after chunk data or a
        // trailer. Bare LF line endings are tolerated, as every client does.
        const char* begin = data.data() + pos;
        const void* nl = std::memchr(begin, '\n', data.size() - pos);
        if (nl == nullptr) {
          if (head_bytes_ + (data.size() - pos) > kMaxHeadBytes) {
            return Fail("response head larger than 64 KiB");
          }
          return static_cast<std::ptrdiff_t>(pos);
        }
        std::size_t length = static_cast<const char*>(nl) - begin;  // without the LF
        head_bytes_ += length + 1;
        if (head_bytes_ > kMaxHeadBytes) return Fail("response head larger than 64 KiB");
        std::string_view line(begin, length);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        pos += length + 1;
        bool ok = true;
        switch (state_) {
          case State::kStatusLine:
            ok = StatusLine(line);
            break;
          case State::kHeaders:
            ok = line.empty() ? EndOfHead() : HeaderLine(line);
            break;
          case State::kChunkSize:
            ok = ChunkSizeLine(line);
            break;
          case State::kChunkDataEnd:
            if (!line.empty()) return Fail("chunk data longer than its size");
            state_ = State::kChunkSize;
            head_bytes_ = 0;
            break;
          case State::kTrailers:
            if (line.empty()) {
              state_ = State::kDone;
            } else {
              ok = HeaderLine(line);
            }
            break;
          default:
            break;
        }
        if (!ok) return -1;
        if (state_ == State::kDone) return static_cast<std::ptrdiff_t>(pos);
        break;
      }
    }
  }
  return static_cast<std::ptrdiff_t>(pos);
}

bool Http1ResponseParser::StatusLine(std::string_view line) {
  // "HTTP/1.x SSS[ reason]"
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[7] < '0' || line[7] > '9' ||
      line[8] != ' ') {
    Fail("malformed status line");
    return false;
  }
  int status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      Fail("malformed status line");
      return false;
    }
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') {
    Fail("malformed status line");
    return false;
  }
  if (status < 100) {
    Fail("malformed status line");
    return false;
  }
  status_ = status;
  minor_version_ = line[7] - '0';
  headers_->clear();  // an interim response's headers are not the final response's
  state_ = State::kHeaders;
  return true;
}

bool Http1ResponseParser::HeaderLine(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') {
    // Obsolete line folding: the line continues the previous value (RFC 9112 5.2 lets a
    // client replace the fold with a space).
    if (headers_->empty()) {
      Fail("header continuation without a header");
      return false;
    }
    std::string& value = headers_->back().second;
    std::string_view more = TrimOws(line);
    if (!more.empty()) {
      if (!value.empty()) value.push_back(' ');
      value.append(more);
    }
    return true;
  }
  std::size_t colon = line.find(':');
  std::string_view name =
      colon == std::string_view::npos ? std::string_view() : line.substr(0, colon);
  if (name.empty() || name.find_first_of(" \t") != std::string_view::npos) {
    Fail("malformed header line");
    return false;
  }
  auto& [key, value] = headers_->emplace_back(name, TrimOws(line.substr(colon + 1)));
  for (char& c : key) c = AsciiLower(c);
  return true;
}

bool Http1ResponseParser::EndOfHead() {
  head_bytes_ = 0;
  if (status_ < 200) {
    // Interim response (100 Continue, 103 Early Hints): the real one follows.
    state_ = State::kStatusLine;
    return true;
  }
  bool close = false, keep_alive_token = false, has_length = false, chunked = false,
       has_transfer_encoding = false;
  std::uint64_t length = 0;
  for (const auto& [name, value] : *headers_) {
    if (name == "connection") {
      close = close || HasToken(value, "close");
      keep_alive_token = keep_alive_token || HasToken(value, "keep-alive");
    } else if (name == "content-length") {
      std::uint64_t v = 0;
      if (!ParseDecimal(value, &v) || (has_length && v != length)) {
        Fail("invalid Content-Length");
        return false;
      }
      has_length = true;
      length = v;
    } else if (name == "transfer-encoding") {
      has_transfer_encoding = true;
      chunked = EqualsIgnoreCase(LastToken(value), "chunked");
    }
  }
  keep_alive_ = !close && (minor_version_ >= 1 || keep_alive_token);
  if (head_request_ || status_ == 204 || status_ == 304) {
    state_ = State::kDone;
  } else if (has_transfer_encoding) {
    // Transfer-Encoding overrides Content-Length (RFC 9112 6.3); a coding other than chunked
    // last means the body ends when the connection does.
    if (chunked) {
      state_ = State::kChunkSize;
    } else {
      state_ = State::kBodyUntilClose;
      keep_alive_ = false;
    }
  } else if (has_length) {
    remaining_ = length;
    state_ = length == 0 ? State::kDone : State::kBodyLength;
  } else {
    state_ = State::kBodyUntilClose;
    keep_alive_ = false;
  }
  return true;
}

bool Http1ResponseParser::ChunkSizeLine(std::string_view line) {
  // "hex-size[;ext=value...]" with optional whitespace before the extensions.
  std::uint64_t size = 0;
  std::size_t i = 0;
  for (; i < line.size(); ++i) {
    int digit = HexValue(line[i]);
    if (digit < 0) break;
    if (size > (UINT64_MAX >> 4)) {
      Fail("chunk size too large");
      return false;
    }
    size = (size << 4) | static_cast<std::uint64_t>(digit);
  }
  std::string_view rest = TrimOws(line.substr(i));
  if (i == 0 || (!rest.empty() && rest.front() != ';')) {
    Fail("malformed chunk size line");
    return false;
  }
  if (size == 0) {
    state_ = State::kTrailers;
  } else {
    remaining_ = size;
    state_ = State::kChunkData;
  }
  return true;
}

bool Http1ResponseParser::FinishAtEof() {
  switch (state_) {
    case State::kDone:
      return true;
    case State::kBodyUntilClose:
      state_ = State::kDone;
      return true;
    case State::kError:
      return false;
    case State::kStatusLine:
      Fail(status_ == 0 && head_bytes_ == 0 ? "connection closed before any response"
                                            : "connection closed inside the response head");
      return false;
    case State::kHeaders:
      Fail("connection closed inside the response head");
      return false;
    default:
      Fail("connection closed inside the response body");
      return false;
  }
}

}  // namespace spotgrid
