// Grids: a CSV file (RFC 4180) turned into work units.
//
// The first row is the header. Values are UTF-8; fields may be quoted ("a, b", "say ""hi""",
// embedded newlines), lines end in LF or CRLF, and a UTF-8 BOM is skipped. A unit's command
// is the `command` column, or a template whose {column} placeholders are replaced by the
// row's values shell-quoted, so a value can never be executed as shell syntax. Every row's
// values also reach the command as environment variables. An `id` column names the units;
// otherwise the 1-based data-row number does. --chunk N puts N consecutive rows in one unit.
//
// Errors name file, line and column and what was expected; nothing is half-built: a grid is
// either entirely valid or rejected.
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
  std::vector<CsvRecord> records;  // data rows, header excluded
};

// Parses and validates a whole CSV document. `file` names it in errors
// ("grid.csv:12:7: unterminated quoted field").
Result<CsvTable> ParseCsv(std::string_view data, std::string_view file);

struct GridOptions {
  std::string command_template;  // empty: use the `command` column
  int chunk = 1;
};

// Builds the units of a grid (ids checked for uniqueness and safety: [A-Za-z0-9._-]{1,128},
// not "." or ".."), with each unit's content hash.
Result<std::vector<UnitSpec>> BuildUnits(const CsvTable& table, const GridOptions& options,
                                         std::string_view file);

// POSIX shell single-quoting: abc -> 'abc', it's -> 'it'\''s'.
std::string ShellQuote(std::string_view value);

// One CSV field, quoted only where needed, for `controller list --csv` (rows that `enqueue`
// accepts again). Records are written with LF line ends, which ParseCsv accepts.
std::string CsvEscape(std::string_view field);

}  // namespace spotgrid
