// Small ASCII string helpers shared by the client core (private to spotgrid_common).
//
// Everything here is locale-independent on purpose: header names, config keys, flags such as
// "true" and wire tokens are ASCII, and a process locale must not change how they compare.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace spotgrid {

inline bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

inline char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// `s` without leading and trailing whitespace (a view into `s`).
inline std::string_view TrimView(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

// TrimView, copied into a string.
inline std::string Trim(std::string_view s) { return std::string(TrimView(s)); }

// `s` with A-Z turned into a-z.
inline std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

// Case-insensitive ASCII equality (HTTP header names, flags).
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

}  // namespace spotgrid
