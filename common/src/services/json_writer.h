// Appends JSON text to a string without building an nlohmann::json tree first: the batch
// encoders of the SQS and DynamoDB clients write request bodies straight from typed entries
// (or from items already held as nlohmann::json), which is what keeps encoding a 50,000-unit
// enqueue cheap. Output is compact JSON as nlohmann's dump() writes it.
//
// Thread-safety: free functions over caller-owned strings.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace spotgrid::json_writer {

// Appends `s` escaped for the inside of a JSON string, without the quotes (for callers that
// join several pieces into one string value). Returns false (leaving `out` partly written) when
// `s` is not valid UTF-8, which no JSON service accepts.
inline bool AppendStringContents(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    // Copy the longest run that needs no escaping in one go.
    std::size_t run = i;
    while (run < n) {
      unsigned char c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i == n) break;
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // Validate one UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF).
      int len = 0;
      std::uint32_t cp = 0;
      if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
      } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
      } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
      } else {
        return false;
      }
      if (i + len > n) return false;
      for (int k = 1; k < len; ++k) {
        unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (cc & 0x3F);
      }
      if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
          (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        return false;
      }
      out.append(s.data() + i, len);
      i += len;
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
    ++i;
  }
  return true;
}

// Appends `s` as a quoted JSON string. Returns false (leaving `out` partly written) when `s` is
// not valid UTF-8.
inline bool AppendString(std::string& out, std::string_view s) {
  out.push_back('"');
  if (!AppendStringContents(out, s)) return false;
  out.push_back('"');
  return true;
}

// Appends `value` as compact JSON. Returns false on a string that is not valid UTF-8.
inline bool AppendValue(std::string& out, const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, member] : value.get_ref<const nlohmann::json::object_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        if (!AppendString(out, key)) return false;
        out.push_back(':');
        if (!AppendValue(out, member)) return false;
      }
      out.push_back('}');
      return true;
    }
    case nlohmann::json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const nlohmann::json& element : value.get_ref<const nlohmann::json::array_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        if (!AppendValue(out, element)) return false;
      }
      out.push_back(']');
      return true;
    }
    case nlohmann::json::value_t::string:
      return AppendString(out, value.get_ref<const std::string&>());
    case nlohmann::json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return true;
    case nlohmann::json::value_t::number_integer:
      out += std::to_string(value.get<std::int64_t>());
      return true;
    case nlohmann::json::value_t::number_unsigned:
      out += std::to_string(value.get<std::uint64_t>());
      return true;
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      out += "null";
      return true;
    default:  // floats, binary: rare here; nlohmann formats them (round-trip precision)
      out += value.dump();
      return true;
  }
}

}  // namespace spotgrid::json_writer
