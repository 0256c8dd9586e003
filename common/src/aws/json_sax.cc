#include "spotgrid/aws/json_sax.h"

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace spotgrid {
namespace {

// Bytes a string holds as they are: printable ASCII other than the quote and the backslash.
constexpr auto kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  return plain;
}();

class Parser {
 public:
  Parser(std::string_view text, JsonSaxHandler& handler)
      : p_(text.data()), end_(text.data() + text.size()), handler_(handler) {}

  bool Run() {
    // A UTF-8 byte order mark may precede the value; a partial one is an error.
    if (p_ != end_ && Byte(*p_) == 0xEF) {
      if (end_ - p_ < 3 || Byte(p_[1]) != 0xBB || Byte(p_[2]) != 0xBF) return false;
      p_ += 3;
    }
    std::vector<char> open;  // '{' or '[' per enclosing container
    while (true) {
      // A value.
      SkipSpace();
      if (AtEnd()) return false;
      switch (*p_) {
        case '{':
          ++p_;
          if (!handler_.StartObject()) return false;
          SkipSpace();
          if (p_ != end_ && *p_ == '}') {
            ++p_;
            if (!handler_.EndObject()) return false;
            break;
          }
          if (!Member()) return false;
          open.push_back('{');
          continue;
        case '[':
          ++p_;
          if (!handler_.StartArray()) return false;
          SkipSpace();
          if (p_ != end_ && *p_ == ']') {
            ++p_;
            if (!handler_.EndArray()) return false;
            break;
          }
          open.push_back('[');
          continue;
        case '"':
          ++p_;
          if (!String() || !handler_.String(buffer_)) return false;
          break;
        case 't':
          if (!Literal("true") || !handler_.Boolean(true)) return false;
          break;
        case 'f':
          if (!Literal("false") || !handler_.Boolean(false)) return false;
          break;
        case 'n':
          if (!Literal("null") || !handler_.Null()) return false;
          break;
        default:
          if (!Number()) return false;
          break;
      }
      // After a value: close containers, or go on to the next element or member.
      while (true) {
        SkipSpace();
        if (open.empty()) return AtEnd();
        if (AtEnd()) return false;
        char c = *p_++;
        if (c == ',') {
          if (open.back() == '{') {
            SkipSpace();
            if (!Member()) return false;
          }
          break;
        }
        if (open.back() == '{' ? c != '}' : c != ']') return false;
        open.pop_back();
        if (!(c == '}' ? handler_.EndObject() : handler_.EndArray())) return false;
      }
    }
  }

 private:
  static unsigned Byte(char c) { return static_cast<unsigned char>(c); }

  // Where a token may start, a NUL byte ends the text, as in nlohmann::json's lexer (which
  // then ignores whatever follows).
  bool AtEnd() const { return p_ == end_ || *p_ == '\0'; }

  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  // `"name" :` with p_ at the opening quote; leaves p_ after the colon.
  bool Member() {
    if (p_ == end_ || *p_ != '"') return false;
    ++p_;
    if (!String() || !handler_.Key(buffer_)) return false;
    SkipSpace();
    if (p_ == end_ || *p_ != ':') return false;
    ++p_;
    return true;
  }

  bool Literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // RFC 8259 number; one that overflows a double is an error, as in nlohmann::json.
  bool Number() {
    const char* begin = p_;
    bool integer = true;
    if (p_ != end_ && *p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    } else {
      return false;
    }
    if (p_ != end_ && *p_ == '.') {
      integer = false;
      ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    std::string_view token(begin, static_cast<std::size_t>(p_ - begin));
    // An integer of up to 18 digits fits; a longer one that does not fit 64 bits is read as a
    // double, like any number with a fraction or exponent, and must be finite.
    std::size_t digits = token.size() - (token[0] == '-' ? 1 : 0);
    if (!integer || digits > 18) {
      std::string copy(token);
      errno = 0;
      char* stop = nullptr;
      bool fits = false;
      if (integer) {
        if (copy[0] == '-') {
          std::strtoll(copy.c_str(), &stop, 10);
        } else {
          std::strtoull(copy.c_str(), &stop, 10);
        }
        fits = errno == 0;
      }
      if (!fits && !std::isfinite(std::strtod(copy.c_str(), &stop))) return false;
    }
    return handler_.Number(token);
  }

  // The rest of a string after its opening quote, decoded into buffer_.
  bool String() {
    buffer_.clear();
    while (true) {
      const char* run = p_;
      while (p_ != end_ && kPlain[Byte(*p_)]) ++p_;
      buffer_.append(run, static_cast<std::size_t>(p_ - run));
      if (p_ == end_) return false;
      unsigned c = Byte(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c == '\\') {
        ++p_;
        if (!Escape()) return false;
      } else if (c < 0x20) {
        return false;  // control characters must be escaped
      } else if (!Utf8Sequence()) {
        return false;
      }
    }
  }

  // A well-formed UTF-8 sequence of two to four bytes (RFC 3629: no overlong forms, no
  // surrogates, nothing above U+10FFFF), copied to buffer_.
  bool Utf8Sequence() {
    unsigned lead = Byte(*p_);
    int trail = 0;
    unsigned low = 0x80, high = 0xBF;  // range of the first continuation byte
    if (lead >= 0xC2 && lead <= 0xDF) {
      trail = 1;
    } else if (lead == 0xE0) {
      trail = 2;
      low = 0xA0;
    } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
      trail = 2;
    } else if (lead == 0xED) {
      trail = 2;
      high = 0x9F;
    } else if (lead == 0xF0) {
      trail = 3;
      low = 0x90;
    } else if (lead >= 0xF1 && lead <= 0xF3) {
      trail = 3;
    } else if (lead == 0xF4) {
      trail = 3;
      high = 0x8F;
    } else {
      return false;
    }
    if (end_ - p_ <= trail) return false;
    for (int i = 1; i <= trail; ++i) {
      unsigned b = Byte(p_[i]);
      if (i == 1 ? (b < low || b > high) : (b < 0x80 || b > 0xBF)) return false;
    }
    buffer_.append(p_, static_cast<std::size_t>(trail + 1));
    p_ += trail + 1;
    return true;
  }

  bool Hex4(unsigned& value) {
    if (end_ - p_ < 4) return false;
    value = 0;
    for (int i = 0; i < 4; ++i) {
      char c = *p_++;
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    return true;
  }

  // After a backslash.
  bool Escape() {
    if (p_ == end_) return false;
    char c = *p_++;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        buffer_.push_back(c);
        return true;
      case 'b':
        buffer_.push_back('\b');
        return true;
      case 'f':
        buffer_.push_back('\f');
        return true;
      case 'n':
        buffer_.push_back('\n');
        return true;
      case 'r':
        buffer_.push_back('\r');
        return true;
      case 't':
        buffer_.push_back('\t');
        return true;
      case 'u':
        break;
      default:
        return false;
    }
    unsigned code = 0;
    if (!Hex4(code)) return false;
    if (code >= 0xDC00 && code <= 0xDFFF) return false;  // a low surrogate must follow a high one
    if (code >= 0xD800 && code <= 0xDBFF) {
      unsigned low = 0;
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
      p_ += 2;
      if (!Hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(code);
    return true;
  }

  void AppendUtf8(unsigned code) {
    if (code < 0x80) {
      buffer_.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      buffer_.push_back(static_cast<char>(0xC0 | (code >> 6)));
      buffer_.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      buffer_.push_back(static_cast<char>(0xE0 | (code >> 12)));
      buffer_.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      buffer_.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      buffer_.push_back(static_cast<char>(0xF0 | (code >> 18)));
      buffer_.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      buffer_.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      buffer_.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  const char* p_;
  const char* end_;
  JsonSaxHandler& handler_;
  std::string buffer_;
};

}  // namespace

bool ParseJsonSax(std::string_view text, JsonSaxHandler& handler) {
  return Parser(text, handler).Run();
}

}  // namespace spotgrid
