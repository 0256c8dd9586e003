// Shorthands for declaring verb options (OptionSpec has five fields; most verbs need three).
#pragma once

#include <string>

#include "cli.h"

namespace spotgrid {

inline OptionSpec ValueOption(std::string name, std::string value_name, std::string help,
                              bool repeatable = false) {
  return OptionSpec{std::move(name), std::move(value_name), std::move(help), repeatable, ""};
}

inline OptionSpec FlagOption(std::string name, std::string help) {
  return OptionSpec{std::move(name), "", std::move(help), false, ""};
}

// --job J, as every per-job verb declares it.
inline OptionSpec JobOption() {
  return ValueOption("job", "J", "the job (default: the stack's only or most recent job)");
}

}  // namespace spotgrid
