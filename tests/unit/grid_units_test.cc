// BuildUnits: commands from the `command` column or a template, parameters, unit ids, chunks
// and content hashes, and every way a grid is rejected with the line it names.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grid.h"

namespace spotgrid {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

std::vector<UnitSpec> Build(std::string_view csv, std::string command_template = "",
                            int chunk = 1) {
  auto table = ParseCsv(csv, "g.csv");
  EXPECT_TRUE(table.ok()) << table.error().ToString();
  if (!table.ok()) return {};
  auto units = BuildUnits(*table, GridOptions{std::move(command_template), chunk}, "g.csv");
  EXPECT_TRUE(units.ok()) << units.error().ToString();
  return units.ok() ? std::move(units.value()) : std::vector<UnitSpec>{};
}

std::vector<std::string> Ids(const std::vector<UnitSpec>& units) {
  std::vector<std::string> ids;
  for (const UnitSpec& u : units) ids.push_back(u.id);
  return ids;
}

// The error BuildUnits gives for a grid that parses; "" (and a test failure) otherwise.
std::string BuildError(std::string_view csv, std::string command_template = "", int chunk = 1) {
  auto table = ParseCsv(csv, "g.csv");
  if (!table.ok()) {
    ADD_FAILURE() << "does not parse: " << table.error().ToString();
    return "";
  }
  auto units = BuildUnits(*table, GridOptions{std::move(command_template), chunk}, "g.csv");
  if (units.ok()) {
    ADD_FAILURE() << "built without error";
    return "";
  }
  EXPECT_EQ(units.error().category, ErrorCategory::kInvalidInput);
  return units.error().message;
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }
bool Contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// --- commands ---------------------------------------------------------------------------------

TEST(GridUnits, CommandColumnIsTheCommandVerbatimAndNotAParameter) {
  auto units = Build("x,command\n1,\"echo \"\"$x\"\" | wc -c\"\n");
  ASSERT_EQ(units.size(), 1u);
  ASSERT_EQ(units[0].rows.size(), 1u);
  EXPECT_EQ(units[0].rows[0].command, "echo \"$x\" | wc -c");
  EXPECT_EQ(units[0].rows[0].params, (Params{{"x", "1"}}));
}

TEST(GridUnits, TemplateReplacesPlaceholdersWithShellQuotedValues) {
  auto units = Build("a,b\nfoo,it's here\n", "run --a {a} --b={b}");
  ASSERT_EQ(units.size(), 1u);
  EXPECT_EQ(units[0].rows[0].command, "run --a 'foo' --b='it'\\''s here'");
}

TEST(GridUnits, TemplatePlaceholdersMayRepeatAndTouch) {
  auto units = Build("a,b\n1,2\n", "{a}{b}{a}");
  EXPECT_EQ(units[0].rows[0].command, "'1''2''1'");
}

TEST(GridUnits, TemplateDoubledBracesAreLiteralBraces) {
  auto units = Build("f\nin.txt\n", "awk '{{print $1}}' {f} > ${{HOME}}/out }}{{");
  EXPECT_EQ(units[0].rows[0].command, "awk '{print $1}' 'in.txt' > ${HOME}/out }{");
}

TEST(GridUnits, TemplateQuotesEmptyValuesAsAnEmptyWord) {
  auto units = Build("a,b\n,x\n", "cmd {a} {b}");
  EXPECT_EQ(units[0].rows[0].command, "cmd '' 'x'");
}

TEST(GridUnits, WithATemplateTheCommandColumnIsAnOrdinaryParameter) {
  auto units = Build("id,command,x\nr1,train,0.5\n", "python run.py {command} {x}");
  ASSERT_EQ(units.size(), 1u);
  EXPECT_EQ(units[0].rows[0].command, "python run.py 'train' '0.5'");
  EXPECT_EQ(units[0].rows[0].params, (Params{{"id", "r1"}, {"command", "train"}, {"x", "0.5"}}));
}

TEST(GridUnits, ParamsAreEveryColumnButTheCommandInColumnOrderIdIncluded) {
  auto units = Build("z,command,id,a\n26,run,u1,\"x,y\"\n");
  EXPECT_EQ(units[0].rows[0].params, (Params{{"z", "26"}, {"id", "u1"}, {"a", "x,y"}}));
}

TEST(GridUnits, RowLineIsTheLineWhereItsRecordStarts) {
  auto units = Build("v,command\n\"a\nb\",x\n\n\"c\r\nd\",y\nz,w\n");
  ASSERT_EQ(units.size(), 3u);
  EXPECT_EQ(units[0].rows[0].line, 2);
  EXPECT_EQ(units[1].rows[0].line, 5);
  EXPECT_EQ(units[2].rows[0].line, 7);
}

// --- ids --------------------------------------------------------------------------------------

TEST(GridUnits, IdsComeFromTheIdColumn) {
  EXPECT_EQ(Ids(Build("id,command\nalpha,a\nb.2,b\nC_3-x,c\n")),
            (std::vector<std::string>{"alpha", "b.2", "C_3-x"}));
}

TEST(GridUnits, IdsAreOneBasedDataRowNumbersWithoutAnIdColumn) {
  // Blank lines and the header are not rows; a quoted line break does not make one.
  EXPECT_EQ(Ids(Build("command\n\na\n\"b\nc\"\n\nd\n")), (std::vector<std::string>{"1", "2", "3"}));
}

TEST(GridUnits, RejectsADuplicateIdNamingBothLines) {
  EXPECT_EQ(BuildError("id,command\na,x\nb,y\n\"a\",z\n"),
            "g.csv:4: duplicate unit id \"a\" (first at line 2)");
}

TEST(GridUnits, DuplicateErrorNamesTheFirstRepeatInTheFile) {
  // "z" sorts after "a", but its repeat comes first in the file.
  EXPECT_EQ(BuildError("id,command\nz,1\na,2\nz,3\na,4\n"),
            "g.csv:4: duplicate unit id \"z\" (first at line 2)");
  EXPECT_EQ(BuildError("id,command\nx,1\nx,2\nx,3\n"),
            "g.csv:3: duplicate unit id \"x\" (first at line 2)");
}

TEST(GridUnits, RejectsADuplicateIdInsideAChunk) {
  // Only "a" would name a unit, but every row id must be unique: it names the row.
  EXPECT_TRUE(StartsWith(BuildError("id,command\na,x\nb,y\nb,z\n", "", 3),
                         "g.csv:4: duplicate unit id \"b\" (first at line 3)"));
}

TEST(GridUnits, RejectsUnsafeIds) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\"\"", "\"\""},
      {".", "\".\""},
      {"..", "\"..\""},
      {"a/b", "\"a/b\""},
      {"a b", "\"a b\""},
      {"\"a\nb\"", "\"a\\nb\""},
      {"caf\xC3\xA9", "\"caf\xC3\xA9\""},
      {"x*", "\"x*\""},
      {"\"a,b\"", "\"a,b\""},
      {std::string(129, 'x'), ""},
  };
  for (const auto& [cell, shown] : cases) {
    const std::string message = BuildError("id,command\nok,x\n" + cell + ",y\n");
    EXPECT_TRUE(StartsWith(message, "g.csv:3: unit id " + shown)) << message;
    EXPECT_TRUE(Contains(message,
                         "is not safe: ids must be 1 to 128 characters from A-Z a-z "
                         "0-9 . _ - and not \".\" or \"..\""))
        << message;
  }
}

