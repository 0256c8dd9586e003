#include "agent/environment_file.h"

#include <algorithm>
#include <string_view>
#include <utility>

namespace spotgrid::agent {
namespace {

std::string Quoted(const std::string& text) { return "'" + text + "'"; }

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool IsVariableName(std::string_view key) {
  if (key.empty() || (key[0] >= '0' && key[0] <= '9')) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

Result<std::vector<EnvironmentFileEntry>> ParseEnvironmentFile(const std::string& text,
                                                               const std::string& path) {
  std::vector<EnvironmentFileEntry> entries;
  const std::size_t n = text.size();
  std::size_t i = 0;
  int line = 1;
  auto fail = [&](int at, const std::string& message) {
    return Error::InvalidInput(path + ":" + std::to_string(at) + ": " + message);
  };
  while (i < n) {
    while (i < n && IsBlank(text[i])) ++i;
    if (i >= n) break;
    if (text[i] == '\n') {
      ++line;
      ++i;
      continue;
    }
    const int entry_line = line;
    if (text[i] == '#' || text[i] == ';') {
      while (i < n && text[i] != '\n') ++i;
      continue;
    }
    std::size_t key_start = i;
    while (i < n && text[i] != '=' && text[i] != '\n') ++i;
    std::string key = text.substr(key_start, i - key_start);
    while (!key.empty() && IsBlank(key.back())) key.pop_back();
    if (i >= n || text[i] != '=') return fail(entry_line, "expected KEY=VALUE, got " + Quoted(key));
    ++i;  // '='
    if (key.compare(0, 7, "export ") == 0 || key.compare(0, 7, "export\t") == 0) {
      std::size_t start = 7;
      while (start < key.size() && IsBlank(key[start])) ++start;
      key.erase(0, start);
    }
    if (!IsVariableName(key)) return fail(entry_line, Quoted(key) + " is not a variable name");

    while (i < n && IsBlank(text[i])) ++i;
    std::string value;
    std::size_t protected_size = 0;  // quoted or escaped characters are never trimmed
    while (i < n && text[i] != '\n') {
      const char c = text[i];
      if (c == '\'') {
        std::size_t close = text.find('\'', i + 1);
        if (close == std::string::npos) return fail(entry_line, key + ": unterminated ' quote");
        for (std::size_t k = i + 1; k < close; ++k) line += text[k] == '\n' ? 1 : 0;
        value.append(text, i + 1, close - i - 1);
        protected_size = value.size();
        i = close + 1;
      } else if (c == '"') {
        ++i;
        bool closed = false;
        while (i < n) {
          if (text[i] == '"') {
            closed = true;
            ++i;
            break;
          }
          if (text[i] == '\\' && i + 1 < n) {
            const char next = text[i + 1];
            if (next == '\n') {
              ++line;  // a line continuation: both characters vanish
            } else if (next == '"' || next == '\\' || next == '`' || next == '$') {
              value += next;
            } else {
              value += '\\';
              value += next;
            }
            i += 2;
            continue;
          }
          if (text[i] == '\n') ++line;
          value += text[i++];
        }
        if (!closed) return fail(entry_line, key + ": unterminated \" quote");
        protected_size = value.size();
      } else if (c == '\\') {
        if (i + 1 < n) {
          if (text[i + 1] == '\n') {
            ++line;
          } else {
            value += text[i + 1];
            protected_size = value.size();
          }
        }
        i += 2;
      } else {
        value += c;
        ++i;
      }
    }
    while (value.size() > protected_size && IsBlank(value.back())) value.pop_back();
    entries.push_back(EnvironmentFileEntry{std::move(key), std::move(value), entry_line});
  }
  return entries;
}

}  // namespace spotgrid::agent
