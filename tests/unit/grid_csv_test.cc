// ParseCsv: the RFC 4180 dialect of grids and every way a file is rejected, with the exact
// line and column each error names.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "grid.h"

namespace spotgrid {
namespace {

using Rows = std::vector<std::vector<std::string>>;

CsvTable Parse(std::string_view csv) {
  auto table = ParseCsv(csv, "g.csv");
  EXPECT_TRUE(table.ok()) << table.error().ToString();
  return table.ok() ? std::move(table.value()) : CsvTable{};
}

Rows Fields(const CsvTable& table) {
  Rows rows;
  for (const CsvRecord& r : table.records) rows.push_back(r.fields);
  return rows;
}

std::vector<int> Lines(const CsvTable& table) {
  std::vector<int> lines;
  for (const CsvRecord& r : table.records) lines.push_back(r.line);
  return lines;
}

// Passes when parsing fails with InvalidInput, the message starts with "g.csv:<where>: " and
// contains `reason`.
::testing::AssertionResult RejectedAt(std::string_view csv, std::string_view where,
                                      std::string_view reason) {
  auto table = ParseCsv(csv, "g.csv");
  if (table.ok()) return ::testing::AssertionFailure() << "parsed without error";
  const Error& e = table.error();
  if (e.category != ErrorCategory::kInvalidInput) {
    return ::testing::AssertionFailure() << "category " << ToString(e.category);
  }
  const std::string prefix = "g.csv:" + std::string(where) + ": ";
  if (e.message.rfind(prefix, 0) != 0 || e.message.find(reason) == std::string::npos) {
    return ::testing::AssertionFailure() << "message \"" << e.message << "\" does not start with \""
                                         << prefix << "\" or lacks \"" << reason << "\"";
  }
  return ::testing::AssertionSuccess();
}

// --- accepted input -------------------------------------------------------------------------

TEST(GridCsv, ParsesHeaderAndRecordsWithLfLineEnds) {
  CsvTable t = Parse("a,b\n1,2\n3,4\n");
  EXPECT_EQ(t.header, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.header_line, 1);
  EXPECT_EQ(Fields(t), (Rows{{"1", "2"}, {"3", "4"}}));
  EXPECT_EQ(Lines(t), (std::vector<int>{2, 3}));
}

TEST(GridCsv, CrlfLineEndsGiveTheSameTableAsLf) {
  CsvTable lf = Parse("a,b\n1,2\n3,4\n");
  CsvTable crlf = Parse("a,b\r\n1,2\r\n3,4\r\n");
  EXPECT_EQ(crlf.header, lf.header);
  EXPECT_EQ(Fields(crlf), Fields(lf));
  EXPECT_EQ(Lines(crlf), Lines(lf));
}

TEST(GridCsv, MixedAndLoneCrLineEndsEndRecords) {
  CsvTable t = Parse("a,b\r1,2\r\n3,4\n5,6");
  EXPECT_EQ(Fields(t), (Rows{{"1", "2"}, {"3", "4"}, {"5", "6"}}));
  EXPECT_EQ(Lines(t), (std::vector<int>{2, 3, 4}));
}

TEST(GridCsv, FinalLineEndIsOptional) {
  EXPECT_EQ(Fields(Parse("a\nx\ny")), (Rows{{"x"}, {"y"}}));
  EXPECT_EQ(Fields(Parse("a\r\nx\r\ny")), (Rows{{"x"}, {"y"}}));
}

TEST(GridCsv, Utf8ByteOrderMarkIsSkipped) {
  CsvTable t = Parse("\xEF\xBB\xBFid,v\n1,x\n");
  EXPECT_EQ(t.header, (std::vector<std::string>{"id", "v"}));
  EXPECT_EQ(Fields(t), (Rows{{"1", "x"}}));
}

TEST(GridCsv, ByteOrderMarkIsNotCountedInColumns) {
  EXPECT_TRUE(
      RejectedAt("\xEF\xBB\xBF"
                 "a,a\n1,2\n",
                 "1:3", "duplicate column name \"a\""));
}

TEST(GridCsv, ByteOrderMarkOnlyAtTheStartIsSkipped) {
  // Later in the file U+FEFF is an ordinary character of a value.
  EXPECT_EQ(Fields(Parse("a\n\xEF\xBB\xBFx\n")), (Rows{{"\xEF\xBB\xBFx"}}));
}

TEST(GridCsv, QuotedFieldKeepsCommasAndDoubledQuotes) {
  CsvTable t = Parse("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n\"\",\"\"\"\"\n");
  EXPECT_EQ(Fields(t), (Rows{{"x, y", "say \"hi\""}, {"", "\""}}));
}

TEST(GridCsv, QuotedFieldKeepsLfCrAndCrlfAsIs) {
  CsvTable t = Parse("v\n\"a\nb\"\n\"c\rd\"\n\"e\r\nf\"\n");
  EXPECT_EQ(Fields(t), (Rows{{"a\nb"}, {"c\rd"}, {"e\r\nf"}}));
}

TEST(GridCsv, QuotedLineBreaksShiftTheLinesOfLaterRecords) {
  CsvTable t = Parse("a,b\n\"1\n2\r\n3\",x\n4,\"y\rz\"\n5,w\n");
  EXPECT_EQ(Lines(t), (std::vector<int>{2, 5, 7}));
}

TEST(GridCsv, BlankLinesAreSkippedButCounted) {
  CsvTable t = Parse("\n\r\na,b\n\n1,2\r\n\r\n\n3,4\n\n");
  EXPECT_EQ(t.header_line, 3);
  EXPECT_EQ(Fields(t), (Rows{{"1", "2"}, {"3", "4"}}));
  EXPECT_EQ(Lines(t), (std::vector<int>{5, 8}));
}

TEST(GridCsv, QuotedEmptyValueIsARecordNotABlankLine) {
  EXPECT_EQ(Fields(Parse("a\n\"\"\nx\n")), (Rows{{""}, {"x"}}));
}

TEST(GridCsv, EmptyFieldsAndTrailingCommaAreEmptyValues) {
  EXPECT_EQ(Fields(Parse("a,b,c\n,,\n1,,\n,,3")),
            (Rows{{"", "", ""}, {"1", "", ""}, {"", "", "3"}}));
}

TEST(GridCsv, SpacesAroundValuesAreKept) {
  EXPECT_EQ(Fields(Parse("a,b\n x , y\n")), (Rows{{" x ", " y"}}));
}

TEST(GridCsv, AcceptsMultiByteUtf8AtTheEdgesOfTheValidRanges) {
  // U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF, in and out of quotes.
  const std::string values =
      "\xC2\x80,\xDF\xBF,\xE0\xA0\x80,\xED\x9F\xBF,\xEE\x80\x80,\xEF\xBF\xBF,"
      "\"\xF0\x90\x80\x80\",\"\xF4\x8F\xBF\xBF\"";
  CsvTable t = Parse("a,b,c,d,e,f,g,h\n" + values + "\n");
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].fields[6], "\xF0\x90\x80\x80");
  EXPECT_EQ(t.records[0].fields[7], "\xF4\x8F\xBF\xBF");
}

