// Durations as people type them on a command line or in a configuration file: "90" or "90s"
// (seconds), "15m", "2h", "1d". One parser for the controller's options and the agent's
// settings, so both accept exactly the same spellings.
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace spotgrid {

// Whole non-negative seconds, minutes, hours or days with at most one unit suffix; nullopt
// when malformed ("", "h", "1.5h", "-3s", "5w", " 5s") or longer than a year, a bound no
// setting needs and which keeps every product far from overflowing.
std::optional<std::chrono::seconds> ParseDuration(std::string_view text);

}  // namespace spotgrid
