// ShellQuote and CsvEscape, and the security property they exist for: a grid value reaches
// the command as literal text, whatever shell syntax it contains, when the command runs
// under /bin/sh as the agent runs it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "grid.h"

namespace spotgrid {
namespace {

struct ShellRun {
  int exit_code = -1;
  std::string out;
};

// Runs `command` with /bin/sh -c in `dir`, as the agent does, and captures stdout.
ShellRun RunShell(const std::string& command, const std::string& dir) {
  ShellRun run;
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    ADD_FAILURE() << "pipe: " << errno;
    return run;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    if (chdir(dir.c_str()) != 0) _exit(126);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  char buf[4096];
  for (;;) {
    const ssize_t n = read(pipe_fds[0], buf, sizeof buf);
    if (n > 0) {
      run.out.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

class ShellQuoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/spotgrid-shell-quote-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> FilesInDir() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

  std::string dir_;
};

TEST(ShellQuote, WrapsInSingleQuotes) {
  EXPECT_EQ(ShellQuote("abc"), "'abc'");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b\n$x"), "'a b\n$x'");
}

TEST(ShellQuote, EscapesSingleQuotesOutsideTheQuotedString) {
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("''"), "''\\'''\\'''");
}

TEST_F(ShellQuoteTest, ShellSyntaxInValuesReachesTheCommandAsLiteralText) {
  const std::string marker = dir_ + "/pwned";
  const std::vector<std::string> values = {
      "two words",
      "it's",
      "say \"hi\"",
      "$(touch " + marker + ")",
      "`touch " + marker + "`",
      "; touch " + marker,
      "a && touch " + marker + " || touch " + marker,
      "| touch " + marker,
      "> " + marker,
      "line one\nline two\ntouch " + marker,
      "crlf\r\nend",
      "*",
      "/*/*",
      "~",
      "$HOME ${HOME} $0 $1 $$ $?",
      "\\n \\ \\\\ \\'",
      "'\"'\"'",
      "'; touch " + marker + "; echo '",
      "\"; touch " + marker + "; echo \"",
      "{a,b} [x] !! #comment",
      "\t leading and trailing \t",
      "-n",
      "",
      "caf\xC3\xA9 \xF0\x9F\x98\x80",
  };
  std::string csv = "id,v\n";
  for (size_t i = 0; i < values.size(); ++i) {
    csv += "r" + std::to_string(i) + "," + CsvEscape(values[i]) + "\n";
  }
  auto table = ParseCsv(csv, "g.csv");
  ASSERT_TRUE(table.ok()) << table.error().ToString();
  auto units = BuildUnits(*table, GridOptions{"printf '%s\\n' {v}", 1}, "g.csv");
  ASSERT_TRUE(units.ok()) << units.error().ToString();
  ASSERT_EQ(units->size(), values.size());

  for (size_t i = 0; i < values.size(); ++i) {
    const GridRow& row = (*units)[i].rows.at(0);
    ASSERT_EQ(row.params.at(1).second, values[i]);
    const ShellRun run = RunShell(row.command, dir_);
    EXPECT_EQ(run.exit_code, 0) << row.command;
    EXPECT_EQ(run.out, values[i] + "\n") << row.command;
  }
  struct stat st;
  EXPECT_NE(stat(marker.c_str(), &st), 0) << "a value was executed: " << marker << " exists";
  EXPECT_TRUE(FilesInDir().empty()) << "a value created a file in the working directory";
}

TEST_F(ShellQuoteTest, QuotedValueIsOneArgument) {
  auto table = ParseCsv("a,b\n\"x y\",\"*  z\"\n", "g.csv");
  ASSERT_TRUE(table.ok());
  auto units = BuildUnits(*table, GridOptions{"printf '[%s]' {a} {b}", 1}, "g.csv");
  ASSERT_TRUE(units.ok());
  const ShellRun run = RunShell((*units)[0].rows[0].command, dir_);
  EXPECT_EQ(run.out, "[x y][*  z]");
}

TEST(CsvEscape, LeavesPlainFieldsAlone) {
  EXPECT_EQ(CsvEscape("abc"), "abc");
  EXPECT_EQ(CsvEscape(" a b "), " a b ");
}

TEST(CsvEscape, QuotesFieldsWithSeparatorsQuotesAndLineBreaks) {
  EXPECT_EQ(CsvEscape("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvEscape("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvEscape("a\nb"), "\"a\nb\"");
  EXPECT_EQ(CsvEscape("a\rb"), "\"a\rb\"");
}

TEST(CsvEscape, QuotesAnEmptyFieldSoAOneColumnRowIsNotABlankLine) {
  EXPECT_EQ(CsvEscape(""), "\"\"");
}

TEST(CsvEscape, WrittenRowsParseBackToTheSameValues) {
  const std::vector<std::string> values = {"", "plain", "a,b", "\"", "x\r\ny", "\n", " , "};
  std::string csv = "v\n";
  for (const std::string& v : values) csv += CsvEscape(v) + "\n";
  auto table = ParseCsv(csv, "list.csv");
  ASSERT_TRUE(table.ok()) << table.error().ToString();
  ASSERT_EQ(table->records.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(table->records[i].fields[0], values[i]);
}

}  // namespace
}  // namespace spotgrid