TEST(GridCsv, ColumnNamesMayUseLettersDigitsAndUnderscores) {
  EXPECT_EQ(Parse("_x,A1,abc_DEF_9\n1,2,3\n").header,
            (std::vector<std::string>{"_x", "A1", "abc_DEF_9"}));
}

TEST(GridCsv, ColumnNamesAreCaseSensitive) {
  EXPECT_EQ(Parse("a,A\n1,2\n").header, (std::vector<std::string>{"a", "A"}));
}

TEST(GridCsv, ParsesALargeGridCompletely) {
  std::string csv = "id,x,command\n";
  for (int i = 0; i < 100000; ++i) {
    csv += "u" + std::to_string(i) + ",\"v, " + std::to_string(i) + "\",echo " + std::to_string(i) +
           "\n";
  }
  CsvTable t = Parse(csv);
  ASSERT_EQ(t.records.size(), 100000u);
  EXPECT_EQ(t.records[99999].fields,
            (std::vector<std::string>{"u99999", "v, 99999", "echo 99999"}));
  EXPECT_EQ(t.records[99999].line, 100001);
}

// --- rejected input: structure ----------------------------------------------------------------

TEST(GridCsv, RejectsAnEmptyFile) {
  EXPECT_TRUE(RejectedAt("", "1:1", "empty file"));
  EXPECT_TRUE(RejectedAt("\xEF\xBB\xBF", "1:1", "empty file"));
  EXPECT_TRUE(RejectedAt("\n\r\n\n", "4:1", "empty file"));
}

TEST(GridCsv, RejectsAHeaderWithoutDataRows) {
  EXPECT_TRUE(RejectedAt("a,b\n", "2:1", "no data rows"));
  EXPECT_TRUE(RejectedAt("a,b", "1:4", "no data rows"));
  EXPECT_TRUE(RejectedAt("a,b\r\n\r\n\n", "4:1", "no data rows"));
}

TEST(GridCsv, RejectsAnUnterminatedQuotedFieldWhereItStarts) {
  EXPECT_TRUE(
      RejectedAt("a,b\n1,2\nx,\"never closed\n3,4\n5,6\n", "3:3", "unterminated quoted field"));
  EXPECT_TRUE(RejectedAt("\"a\n", "1:1", "unterminated quoted field"));
}

