// The quoting context of a placeholder in a shell command line, and how a value is written
// there so that the shell sees exactly the value.
//
// A --command template is shell text with {column} placeholders. ShellLexer reads the text
// between placeholders as POSIX sh and bash both would, far enough to know, at each
// placeholder, whether it stands bare, inside '...' or inside "...":
//   bare      x{v}y  ->  x'value'y           (single-quoted; ' written as '\'')
//   '...'     'a{v}b' -> 'avalueb'           (still single-quoted; ' written as '\'')
//   "..."     "a{v}b" -> "a"'value'"b"       (the double quotes closed around it)
// Every byte but NUL then reaches the command as it is: newlines, quotes, backslashes, $,
// backticks, non-ASCII. Places where no quoting is safe are refused with the reason:
// inside `...`, $(...), $((...)), ${...}, $'...', ((...)) or [[...]] (each evaluates the text
// again: a value would be code there), in a comment, after a here-document operator, right
// after a backslash or a $ (they would apply to the quote the placeholder opens), or where
// a quote is left open at the end.
//
// What a command does with its arguments is its own: `eval {v}` or `sh -c {v}` run the value
// because the template says so.
//
// Thread-safety: values; a ShellLexer is used by one thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace spotgrid {

enum class ShellContext { kBare, kSingleQuoted, kDoubleQuoted };

class ShellLexer {
 public:
  // Reads more of the command line (the literal text up to the next placeholder).
  void Feed(std::string_view text);
  // The context of a placeholder at the current point, or why a value cannot be made safe
  // there (as a sentence fragment: "it is inside $(...), which ...").
  std::optional<ShellContext> Context(std::string* why_not) const;
  // After a placeholder's value: it is part of a word, like a letter.
  void AfterPlaceholder();
  // What is wrong with the line if it ended here ("" when nothing).
  std::string EndProblem() const;

 private:
  enum class Frame {
    kSingle,       // '...'
    kDouble,       // "..."
    kAnsiC,        // $'...' (bash)
    kBacktick,     // `...`
    kSubst,        // $(...) and $((...))
    kParam,        // ${...}
    kArith,        // ((...)) as a command
    kTest,         // [[ ... ]]
    kComment,      // # to the end of the line
  };
  void Step(char c);
  bool InCode() const;  // bare text at some level (top or inside a substitution)
  Frame Top() const { return frames_.back(); }

  std::vector<Frame> frames_;
  std::vector<int> depths_;  // per frame: open parentheses (kSubst, kArith) or brackets
  bool escaped_ = false;     // the last character was an unquoted (or "...") backslash
  bool dollar_ = false;      // the last character was a $ that may start an expansion
  bool heredoc_ = false;     // a << was seen outside quotes
  int less_run_ = 0;         // consecutive < outside quotes (2: a here-document, 3: <<<)
  bool paren_ = false;       // the last character was a ( of a subshell or group
  bool closing_ = false;     // a ) or ] that may end ((...)) or [[...]] with the next one
  char prev_ = ' ';          // the previous character outside quotes (word starts)
  char prev2_ = ' ';         // ... and the one before it
};

// Appends `value` written for `context`.
void AppendForShell(ShellContext context, std::string_view value, std::string* out);

}  // namespace spotgrid