TEST(GridUnits, AcceptsIdsAtTheEdgesOfTheSafeSet) {
  const std::string longest(128, 'z');
  EXPECT_EQ(Ids(Build("id,command\n...,a\n-,b\n_,c\n.x,d\n" + longest + ",e\n")),
            (std::vector<std::string>{"...", "-", "_", ".x", longest}));
}

TEST(GridUnits, UnsafeIdMessageEscapesControlCharactersAndCutsLongIds) {
  const std::string message = BuildError("id,command\n\"" + std::string(200, 'q') + "\r\",x\n");
  EXPECT_TRUE(Contains(message, "\"" + std::string(64, 'q') + "...\"")) << message;
  EXPECT_FALSE(Contains(message, "\r"));
}

// --- chunks -----------------------------------------------------------------------------------

TEST(GridUnits, ChunkGroupsConsecutiveRowsAndNamesTheUnitAfterItsFirstRow) {
  auto units = Build("command\na\nb\nc\nd\ne\n", "", 2);
  EXPECT_EQ(Ids(units), (std::vector<std::string>{"1", "3", "5"}));
  ASSERT_EQ(units.size(), 3u);
  EXPECT_EQ(units[0].rows.size(), 2u);
  EXPECT_EQ(units[1].rows.size(), 2u);
  EXPECT_EQ(units[2].rows.size(), 1u);  // the last chunk holds the rest
  EXPECT_EQ(units[1].rows[0].command, "c");
  EXPECT_EQ(units[1].rows[1].command, "d");
  EXPECT_EQ(units[1].rows[1].line, 5);
}