TEST(GridCsv, RejectsAQuoteInsideAnUnquotedField) {
  EXPECT_TRUE(RejectedAt("a,b\n1,ab\"c\"\n", "2:5", "quote inside an unquoted field"));
  EXPECT_TRUE(RejectedAt("a,b\n1, \"x\"\n", "2:4", "quote inside an unquoted field"));
}

TEST(GridCsv, RejectsCharactersAfterAClosingQuote) {
  EXPECT_TRUE(RejectedAt("a,b\n1,\"x\"y\n", "2:6",
                         "character after the closing quote of a quoted field (opened at 2:3)"));
  EXPECT_TRUE(RejectedAt("a,b\n1,\"x\" \n", "2:6", "character after the closing quote"));
  // A field that spans lines: the position is on the line of the closing quote.
  EXPECT_TRUE(RejectedAt("a,b\n1,\"x\nyz\"!\n", "3:4", "(opened at 2:3)"));
}

TEST(GridCsv, RejectsARowWithTooManyFieldsAtTheFirstExtraField) {
  EXPECT_TRUE(
      RejectedAt("a,b\n1,2\n3,4,5,6\n", "3:5", "data row 2 has 4 fields, the header has 2"));
}

TEST(GridCsv, RejectsARowWithTooFewFieldsWhereItEnds) {
  EXPECT_TRUE(
      RejectedAt("a,b,c\n1,2,3\n4,5\n", "3:4", "data row 2 has 2 fields, the header has 3"));
  EXPECT_TRUE(
      RejectedAt("a,b,c\n1,2,3\r\n4\r\n", "3:2", "data row 2 has 1 fields, the header has 3"));
  EXPECT_TRUE(RejectedAt("a,b,c\n1,2", "2:4", "data row 1 has 2 fields"));
}

TEST(GridCsv, RaggedRowErrorNamesThePhysicalLineAfterQuotedLineBreaks) {
  // Data row 2 starts on line 3, and its quoted value spans to line 5, where it ends short.
  EXPECT_TRUE(RejectedAt("a,b,c\n1,2,3\n4,\"x\ny\nz\"\n", "5:3",
                         "data row 2 has 2 fields, the header has 3"));
}

TEST(GridCsv, RejectsAnEmptyColumnName) {
  EXPECT_TRUE(RejectedAt("a,,b\n1,2,3\n", "1:3", "empty column name (field 2 of the header)"));
  EXPECT_TRUE(RejectedAt("a,b,\n1,2,3\n", "1:5", "empty column name (field 3 of the header)"));
  EXPECT_TRUE(RejectedAt("a,\"\"\n1,2\n", "1:3", "empty column name"));
}

TEST(GridCsv, RejectsADuplicateColumnName) {
  EXPECT_TRUE(RejectedAt("x,y,x\n1,2,3\n", "1:5",
                         "duplicate column name \"x\" (fields 1 and 3 of the header)"));
}

TEST(GridCsv, RejectsAColumnNameThatCannotBeAnEnvironmentVariable) {
  const char* kRule =
      "cannot be an environment variable name: column names must match "
      "[A-Za-z_][A-Za-z0-9_]*";
  EXPECT_TRUE(RejectedAt("a,my col\n1,2\n", "1:3", kRule));
  EXPECT_TRUE(RejectedAt("a,1x\n1,2\n", "1:3", kRule));
  EXPECT_TRUE(RejectedAt("a,x-y\n1,2\n", "1:3", kRule));
  EXPECT_TRUE(RejectedAt("a, b\n1,2\n", "1:3", kRule));
  EXPECT_TRUE(RejectedAt("a,\xC3\xA9t\xC3\xA9\n1,2\n", "1:3", kRule));
  EXPECT_TRUE(RejectedAt("\"a\nb\",c\n1,2\n", "1:1", "column name \"a\\nb\""));
}

TEST(GridCsv, RejectsANulByte) {
  EXPECT_TRUE(RejectedAt(std::string_view("a,b\n1,x\0y\n", 10), "2:4", "NUL byte"));
  EXPECT_TRUE(RejectedAt(std::string_view("a,b\n1,\"x\ny\0\"\n", 13), "3:2", "NUL byte"));
}

// --- rejected input: encoding -------------------------------------------------------------------

TEST(GridCsv, RejectsUtf16) {
  EXPECT_TRUE(RejectedAt(std::string_view("\xFF\xFE"
                                          "a\0\n\0",
                                          6),
                         "1:1", "UTF-16"));
  EXPECT_TRUE(RejectedAt(std::string_view("\xFE\xFF\0a\0\n", 6), "1:1", "UTF-16"));
}

