#include "shell_context.h"

namespace spotgrid {
namespace {

bool StartsWord(char prev) {
  switch (prev) {
    case ' ': case '\t': case '\n': case ';': case '&': case '|': case '(': case ')':
    case '<': case '>':
      return true;
    default:
      return false;
  }
}

}  // namespace

bool ShellLexer::InCode() const {
  if (frames_.empty()) return true;
  switch (Top()) {
    case Frame::kBacktick:
    case Frame::kSubst:
    case Frame::kParam:
    case Frame::kArith:
    case Frame::kTest:
      return true;
    default:
      return false;
  }
}

void ShellLexer::Feed(std::string_view text) {
  for (char c : text) Step(c);
}

void ShellLexer::AfterPlaceholder() {
  prev_ = 'a';
  dollar_ = false;
  paren_ = false;
  closing_ = false;
  less_run_ = 0;
}

void ShellLexer::Step(char c) {
  if (escaped_) {  // the escaped character is literal, whatever it is
    escaped_ = false;
    prev_ = 'a';
    return;
  }
  if (!frames_.empty()) {
    switch (Top()) {
      case Frame::kSingle:
        if (c == '\'') frames_.pop_back(), depths_.pop_back();
        return;
      case Frame::kAnsiC:
        if (c == '\\') escaped_ = true;
        if (c == '\'') frames_.pop_back(), depths_.pop_back();
        return;
      case Frame::kComment:
        if (c == '\n') {
          frames_.pop_back(), depths_.pop_back();
          prev_ = '\n';
        }
        return;
      default:
        break;
    }
  }

  const bool after_dollar = dollar_;
  dollar_ = false;
  if (!frames_.empty() && Top() == Frame::kDouble) {
    if (after_dollar && c == '(') {
      frames_.push_back(Frame::kSubst), depths_.push_back(0);
    } else if (after_dollar && c == '{') {
      frames_.push_back(Frame::kParam), depths_.push_back(0);
    } else if (c == '\\') {
      escaped_ = true;
    } else if (c == '"') {
      frames_.pop_back(), depths_.pop_back();
      prev_ = 'a';
    } else if (c == '`') {
      frames_.push_back(Frame::kBacktick), depths_.push_back(0);
    } else if (c == '$') {
      dollar_ = true;
    }
    return;
  }

  // Outside quotes: at the top, or inside a substitution, expansion or test.
  const bool after_paren = paren_;
  const bool after_closing = closing_;
  paren_ = false;
  closing_ = false;
  if (c == '<') {
    if (++less_run_ == 2) heredoc_ = true;
    if (less_run_ == 3) heredoc_ = false;  // <<< is a here-string: a word, quoted like any
    prev_ = c;
    return;
  }
  less_run_ = 0;
  if (after_dollar && c == '(') {
    frames_.push_back(Frame::kSubst), depths_.push_back(0);
    prev_ = '(';
    return;
  }
  if (after_dollar && c == '{') {
    frames_.push_back(Frame::kParam), depths_.push_back(0);
    return;
  }
  if (after_dollar && c == '\'') {
    frames_.push_back(Frame::kAnsiC), depths_.push_back(0);
    return;
  }
  const Frame top = frames_.empty() ? Frame::kComment : Top();  // kComment: "at the top"
  const bool at_top = frames_.empty();
  switch (c) {
    case '\\':
      escaped_ = true;
      return;
    case '\'':
      frames_.push_back(Frame::kSingle), depths_.push_back(0);
      return;
    case '"':
      frames_.push_back(Frame::kDouble), depths_.push_back(0);
      return;
    case '`':
      if (!at_top && top == Frame::kBacktick) {
        frames_.pop_back(), depths_.pop_back();
      } else {
        frames_.push_back(Frame::kBacktick), depths_.push_back(0);
      }
      prev_ = 'a';
      return;
    case '$':
      dollar_ = true;
      prev_ = 'a';
      return;
    case '#':
      if (StartsWord(prev_)) {
        frames_.push_back(Frame::kComment), depths_.push_back(0);
        return;
      }
      break;
    case '(':
      if (!at_top && (top == Frame::kSubst || top == Frame::kArith)) {
        ++depths_.back();
      } else if (after_paren) {
        // "((" opens an arithmetic command (conservatively also "( (" is not told apart).
        frames_.push_back(Frame::kArith), depths_.push_back(0);
        prev_ = '(';
        return;
      } else {
        paren_ = true;
      }
      break;
    case ')':
      if (!at_top && top == Frame::kSubst) {
        if (depths_.back() == 0) {
          frames_.pop_back(), depths_.pop_back();
          prev_ = 'a';
          return;
        }
        --depths_.back();
      } else if (!at_top && top == Frame::kArith) {
        if (depths_.back() > 0) {
          --depths_.back();
        } else if (after_closing) {
          frames_.pop_back(), depths_.pop_back();
          prev_ = 'a';
          return;
        } else {
          closing_ = true;
        }
      }
      break;
    case '[':
      if (prev_ == '[' && (at_top || top != Frame::kTest) &&
          StartsWord(prev2_)) {
        frames_.push_back(Frame::kTest), depths_.push_back(0);
        prev_ = 'a';
        return;
      }
      break;
    case ']':
      if (!at_top && top == Frame::kTest) {
        if (after_closing) {
          frames_.pop_back(), depths_.pop_back();
          prev_ = 'a';
          return;
        }
        closing_ = true;
      }
      break;
    case '}':
      if (!at_top && top == Frame::kParam) {
        frames_.pop_back(), depths_.pop_back();
        prev_ = 'a';
        return;
      }
      break;
    default:
      break;
  }
  prev2_ = prev_;
  prev_ = c;
}

std::optional<ShellContext> ShellLexer::Context(std::string* why_not) const {
  auto refuse = [&](const char* reason) -> std::optional<ShellContext> {
    if (why_not != nullptr) *why_not = reason;
    return std::nullopt;
  };
  if (escaped_) {
    return refuse("it follows a backslash, which would escape the quote the value is written in");
  }
  if (heredoc_ || less_run_ == 2) {
    return refuse("it follows a here-document operator (<<): a here-document's text cannot be "
                  "quoted");
  }
  for (Frame frame : frames_) {
    switch (frame) {
      case Frame::kComment:
        return refuse("it is in a comment, which a line break in the value would end");
      case Frame::kBacktick:
        return refuse("it is inside `...`, whose text the shell reads again as a command");
      case Frame::kSubst:
        return refuse("it is inside $(...) or $((...)), whose text the shell reads again as a "
                      "command or an arithmetic expression");
      case Frame::kParam:
        return refuse("it is inside ${...}, whose text is a parameter expansion, not a word");
      case Frame::kAnsiC:
        return refuse("it is inside $'...', where backslashes in the value would be escapes");
      case Frame::kArith:
        return refuse("it is inside ((...)), which evaluates the value as an arithmetic "
                      "expression (and runs the substitutions it names)");
      case Frame::kTest:
        return refuse("it is inside [[...]], whose arithmetic comparisons evaluate the value as "
                      "an expression");
      default:
        break;
    }
  }
  if (dollar_) {
    return refuse("it follows a $, which would make the value's quoting part of an expansion");
  }
  if (frames_.empty()) return ShellContext::kBare;
  return Top() == Frame::kSingle ? ShellContext::kSingleQuoted : ShellContext::kDoubleQuoted;
}

std::string ShellLexer::EndProblem() const {
  for (Frame frame : frames_) {
    switch (frame) {
      case Frame::kSingle:
      case Frame::kAnsiC:
        return "a single quote is never closed";
      case Frame::kDouble:
        return "a double quote is never closed";
      case Frame::kBacktick:
        return "a ` is never closed";
      case Frame::kSubst:
        return "a $( is never closed";
      case Frame::kParam:
        return "a ${ is never closed";
      default:
        break;  // ((, [[ and comments: the shell's own business
    }
  }
  return "";
}

void AppendForShell(ShellContext context, std::string_view value, std::string* out) {
  // Inside single quotes everything is literal but the quote itself, written as '\'' (close,
  // an escaped quote, reopen).
  auto single_quoted_body = [&] {
    for (char c : value) {
      if (c == '\'') {
        *out += "'\\''";
      } else {
        *out += c;
      }
    }
  };
  switch (context) {
    case ShellContext::kBare:
      *out += '\'';
      single_quoted_body();
      *out += '\'';
      break;
    case ShellContext::kSingleQuoted:
      single_quoted_body();
      break;
    case ShellContext::kDoubleQuoted:
      *out += "\"'";
      single_quoted_body();
      *out += "'\"";
      break;
  }
}

}  // namespace spotgrid
