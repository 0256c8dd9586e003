// Placeholders in a --command template: the quoting context the shell lexer finds at each, the
// places it refuses, and the property the quoting exists for: thousands of random values
// (every byte but NUL, weighted towards quotes, backslashes, $, backticks, newlines and
// non-ASCII) reach the command exactly, bare, inside '...', inside "..." and glued to text,
// under both /bin/sh (dash) and bash; a marker file that an injected command would create
// never appears.
#include "shell_context.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "grid.h"
#include "support/child_process.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

// The context of a placeholder after `before`, or "refused: <reason>".
std::string ContextAfter(std::string_view before) {
  ShellLexer lexer;
  lexer.Feed(before);
  std::string why;
  std::optional<ShellContext> context = lexer.Context(&why);
  if (!context) return "refused: " + why;
  switch (*context) {
    case ShellContext::kBare:
      return "bare";
    case ShellContext::kSingleQuoted:
      return "single";
    case ShellContext::kDoubleQuoted:
      return "double";
  }
  return "?";
}

TEST(ShellLexer, FindsBareSingleAndDoubleQuotedContexts) {
  EXPECT_EQ(ContextAfter("run --x "), "bare");
  EXPECT_EQ(ContextAfter("run --x=a"), "bare");
  EXPECT_EQ(ContextAfter("run 'a b"), "single");
  EXPECT_EQ(ContextAfter("run \"a b"), "double");
  EXPECT_EQ(ContextAfter("run 'a' \"b\" c"), "bare");
  EXPECT_EQ(ContextAfter("run 'it\"s' \""), "double");
  EXPECT_EQ(ContextAfter("run \"it's\" '"), "single");
  EXPECT_EQ(ContextAfter("run \\' "), "bare");          // an escaped quote opens nothing
  EXPECT_EQ(ContextAfter("run \"a \\\" b"), "double");  // ... nor closes inside "..."
  EXPECT_EQ(ContextAfter("run 'a \\' "), "bare");       // no escapes inside '...'
  EXPECT_EQ(ContextAfter("echo $(date) "), "bare");    // a closed substitution
  EXPECT_EQ(ContextAfter("echo ${HOME}/"), "bare");
  EXPECT_EQ(ContextAfter("echo a#b "), "bare");        // # inside a word is no comment
  EXPECT_EQ(ContextAfter("cat <<< "), "bare");         // a here-string is a word
  EXPECT_EQ(ContextAfter("echo \"$(date)\" '"), "single");
  EXPECT_EQ(ContextAfter("(( 1 )) && echo "), "bare");
  EXPECT_EQ(ContextAfter("[[ -n x ]] && echo "), "bare");
  EXPECT_EQ(ContextAfter("echo $'a\\'b' "), "bare");
}

TEST(ShellLexer, RefusesPlacesWhereAValueWouldBeReadAgainAsCode) {
  EXPECT_EQ(ContextAfter("echo `"), "refused: it is inside `...`, whose text the shell reads "
                                    "again as a command");
  EXPECT_NE(ContextAfter("echo $(cat ").find("inside $(...)"), std::string::npos);
  EXPECT_NE(ContextAfter("echo \"$(cat '").find("inside $(...)"), std::string::npos);
  EXPECT_NE(ContextAfter("echo $(( 1 + ").find("inside $(...)"), std::string::npos);
  EXPECT_NE(ContextAfter("echo ${x:-").find("inside ${...}"), std::string::npos);
  EXPECT_NE(ContextAfter("echo $'").find("inside $'...'"), std::string::npos);
  EXPECT_NE(ContextAfter("(( x = ").find("inside ((...))"), std::string::npos);
  EXPECT_NE(ContextAfter("[[ 1 -eq ").find("inside [[...]]"), std::string::npos);
  EXPECT_NE(ContextAfter("run # ").find("comment"), std::string::npos);
  EXPECT_NE(ContextAfter("cat <<EOF\n").find("here-document"), std::string::npos);
  EXPECT_NE(ContextAfter("run \\").find("backslash"), std::string::npos);
  EXPECT_NE(ContextAfter("run \"\\").find("backslash"), std::string::npos);
  EXPECT_NE(ContextAfter("run $").find("follows a $"), std::string::npos);
  EXPECT_NE(ContextAfter("run \"$").find("follows a $"), std::string::npos);
  EXPECT_EQ(ContextAfter("run '$"), "single");  // literal inside '...'
}