TEST(GridCsv, RejectsALoneContinuationByte) {
  EXPECT_TRUE(RejectedAt("a,b\n1,x\x80y\n", "2:4", "invalid UTF-8: a continuation byte"));
}

TEST(GridCsv, RejectsLatin1Text) {
  // "café" saved as Latin-1: E9 followed by a line end is a truncated sequence.
  EXPECT_TRUE(RejectedAt("a\ncaf\xE9\n", "2:4", "invalid UTF-8: truncated multi-byte sequence"));
}

TEST(GridCsv, RejectsOverlongEncodings) {
  EXPECT_TRUE(RejectedAt("a\n\xC0\xAF\n", "2:1", "overlong encoding (bytes C0 AF)"));
  EXPECT_TRUE(RejectedAt("a\n\xC1\xBF\n", "2:1", "overlong encoding"));
  EXPECT_TRUE(RejectedAt("a\nx\xE0\x80\xAF\n", "2:2", "overlong encoding (bytes E0 80 AF)"));
  EXPECT_TRUE(RejectedAt("a\n\"\xF0\x80\x80\xAF\"\n", "2:2", "overlong encoding"));
}

TEST(GridCsv, RejectsEncodedSurrogates) {
  EXPECT_TRUE(RejectedAt("a\n\xED\xA0\x80\n", "2:1", "surrogate"));
  EXPECT_TRUE(RejectedAt("a\n\"z\xED\xBF\xBF\"\n", "2:3", "surrogate"));
}

TEST(GridCsv, RejectsCodePointsAboveTheUnicodeRange) {
  EXPECT_TRUE(RejectedAt("a\n\xF4\x90\x80\x80\n", "2:1", "above U+10FFFF"));
  EXPECT_TRUE(RejectedAt("a\n\xF5\x80\x80\x80\n", "2:1", "never occurs in UTF-8"));
  EXPECT_TRUE(RejectedAt("a\n\xFF\n", "2:1", "never occurs in UTF-8"));
}

TEST(GridCsv, RejectsATruncatedSequence) {
  EXPECT_TRUE(RejectedAt("a\nx\xE2\x82", "2:2", "truncated multi-byte sequence"));
  EXPECT_TRUE(RejectedAt("a\n\xF0\x9F\x98,b\n", "2:1", "truncated multi-byte sequence"));
}

TEST(GridCsv, InvalidUtf8ColumnCountsCharactersNotBytes) {
  // Two 2-byte and one 4-byte characters precede the bad byte on its line.
  EXPECT_TRUE(RejectedAt("a,b\n\xC3\xA9\xC3\xA9,\xF0\x9F\x98\x80\xFF\n", "2:5", "invalid UTF-8"));
}

TEST(GridCsv, InvalidUtf8InsideAQuotedFieldNamesItsOwnLine) {
  EXPECT_TRUE(RejectedAt("a,b\n1,\"first\r\nse\xC0\x80\"\n", "3:3", "overlong encoding"));
}

TEST(GridCsv, RelaxedRulesAcceptAnyColumnNamesAndNoRows) {
  // For CSV files that are not grids, e.g. result files merged by `controller results`.
  const CsvRules relaxed{.grid_column_names = false, .require_data_rows = false};
  auto t = ParseCsv("val-loss,,accuracy (%),val-loss\n", "r.csv", relaxed);
  ASSERT_TRUE(t.ok()) << t.error().ToString();
  EXPECT_EQ(t->header, (std::vector<std::string>{"val-loss", "", "accuracy (%)", "val-loss"}));
  EXPECT_TRUE(t->records.empty());
}

TEST(GridCsv, RelaxedRulesStillRejectMalformedCsv) {
  const CsvRules relaxed{.grid_column_names = false, .require_data_rows = false};
  auto ragged = ParseCsv("a b,c\n1\n", "r.csv", relaxed);
  ASSERT_FALSE(ragged.ok());
  EXPECT_EQ(ragged.error().message, "r.csv:2:2: data row 1 has 1 fields, the header has 2");
  auto binary = ParseCsv(std::string_view("a\n\0\n", 4), "r.csv", relaxed);
  ASSERT_FALSE(binary.ok());
  EXPECT_EQ(binary.error().message.rfind("r.csv:2:1: NUL byte", 0), 0u);
}

TEST(GridCsv, ErrorsUseTheGivenFileName) {
  auto t = ParseCsv("a\n", "/data/runs/grid 1.csv");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().message,
            "/data/runs/grid 1.csv:2:1: no data rows: the file has a header "
            "but no records");
}

}  // namespace
}  // namespace spotgrid
