// systemd's EnvironmentFile= format as the agent reads /etc/spotgrid/agent.env: every entry
// with the line it starts on, and errors that name the file and that line.
#include "agent/environment_file.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace spotgrid::agent {
namespace {

using Entries = std::vector<std::pair<std::string, std::string>>;

Entries Parse(const std::string& text) {
  auto entries = ParseEnvironmentFile(text, "agent.env");
  if (!entries.ok()) {
    ADD_FAILURE() << entries.error().ToString();
    return {};
  }
  Entries out;
  for (const EnvironmentFileEntry& entry : *entries) out.emplace_back(entry.key, entry.value);
  return out;
}

std::string ParseError(const std::string& text) {
  auto entries = ParseEnvironmentFile(text, "agent.env");
  if (entries.ok()) {
    ADD_FAILURE() << "parsed although it should have failed";
    return "";
  }
  EXPECT_EQ(entries.error().category, ErrorCategory::kInvalidInput);
  return entries.error().message;
}

TEST(EnvironmentFileTest, CommentsBlankLinesAndExportAreSkipped) {
  EXPECT_EQ(Parse("# a comment\n\n   ; another comment style\nexport A=1\nexport\tB=2\n"),
            (Entries{{"A", "1"}, {"B", "2"}}));
}

TEST(EnvironmentFileTest, BlanksAroundTheEqualsSignAndTrailingBlanksOfABareValueAreDropped) {
  EXPECT_EQ(Parse("A = x  \nB=\ty y\t\n"), (Entries{{"A", "x"}, {"B", "y y"}}));
}

TEST(EnvironmentFileTest, SingleQuotesAreLiteralAndKeepBlanks) {
  EXPECT_EQ(Parse("A=' padded '\nB='a\\$b\"c'\n"), (Entries{{"A", " padded "}, {"B", "a\\$b\"c"}}));
}

TEST(EnvironmentFileTest, DoubleQuotesUnescapeOnlyQuoteBackslashBacktickAndDollar) {
  EXPECT_EQ(Parse("A=\"q\\\" b\\\\ t\\` d\\$ n\\n\"\n"), (Entries{{"A", "q\" b\\ t` d$ n\\n"}}));
}

TEST(EnvironmentFileTest, BackslashEscapesInABareValueAndNewlineContinuesTheLine) {
  EXPECT_EQ(Parse("A=x\\ \nB=ex\\\nit\nC=\"on\\\ne\"\n"),
            (Entries{{"A", "x "}, {"B", "exit"}, {"C", "one"}}));
}

TEST(EnvironmentFileTest, CrlfFileReadsLikeAnLfOne) {
  EXPECT_EQ(Parse("A=1\r\nB='2'\r\n"), (Entries{{"A", "1"}, {"B", "2"}}));
}

TEST(EnvironmentFileTest, RepeatedKeysAreAllReturnedInFileOrder) {
  EXPECT_EQ(Parse("A=first\nA=second\n"), (Entries{{"A", "first"}, {"A", "second"}}));
}

TEST(EnvironmentFileTest, EntriesKnowTheLineTheyStartOn) {
  auto entries = ParseEnvironmentFile("# c\nA=1\nB=\"one\ntwo\"\nC=3\n", "agent.env");
  ASSERT_TRUE(entries.ok()) << entries.error().ToString();
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].line, 2);
  EXPECT_EQ((*entries)[1].line, 3);
  EXPECT_EQ((*entries)[2].line, 5);  // after the two lines of B's quoted value
}

TEST(EnvironmentFileTest, MalformedLinesNameTheFileAndTheLineTheEntryStartsOn) {
  EXPECT_EQ(ParseError("A=1\nSLOTS 4\n"), "agent.env:2: expected KEY=VALUE, got 'SLOTS 4'");
  EXPECT_EQ(ParseError("A=1\n\nB='grid\nC=2\n"), "agent.env:3: B: unterminated ' quote");
  EXPECT_EQ(ParseError("A=\"s\n"), "agent.env:1: A: unterminated \" quote");
  EXPECT_EQ(ParseError("1BAD=x\n"), "agent.env:1: '1BAD' is not a variable name");
  EXPECT_EQ(ParseError("A-B=x\n"), "agent.env:1: 'A-B' is not a variable name");
}

TEST(EnvironmentFileTest, EmptyTextHasNoEntries) {
  EXPECT_TRUE(Parse("").empty());
  EXPECT_TRUE(Parse("\n\n# only comments\n").empty());
}

}  // namespace
}  // namespace spotgrid::agent