TEST(GridUnits, ChunkUnitIdIsTheFirstRowsIdColumnValue) {
  auto units = Build("id,command\np,a\nq,b\nr,c\n", "", 2);
  EXPECT_EQ(Ids(units), (std::vector<std::string>{"p", "r"}));
  EXPECT_EQ(units[0].rows[1].params, (Params{{"id", "q"}}));
}

TEST(GridUnits, ChunkLargerThanTheGridMakesOneUnit) {
  auto units = Build("command\na\nb\n", "", 1000000);
  ASSERT_EQ(units.size(), 1u);
  EXPECT_EQ(units[0].rows.size(), 2u);
}

TEST(GridUnits, RejectsAChunkBelowOne) {
  EXPECT_EQ(BuildError("command\na\n", "", 0), "--chunk must be at least 1 (got 0)");
  EXPECT_EQ(BuildError("command\na\n", "", -3), "--chunk must be at least 1 (got -3)");
}

// --- command errors -----------------------------------------------------------------------------

TEST(GridUnits, RejectsAGridWithNeitherCommandColumnNorTemplate) {
  EXPECT_EQ(BuildError("\nid,x\na,1\n"),
            "g.csv:2: no command: the header has no \"command\" column and no --command "
            "template was given");
}

TEST(GridUnits, RejectsAnEmptyCommandCellNamingItsLine) {
  EXPECT_EQ(BuildError("x,command\n1,a\n\"2\n\",\n3,c\n"),
            "g.csv:3: empty command (the \"command\" field of data row 2 is blank)");
}

TEST(GridUnits, RejectsABlankCommandCell) {
  EXPECT_TRUE(StartsWith(BuildError("x,command\n1,\" \t\r\n \"\n"), "g.csv:2: empty command"));
}

TEST(GridUnits, RejectsAnUnknownPlaceholderNamingItsCharacter) {
  EXPECT_EQ(BuildError("a,b\n1,2\n", "run {a} {c}"),
            "g.csv:1: --command template, character 9: unknown placeholder {c}: the grid has "
            "no such column (columns: a, b); write {{ and }} for literal braces");
}

TEST(GridUnits, RejectsAShellBraceThatLooksLikeAPlaceholder) {
  EXPECT_TRUE(StartsWith(BuildError("a\n1\n", "echo ${HOME} {a}"),
                         "g.csv:1: --command template, character 7: unknown placeholder {HOME}"));
  EXPECT_TRUE(StartsWith(BuildError("a\n1\n", "x {}"),
                         "g.csv:1: --command template, character 3: unknown placeholder {}"));
}

TEST(GridUnits, TemplateErrorsNameTheHeaderLine) {
  EXPECT_TRUE(StartsWith(BuildError("\n\n\na\n1\n", "{b}"),
                         "g.csv:4: --command template, character 1: unknown placeholder {b}"));
}

TEST(GridUnits, RejectsAnUnterminatedBrace) {
  EXPECT_EQ(BuildError("a\n1\n", "run {a} {a"),
            "g.csv:1: --command template, character 9: unterminated '{': a placeholder is "
            "{column}; write {{ for a literal brace");
}

TEST(GridUnits, TemplateCharacterPositionsCountCharactersNotBytes) {
  EXPECT_TRUE(StartsWith(BuildError("a\n1\n", "\xC3\xA9\xC3\xA9 {a"),
                         "g.csv:1: --command template, character 4: unterminated '{'"));
}

TEST(GridUnits, RejectsALoneClosingBrace) {
  EXPECT_EQ(BuildError("a\n1\n", "echo {a} }"),
            "g.csv:1: --command template, character 10: lone '}': write }} for a literal brace");
}

TEST(GridUnits, RejectsABlankTemplate) {
  EXPECT_TRUE(StartsWith(BuildError("a\n1\n", "  \t"),
                         "g.csv:1: --command template, character 1: the template is blank"));
}

TEST(GridUnits, RejectsARaggedHandBuiltTable) {
  CsvTable table;
  table.header = {"a", "command"};
  table.records.push_back({7, {"x"}});
  auto units = BuildUnits(table, {}, "t.csv");
  ASSERT_FALSE(units.ok());
  EXPECT_EQ(units.error().message, "t.csv:7: data row 1 has 1 fields, the header has 2");
}

