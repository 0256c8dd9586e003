// A parser for systemd's EnvironmentFile= format (systemd.exec(5)), the format of
// /etc/spotgrid/agent.env: the agent reads its settings from the same file systemd exports
// to it, so both must read every line the same way.
//
//   KEY=VALUE per line; leading blanks ignored; lines starting with # or ; are comments;
//   an optional "export " before the key; blanks around '=' ignored; a value 'single-quoted'
//   (literal), "double-quoted" (\" \\ \` \$ escaped) or bare (a backslash escapes the next
//   character, trailing blanks dropped); quoted values and backslash-newline span lines.
//
// Thread-safety: a pure function.
#pragma once

#include <string>
#include <vector>

#include "spotgrid/core/status.h"

namespace spotgrid::agent {

struct EnvironmentFileEntry {
  std::string key;
  std::string value;
  int line = 0;  // 1-based line the entry starts on
};

// Every entry of `text` in file order (a repeated key appears twice: the caller decides, and
// systemd lets the last one win). `path` only names the file in errors (kInvalidInput):
// "PATH:LINE: reason", LINE being the line the faulty entry starts on.
Result<std::vector<EnvironmentFileEntry>> ParseEnvironmentFile(const std::string& text,
                                                               const std::string& path);

}  // namespace spotgrid::agent
