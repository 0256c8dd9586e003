// Grids: a CSV file (RFC 4180) turned into work units.
//
// The CSV dialect (ParseCsv):
// - The first record is the header. Fields may be quoted ("a, b", "say ""hi""", embedded
//   line breaks, kept byte for byte: CR, LF and CRLF inside quotes reach the value as is).
//   Records end in LF, CRLF or a lone CR; the last line end is optional; a UTF-8 BOM is
//   skipped. Blank lines (no character at all between two line ends) are skipped anywhere:
//   a one-column grid writes an empty value as "".
// - The file must be UTF-8 (no overlong encodings, no surrogates, nothing above U+10FFFF)
//   with no NUL byte. Every record has as many fields as the header.
// - Column names become environment variable names unchanged, so each must match
//   [A-Za-z_][A-Za-z0-9_]* and be unique (case-sensitive, as environment variables are).
// - Errors read "FILE:LINE:COLUMN: reason". Lines count LF, CRLF and lone CR (also inside
//   quoted fields); columns count characters (code points) from 1, the BOM excluded.
//
// Units (BuildUnits):
// - Command: with a template (--command), {column} placeholders are replaced by the row's
//   value quoted for where the placeholder stands (bare, '...' or "...": shell_context.h), so
//   the command sees exactly the value and never runs it as shell syntax; a placeholder where
//   no quoting is safe ($(...), `...`, comments, ...) rejects the template; {{ and }} are
//   literal braces; a lone } is an error. A `command` column is then an ordinary
//   parameter (and may be used as {command}). Without a template the `command` column is the
//   command, verbatim, and is not a parameter. A blank command is an error.
// - Parameters: every column except the `command` column used as the command, in column
//   order, `id` included. They also reach the command as environment variables.
// - Ids: the `id` column when present (every row's id unique and safe:
//   [A-Za-z0-9._-]{1,128}, not "." or "..", since ids are S3 key segments and file names);
//   otherwise the 1-based data-row number (blank lines not counted).
// - chunk N >= 1 puts N consecutive rows in one unit, run one after another; the unit's id is
//   its first row's id; the last unit may hold fewer rows.
// - content_sha256: SHA-256 over a canonical serialisation of the unit's rows (each row's
//   command and its parameters' names and values, in order; not line numbers, so moving a
//   row within the file does not change its unit). Identical rows give identical hashes; any
//   changed command, name or value changes it.
// - Errors read "FILE:LINE: reason" (LINE: the row's first line); template errors
//   "FILE:HEADER_LINE: --command template, character N: reason".
//
// Errors are Error::InvalidInput and stop at the first problem; nothing is half-built: a grid
// is either entirely valid or rejected.
//
// Thread-safety: pure functions over values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "spotgrid/core/status.h"
#include "spotgrid/ledger/types.h"

namespace spotgrid {

struct CsvRecord {
  int line = 0;  // line of the record's first character (1-based)
  std::vector<std::string> fields;
};

struct CsvTable {
  std::vector<std::string> header;
  int header_line = 1;             // line of the header (after any leading blank lines)
  std::vector<CsvRecord> records;  // data rows, header excluded; never empty for a grid
};

// What ParseCsv demands of a grid beyond well-formed UTF-8 CSV with rows as wide as the header.
// Other CSV files (a unit's result file merged by `controller results`) may relax it.
struct CsvRules {
  // Column names non-empty, unique and matching [A-Za-z_][A-Za-z0-9_]*.
  bool grid_column_names = true;
  // At least one record after the header.
  bool require_data_rows = true;
};

// Parses and validates a whole CSV document as a grid (every CsvRules check). `file` names
// it in errors ("grid.csv:12:7: unterminated quoted field ...").
Result<CsvTable> ParseCsv(std::string_view data, std::string_view file);
Result<CsvTable> ParseCsv(std::string_view data, std::string_view file, const CsvRules& rules);

struct GridOptions {
  std::string command_template;  // empty: use the `command` column
  int chunk = 1;                 // rows per unit, >= 1
};

// Builds the units of a grid, in row order, each with its content hash. `file` names the grid
// in errors.
Result<std::vector<UnitSpec>> BuildUnits(const CsvTable& table, const GridOptions& options,
                                         std::string_view file);

// POSIX shell single-quoting: abc -> 'abc', it's -> 'it'\''s'. Any byte string (spaces,
// quotes, $(...), backticks, ;, newlines, globs) comes out as one literal word.
std::string ShellQuote(std::string_view value);

// One CSV field, quoted only where needed, for `controller list --csv` (rows that `enqueue`
// accepts again). Records are written with LF line ends, which ParseCsv accepts.
std::string CsvEscape(std::string_view field);

}  // namespace spotgrid