// --- content hashes ---------------------------------------------------------------------------

std::string HashOf(std::string_view csv, std::string command_template = "", int chunk = 1) {
  auto units = Build(csv, std::move(command_template), chunk);
  return units.empty() ? "" : units[0].content_sha256;
}

TEST(GridUnits, ContentHashIsLowercaseHexSha256) {
  const std::string h = HashOf("command\na\n");
  ASSERT_EQ(h.size(), 64u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(GridUnits, IdenticalGridsGiveIdenticalHashes) {
  const std::string csv = "id,x,command\na,1,run 1\nb,\"2\n3\",run 2\n";
  auto first = Build(csv);
  auto second = Build(csv);
  ASSERT_EQ(first.size(), 2u);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(first[0].content_sha256, second[0].content_sha256);
  EXPECT_EQ(first[1].content_sha256, second[1].content_sha256);
  EXPECT_NE(first[0].content_sha256, first[1].content_sha256);
}

TEST(GridUnits, HashIgnoresLineEndsBomAndBlankLinesOutsideValues) {
  // The same rows on other lines: a row moved in the file is still the same unit.
  const std::string base = HashOf("x,command\n1,a\n");
  EXPECT_EQ(HashOf("\xEF\xBB\xBFx,command\r\n\r\n\r\n1,a"), base);
}

TEST(GridUnits, HashChangesWithTheCommand) {
  EXPECT_NE(HashOf("x,command\n1,a\n"), HashOf("x,command\n1,b\n"));
  EXPECT_NE(HashOf("x\n1\n", "run {x}"), HashOf("x\n1\n", "run  {x}"));
}

TEST(GridUnits, HashChangesWithAValueOrAColumnName) {
  const std::string base = HashOf("id,x,command\nu,1,a\n");
  EXPECT_NE(HashOf("id,x,command\nu,2,a\n"), base);
  EXPECT_NE(HashOf("id,y,command\nu,1,a\n"), base);
  EXPECT_NE(HashOf("id,x,command\nu,1 ,a\n"), base);
  EXPECT_NE(HashOf("id,x,command\nu,\"1\r\n\",a\n"), HashOf("id,x,command\nu,\"1\n\",a\n"));
}

TEST(GridUnits, HashSeparatesValuesUnambiguously) {
  // The same bytes split differently between names, values and rows.
  EXPECT_NE(HashOf("a,b,command\nxy,,c\n"), HashOf("a,b,command\nx,y,c\n"));
  EXPECT_NE(HashOf("a,b,command\n\"x=1:y\",,c\n"), HashOf("a,b,command\nx,1:y,c\n"));
  EXPECT_NE(HashOf("command\n\"a\nrow 1:b 0\"\n"), HashOf("command\na\nb\n", "", 2));
}

TEST(GridUnits, HashCoversEveryRowOfAChunk) {
  const std::string base = HashOf("command\na\nb\n", "", 2);
  EXPECT_NE(HashOf("command\na\nc\n", "", 2), base);
  EXPECT_NE(HashOf("command\na\n", "", 2), base);
  EXPECT_NE(HashOf("command\nb\na\n", "", 2), base);
}

TEST(GridUnits, ContentHashFormatIsStable) {
  // Stored hashes of existing jobs are compared on every re-enqueue: a change to the canonical
  // form would report every row as changed. Expected value from
  //   printf "spotgrid-unit-v1\nrow 8:echo '1' 2 2:id=2:u1 1:x=1:1\n" | sha256sum
  EXPECT_EQ(HashOf("id,x\nu1,1\n", "echo {x}"),
            "b59fb86abbf57873be0d3c64893b1e041276de67e37bb7079a4156cca1e23938");
}

TEST(GridUnits, BuildsEveryRowOfALargeGrid) {
  std::string csv = "id,x\n";
  for (int i = 0; i < 100000; ++i) csv += "u" + std::to_string(i) + "," + std::to_string(i) + "\n";
  auto units = Build(csv, "echo {x}", 7);
  ASSERT_EQ(units.size(), 14286u);  // ceil(100000 / 7)
  EXPECT_EQ(units.back().id, "u99995");
  EXPECT_EQ(units.back().rows.size(), 5u);
  EXPECT_EQ(units.back().rows.back().command, "echo '99999'");
  std::set<std::string> hashes;
  for (const UnitSpec& u : units) hashes.insert(u.content_sha256);
  EXPECT_EQ(hashes.size(), units.size());
}

}  // namespace
}  // namespace spotgrid
