#include "grid.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "shell_context.h"
#include "spotgrid/aws/sigv4.h"

namespace spotgrid {
namespace {

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

// A value as it appears inside an error message: quoted, control characters escaped, long
// values cut, so a hostile or broken cell cannot garble the terminal or the log line.
std::string QuoteForMessage(std::string_view value) {
  constexpr size_t kMax = 64;
  std::string out = "\"";
  size_t shown = 0;
  for (unsigned char c : value) {
    if (shown >= kMax && (c & 0xC0) != 0x80) {
      out += "...";
      break;
    }
    ++shown;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

// 1-based count of characters (UTF-8 lead bytes) in text[from, to).
int CharacterColumn(std::string_view text, size_t from, size_t to) {
  int column = 1;
  for (size_t i = from; i < to; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++column;
  }
  return column;
}

bool IsBlank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n\v\f") == std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

// Bytes that stop the fast scan of a field; everything else is copied as a run.
struct ByteClasses {
  std::array<bool, 256> unquoted{};  // , " CR LF NUL and non-ASCII
  std::array<bool, 256> quoted{};    // " CR LF NUL and non-ASCII
  constexpr ByteClasses() {
    for (int b = 0x80; b < 256; ++b) unquoted[b] = quoted[b] = true;
    for (unsigned char b : {'"', '\r', '\n', '\0'}) unquoted[b] = quoted[b] = true;
    unquoted[','] = true;
  }
};
constexpr ByteClasses kClasses;

bool IsEnvName(std::string_view name) {
  if (name.empty()) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!alpha(name[0])) return false;
  for (char c : name.substr(1)) {
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

class CsvReader {
 public:
  CsvReader(std::string_view data, std::string_view file, const CsvRules& rules)
      : data_(data), file_(file), rules_(rules) {}

  Result<CsvTable> Read() {
    if (data_.size() >= 2 && ((data_[0] == '\xFF' && data_[1] == '\xFE') ||
                              (data_[0] == '\xFE' && data_[1] == '\xFF'))) {
      return Fail(Here(),
                  "the file is UTF-16 (it starts with a UTF-16 byte order mark); "
                  "save it as UTF-8");
    }
    if (data_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = line_start_ = 3;

    CsvTable table;
    SkipBlankLines();
    if (pos_ == data_.size()) return Fail(Here(), "empty file: expected a header row");
    table.header_line = line_;
    std::vector<Position> starts;
    if (Status s = ReadRecord(&table.header, &starts, 0, 0); !s.ok()) return s;
    if (rules_.grid_column_names) {
      if (Status s = CheckHeader(table.header, starts); !s.ok()) return s;
    }

    const size_t width = table.header.size();
    int data_row = 0;
    for (;;) {
      SkipBlankLines();
      if (pos_ == data_.size()) break;
      CsvRecord& record = table.records.emplace_back();
      record.line = line_;
      record.fields.reserve(width);
      if (Status s = ReadRecord(&record.fields, nullptr, width, ++data_row); !s.ok()) return s;
    }
    if (table.records.empty() && rules_.require_data_rows) {
      return Fail(Here(), "no data rows: the file has a header but no records");
    }
    return table;
  }

 private:
  struct Position {
    size_t offset;
    int line;
    size_t line_start;
  };

  Position Here() const { return {pos_, line_, line_start_}; }

  Error Fail(const Position& at, std::string_view reason) const {
    std::string message(file_);
    message += ':';
    message += std::to_string(at.line);
    message += ':';
    message += std::to_string(CharacterColumn(data_, at.line_start, at.offset));
    message += ": ";
    message += reason;
    return Error::InvalidInput(std::move(message));
  }

  // At CR or LF: consumes one line end (CRLF counts as one).
  void ConsumeLineEnd() {
    if (data_[pos_] == '\r' && pos_ + 1 < data_.size() && data_[pos_ + 1] == '\n') ++pos_;
    ++pos_;
    ++line_;
    line_start_ = pos_;
  }

  void SkipBlankLines() {
    while (pos_ < data_.size() && (data_[pos_] == '\n' || data_[pos_] == '\r')) ConsumeLineEnd();
  }

  // Reads one record; the position is at its first character and ends after its line end.
  // `starts` (optional) receives each field's position. `width` > 0: the record must have
  // that many fields (`data_row` names it in the error).
  Status ReadRecord(std::vector<std::string>* fields, std::vector<Position>* starts, size_t width,
                    int data_row) {
    Position extra{};
    for (;;) {
      if (width > 0 && fields->size() == width) extra = Here();
      if (starts != nullptr) starts->push_back(Here());
      std::string& field = fields->emplace_back();
      Status s =
          pos_ < data_.size() && data_[pos_] == '"' ? ReadQuoted(&field) : ReadUnquoted(&field);
      if (!s.ok()) return s;
      if (pos_ < data_.size() && data_[pos_] == ',') {
        ++pos_;
        continue;
      }
      break;
    }
    const Position end = Here();
    if (pos_ < data_.size()) ConsumeLineEnd();
    if (width > 0 && fields->size() != width) {
      std::string reason = "data row " + std::to_string(data_row) + " has " +
                           std::to_string(fields->size()) + " fields, the header has " +
                           std::to_string(width);
      return Fail(fields->size() > width ? extra : end, reason);
    }
    return Status::Ok();
  }

  Status ReadUnquoted(std::string* field) {
    const size_t start = pos_;
    while (pos_ < data_.size()) {
      const auto c = static_cast<unsigned char>(data_[pos_]);
      if (!kClasses.unquoted[c]) {
        ++pos_;
        continue;
      }
      if (c == ',' || c == '\n' || c == '\r') break;
      if (c == '"') {
        return Fail(Here(),
                    "quote inside an unquoted field: a field containing \" must be enclosed in "
                    "quotes as a whole, with each \" inside written as \"\"");
      }
      if (Status s = CheckSpecial(c); !s.ok()) return s;
    }
    field->assign(data_.data() + start, pos_ - start);
    return Status::Ok();
  }

  Status ReadQuoted(std::string* field) {
    const Position open = Here();
    size_t run = ++pos_;
    for (;;) {
      if (pos_ == data_.size()) {
        return Fail(open,
                    "unterminated quoted field: the quote that opens this field is never "
                    "closed (the file ends inside it)");
      }
      const auto c = static_cast<unsigned char>(data_[pos_]);
      if (!kClasses.quoted[c]) {
        ++pos_;
        continue;
      }
      if (c == '"') {
        if (pos_ + 1 < data_.size() && data_[pos_ + 1] == '"') {
          field->append(data_.data() + run, pos_ + 1 - run);  // keeps one quote
          pos_ += 2;
          run = pos_;
          continue;
        }
        field->append(data_.data() + run, pos_ - run);
        ++pos_;
        break;
      }
      if (c == '\n' || c == '\r') {
        ConsumeLineEnd();  // the line end stays in the value: the run continues past it
        continue;
      }
      if (Status s = CheckSpecial(c); !s.ok()) return s;
    }
    if (pos_ < data_.size()) {
      const char c = data_[pos_];
      if (c != ',' && c != '\n' && c != '\r') {
        return Fail(Here(),
                    "character after the closing quote of a quoted field (opened at " +
                        std::to_string(open.line) + ":" +
                        std::to_string(CharacterColumn(data_, open.line_start, open.offset)) +
                        "): expected a comma or the end of the line; write \"\" for a "
                        "quote inside a quoted field");
      }
    }
    return Status::Ok();
  }

  // A NUL or the first byte of a multi-byte UTF-8 sequence: rejects the NUL or an invalid
  // sequence, otherwise steps over the sequence.
  Status CheckSpecial(unsigned char c) {
    if (c == 0) return Fail(Here(), "NUL byte: a grid is UTF-8 text, not binary data");
    const size_t n = data_.size();
    auto byte = [&](size_t i) -> unsigned {
      return pos_ + i < n ? static_cast<unsigned char>(data_[pos_ + i]) : 0u;
    };
    auto cont = [&](size_t i) { return (byte(i) & 0xC0) == 0x80; };
    size_t length = 0;
    const char* problem = nullptr;
    if (c < 0xC0) {
      problem = "a continuation byte without a lead byte";
      length = 1;
    } else if (c < 0xC2) {
      problem = "overlong encoding";
      length = 2;
    } else if (c < 0xE0) {
      length = 2;
    } else if (c < 0xF0) {
      length = 3;
      if (c == 0xE0 && cont(1) && byte(1) < 0xA0) problem = "overlong encoding";
      if (c == 0xED && cont(1) && byte(1) >= 0xA0) problem = "UTF-16 surrogate (U+D800..U+DFFF)";
    } else if (c < 0xF5) {
      length = 4;
      if (c == 0xF0 && cont(1) && byte(1) < 0x90) problem = "overlong encoding";
      if (c == 0xF4 && cont(1) && byte(1) >= 0x90) problem = "code point above U+10FFFF";
    } else {
      problem = "a byte that never occurs in UTF-8";
      length = 1;
    }
    size_t have = 1;
    if (problem == nullptr) {
      while (have < length && cont(have)) ++have;
      if (have < length) problem = "truncated multi-byte sequence";
    } else {
      have = std::min(length, n - pos_);
    }
    if (problem != nullptr) {
      std::string reason = "invalid UTF-8: ";
      reason += problem;
      reason += " (bytes";
      for (size_t i = 0; i < std::max<size_t>(have, 1) && pos_ + i < n; ++i) {
        char buf[8];
        std::snprintf(buf, sizeof buf, " %02X", byte(i));
        reason += buf;
      }
      reason += "); the grid must be UTF-8 text";
      return Fail(Here(), reason);
    }
    pos_ += length;
    return Status::Ok();
  }

  Status CheckHeader(const std::vector<std::string>& header,
                     const std::vector<Position>& starts) const {
    std::unordered_map<std::string_view, size_t> seen;
    for (size_t i = 0; i < header.size(); ++i) {
      const std::string& name = header[i];
      if (name.empty()) {
        return Fail(starts[i], "empty column name (field " + std::to_string(i + 1) +
                                   " of the header): every column needs a name");
      }
      if (!IsEnvName(name)) {
        return Fail(starts[i], "column name " + QuoteForMessage(name) +
                                   " cannot be an environment variable name: column names "
                                   "must match [A-Za-z_][A-Za-z0-9_]*");
      }
      auto [it, inserted] = seen.emplace(name, i);
      if (!inserted) {
        return Fail(starts[i], "duplicate column name " + QuoteForMessage(name) + " (fields " +
                                   std::to_string(it->second + 1) + " and " +
                                   std::to_string(i + 1) + " of the header)");
      }
    }
    return Status::Ok();
  }

  std::string_view data_;
  std::string_view file_;
  CsvRules rules_;
  size_t pos_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Units
// ---------------------------------------------------------------------------------------------

// A parsed --command template: literal text and placeholders, in order.
struct TemplatePart {
  std::string literal;
  int column = -1;  // >= 0: a placeholder for this column, written for `context`
  ShellContext context = ShellContext::kBare;
};

Result<std::vector<TemplatePart>> ParseTemplate(std::string_view text,
                                                const std::vector<std::string>& header,
                                                std::string_view file, int header_line) {
  auto fail = [&](size_t at, const std::string& reason) {
    return Error::InvalidInput(std::string(file) + ":" + std::to_string(header_line) +
                               ": --command template, character " +
                               std::to_string(CharacterColumn(text, 0, at)) + ": " + reason);
  };
  std::vector<TemplatePart> parts(1);
  ShellLexer lexer;  // fed each literal as a placeholder follows it
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      parts.back().literal += '{';
      i += 2;
    } else if (c == '}' && i + 1 < text.size() && text[i + 1] == '}') {
      parts.back().literal += '}';
      i += 2;
    } else if (c == '}') {
      return fail(i, "lone '}': write }} for a literal brace");
    } else if (c == '{') {
      const size_t close = text.find('}', i + 1);
      if (close == std::string_view::npos) {
        return fail(i,
                    "unterminated '{': a placeholder is {column}; write {{ for a literal "
                    "brace");
      }
      const std::string_view name = text.substr(i + 1, close - i - 1);
      int column = -1;
      for (size_t k = 0; k < header.size(); ++k) {
        if (header[k] == name) column = static_cast<int>(k);
      }
      if (column < 0) {
        std::string columns;
        for (const std::string& h : header) columns += (columns.empty() ? "" : ", ") + h;
        return fail(i, "unknown placeholder {" + std::string(name) +
                           "}: the grid has no such column (columns: " + columns +
                           "); write {{ and }} for literal braces");
      }
      lexer.Feed(parts.back().literal);
      std::string why_not;
      std::optional<ShellContext> context = lexer.Context(&why_not);
      if (!context) {
        return fail(i, "placeholder {" + std::string(name) +
                           "} cannot be quoted where it stands: " + why_not);
      }
      lexer.AfterPlaceholder();
      parts.back().column = column;
      parts.back().context = *context;
      parts.emplace_back();
      i = close + 1;
    } else {
      parts.back().literal += c;
      ++i;
    }
  }
  lexer.Feed(parts.back().literal);
  if (std::string problem = lexer.EndProblem(); !problem.empty()) {
    return fail(text.size(), "the command is not complete shell: " + problem);
  }
  if (parts.size() == 1 && IsBlank(parts[0].literal)) {
    return fail(0, "the template is blank: it would run an empty command");
  }
  return parts;
}

bool IsSafeId(std::string_view id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Length-prefixed, so no choice of values can make two different unit contents serialise
// alike. Versioned: changing the format changes every hash, which enqueue would report as
// changed rows.
void AppendCanonical(const GridRow& row, std::string* out) {
  auto put = [out](std::string_view s) {
    *out += std::to_string(s.size());
    *out += ':';
    *out += s;
  };
  *out += "row ";
  put(row.command);
  *out += ' ';
  *out += std::to_string(row.params.size());
  for (const auto& [name, value] : row.params) {
    *out += ' ';
    put(name);
    *out += '=';
    put(value);
  }
  *out += '\n';
}

}  // namespace

Result<CsvTable> ParseCsv(std::string_view data, std::string_view file) {
  return CsvReader(data, file, CsvRules{}).Read();
}

Result<CsvTable> ParseCsv(std::string_view data, std::string_view file, const CsvRules& rules) {
  return CsvReader(data, file, rules).Read();
}

Result<std::vector<UnitSpec>> BuildUnits(const CsvTable& table, const GridOptions& options,
                                         std::string_view file) {
  auto fail = [&](int line, const std::string& reason) {
    return Error::InvalidInput(std::string(file) + ":" + std::to_string(line) + ": " + reason);
  };
  if (options.chunk < 1) {
    return Error::InvalidInput("--chunk must be at least 1 (got " + std::to_string(options.chunk) +
                               ")");
  }
  const std::vector<std::string>& header = table.header;
  int command_column = -1;
  int id_column = -1;
  for (size_t k = 0; k < header.size(); ++k) {
    if (header[k] == "command") command_column = static_cast<int>(k);
    if (header[k] == "id") id_column = static_cast<int>(k);
  }
  const bool use_template = !options.command_template.empty();
  std::vector<TemplatePart> parts;
  if (use_template) {
    auto parsed = ParseTemplate(options.command_template, header, file, table.header_line);
    if (!parsed.ok()) return parsed.error();
    parts = std::move(parsed.value());
  } else if (command_column < 0) {
    return fail(table.header_line,
                "no command: the header has no \"command\" column and no --command template "
                "was given");
  }
  const int param_skip = use_template ? -1 : command_column;

  std::vector<UnitSpec> units;
  units.reserve((table.records.size() + options.chunk - 1) / options.chunk);
  // Row ids with their row index, sorted afterwards to find duplicates: much cheaper than a
  // hash set on large grids.
  std::vector<std::pair<std::string_view, size_t>> row_ids;
  if (id_column >= 0) row_ids.reserve(table.records.size());

  for (size_t r = 0; r < table.records.size(); ++r) {
    const CsvRecord& record = table.records[r];
    const std::vector<std::string>& fields = record.fields;
    if (fields.size() != header.size()) {  // ParseCsv guarantees this; a hand-built table may not
      return fail(record.line, "data row " + std::to_string(r + 1) + " has " +
                                   std::to_string(fields.size()) + " fields, the header has " +
                                   std::to_string(header.size()));
    }

    if (id_column >= 0) {
      const std::string& id = fields[id_column];
      if (!IsSafeId(id)) {
        return fail(record.line,
                    "unit id " + QuoteForMessage(id) +
                        " is not safe: ids must be 1 to 128 characters from A-Z a-z 0-9 . _ - "
                        "and not \".\" or \"..\" (they become S3 key segments and file names)");
      }
      row_ids.emplace_back(id, r);
    }

    GridRow row;
    row.line = record.line;
    if (use_template) {
      size_t size = 0;
      for (const TemplatePart& part : parts) {
        size += part.literal.size() + (part.column >= 0 ? fields[part.column].size() + 4 : 0);
      }
      row.command.reserve(size + size / 8);
      for (const TemplatePart& part : parts) {
        row.command += part.literal;
        if (part.column >= 0) AppendForShell(part.context, fields[part.column], &row.command);
      }
    } else {
      row.command = fields[command_column];
    }
    if (IsBlank(row.command)) {
      return fail(record.line, "empty command (the \"command\" field of data row " +
                                   std::to_string(r + 1) + " is blank)");
    }
    row.params.reserve(header.size());
    for (size_t k = 0; k < header.size(); ++k) {
      if (static_cast<int>(k) != param_skip) row.params.emplace_back(header[k], fields[k]);
    }

    if (r % options.chunk == 0) {
      UnitSpec& unit = units.emplace_back();
      unit.id = id_column >= 0 ? fields[id_column] : std::to_string(r + 1);
      unit.rows.reserve(std::min<size_t>(options.chunk, table.records.size() - r));
    }
    units.back().rows.push_back(std::move(row));
  }

  if (!row_ids.empty()) {
    std::sort(row_ids.begin(), row_ids.end());
    // Of all repeated ids, report the repeat that comes first in the file, with the line of
    // that id's first occurrence.
    const size_t none = table.records.size();
    size_t first = none, repeat = none, group = 0;
    for (size_t k = 1; k < row_ids.size(); ++k) {
      if (row_ids[k].first != row_ids[k - 1].first) {
        group = k;
      } else if (row_ids[k].second < repeat) {
        repeat = row_ids[k].second;
        first = row_ids[group].second;
      }
    }
    if (repeat != none) {
      return fail(table.records[repeat].line,
                  "duplicate unit id " + QuoteForMessage(table.records[repeat].fields[id_column]) +
                      " (first at line " + std::to_string(table.records[first].line) + ")");
    }
  }

  std::string canonical;
  for (UnitSpec& unit : units) {
    canonical.assign("spotgrid-unit-v1\n");
    for (const GridRow& row : unit.rows) AppendCanonical(row, &canonical);
    unit.content_sha256 = Sha256Hex(canonical);
  }
  return units;
}

std::string ShellQuote(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  AppendForShell(ShellContext::kBare, value, &out);
  return out;
}

std::string CsvEscape(std::string_view field) {
  // An empty field is quoted: alone on a line it would otherwise be a blank line, which
  // ParseCsv skips.
  if (!field.empty() && field.find_first_of(",\"\r\n") == std::string_view::npos) {
    return std::string(field);
  }
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace spotgrid