TEST(ShellLexer, ACommentEndsAtTheLineBreak) {
  EXPECT_EQ(ContextAfter("# setup\nrun "), "bare");
}

std::string EndProblem(std::string_view text) {
  ShellLexer lexer;
  lexer.Feed(text);
  return lexer.EndProblem();
}

TEST(ShellLexer, NamesWhatIsLeftOpenAtTheEnd) {
  EXPECT_EQ(EndProblem("run 'a"), "a single quote is never closed");
  EXPECT_EQ(EndProblem("run \"a"), "a double quote is never closed");
  EXPECT_EQ(EndProblem("run $(a"), "a $( is never closed");
  EXPECT_EQ(EndProblem("run `a"), "a ` is never closed");
  EXPECT_EQ(EndProblem("run 'a' \"b\" $(c) `d` # 'e"), "");
}

// BuildUnits over a one-column grid whose values are `values`, with `command_template`.
Result<std::vector<UnitSpec>> BuildWith(const std::string& command_template,
                                        const std::vector<std::string>& values) {
  CsvTable table;
  table.header = {"v"};
  for (std::size_t i = 0; i < values.size(); ++i) {
    table.records.push_back(CsvRecord{static_cast<int>(i + 2), {values[i]}});
  }
  GridOptions options;
  options.command_template = command_template;
  return BuildUnits(table, options, "grid.csv");
}

TEST(CommandTemplate, RefusesAPlaceholderNoQuotingCanMakeSafeNamingItAndTheReason) {
  auto units = BuildWith("echo $(cat {v})", {"x"});
  ASSERT_FALSE(units.ok());
  EXPECT_EQ(units.error().category, ErrorCategory::kInvalidInput);
  EXPECT_EQ(units.error().message,
            "grid.csv:1: --command template, character 12: placeholder {v} cannot be quoted "
            "where it stands: it is inside $(...) or $((...)), whose text the shell reads "
            "again as a command or an arithmetic expression");
}

TEST(CommandTemplate, RefusesATemplateThatLeavesAQuoteOpen) {
  auto units = BuildWith("echo '{v}", {"x"});
  ASSERT_FALSE(units.ok());
  EXPECT_NE(units.error().message.find("a single quote is never closed"), std::string::npos);
}

TEST(CommandTemplate, WritesEachPlaceholderForItsContext) {
  auto units = BuildWith("run {v} '{v}' \"{v}\" x{v}y", {"it's"});
  ASSERT_TRUE(units.ok()) << units.error().ToString();
  EXPECT_EQ((*units)[0].rows[0].command,
            "run 'it'\\''s' 'it'\\''s' \"\"'it'\\''s'\"\" x'it'\\''s'y");
}

// The case that was wrong: a value inside quotes the template wrote used to close them.
TEST(CommandTemplate, AValueInsideTheTemplatesSingleQuotesStaysInsideThem) {
  auto units = BuildWith("echo '{v}'", {"a b; echo PWNED"});
  ASSERT_TRUE(units.ok()) << units.error().ToString();
  EXPECT_EQ((*units)[0].rows[0].command, "echo 'a b; echo PWNED'");
}

// --- the property ---

// Random values: lengths 0..40, bytes 1..255 drawn mostly from what shells treat specially.
std::vector<std::string> RandomValues(std::mt19937& rng, int count) {
  static const std::string special = "'\"\\$`\n\t ;|&()<>*?[]{}~#!%^=,-:@+";
  static const std::vector<std::string> nasty = {
      "$(touch MARK)", "`touch MARK`", "'; touch MARK; '", "\"; touch MARK; \"",
      "$(touch MARK)'\"", "\\", "'", "\"", "\\'", "\n", "${IFS}", "$'\\x41'", "é", "日本",
      "--", "-n", "-e", "*", "~", "#", "!x", "$((1+1))", "\"$(touch MARK)\""};
  std::uniform_int_distribution<int> length(0, 40), pick(0, 9), byte(1, 255);
  std::uniform_int_distribution<std::size_t> special_at(0, special.size() - 1),
      nasty_at(0, nasty.size() - 1);
  std::vector<std::string> values;
  for (int i = 0; i < count; ++i) {
    std::string value;
    const int n = length(rng);
    while (static_cast<int>(value.size()) < n) {
      const int kind = pick(rng);
      if (kind < 4) {
        value += special[special_at(rng)];
      } else if (kind < 6) {
        value += nasty[nasty_at(rng)];
      } else if (kind < 8) {
        value += static_cast<char>('a' + byte(rng) % 26);
      } else {
        value += static_cast<char>(byte(rng));  // any byte but NUL, UTF-8 or not
      }
    }
    values.push_back(std::move(value));
  }
  return values;
}

class QuotingPropertyTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("shell-context-test"); }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Runs `script` with `shell` in dir_ and returns what it printed.
  std::string Run(const std::string& shell, const std::string& script, const std::string& name) {
    const std::string path = dir_ + "/" + name + ".sh", out = dir_ + "/" + name + ".out";
    std::ofstream(path, std::ios::binary) << script;
    auto child = testing::ChildProcess::Start({{shell, path}, {}, {}, out, dir_});
    EXPECT_TRUE(child.ok()) << child.error().ToString();
    if (!child.ok()) return "";
    EXPECT_TRUE((*child)->Wait(std::chrono::seconds(60)));
    EXPECT_EQ((*child)->ExitCode(), 0);
    std::ifstream in(out, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
};

TEST_F(QuotingPropertyTest, EveryValueReachesTheCommandExactlyUnderDashAndBash) {
  struct Case {
    std::string name;
    std::string command_template;  // prints the value (in context) followed by a NUL
    std::string before, after;     // what the template adds around the value
    int repeat = 1;                // how often the value is printed in a row
  };
  const std::vector<Case> cases = {
      {"bare", "printf '%s\\000' {v}", "", ""},
      {"single", "printf '%s\\000' '{v}'", "", ""},
      {"double", "printf '%s\\000' \"{v}\"", "", ""},
      {"glued", "printf '%s\\000' x{v}y", "x", "y"},
      {"inside_single", "printf '%s\\000' 'a b{v}c d'", "a b", "c d"},
      {"inside_double", "printf '%s\\000' \"a $HOME{v}\"", "a ", ""},
      {"mixed", "printf '%s\\000' \"{v}\"'{v}'{v}", "", "", 3},
  };
  std::mt19937 rng(20261207);
  const std::vector<std::string> values = RandomValues(rng, 2000);
  const std::string home = "/nonexistent-home";
  int checked = 0;
  for (const Case& c : cases) {
    auto units = BuildWith(c.command_template, values);
    ASSERT_TRUE(units.ok()) << c.name << ": " << units.error().ToString();
    std::string script = "HOME=" + home + "\nexport LC_ALL=C\n";
    for (const UnitSpec& unit : *units) script += unit.rows[0].command + "\n";
    for (const std::string shell : {"/bin/sh", "/bin/bash"}) {
      const std::string name = c.name + (shell == "/bin/sh" ? "_dash" : "_bash");
      const std::string out = Run(shell, script, name);
      std::vector<std::string> printed;
      std::size_t start = 0;
      for (std::size_t at = out.find('\0'); at != std::string::npos; at = out.find('\0', start)) {
        printed.push_back(out.substr(start, at - start));
        start = at + 1;
      }
      ASSERT_EQ(printed.size(), values.size()) << name << ": see " << dir_;
      for (std::size_t i = 0; i < values.size(); ++i) {
        std::string expected;
        for (int r = 0; r < c.repeat; ++r) {
          expected += (c.name == "inside_double" ? c.before + home : c.before) + values[i] + c.after;
        }
        ASSERT_EQ(printed[i], expected) << name << " value #" << i << "; command: "
                                        << (*units)[i].rows[0].command;
        ++checked;
      }
      EXPECT_FALSE(std::filesystem::exists(dir_ + "/MARK")) << name << " ran injected code";
    }
  }
  EXPECT_EQ(checked, 2000 * 7 * 2);
}

}  // namespace
}  // namespace spotgrid
