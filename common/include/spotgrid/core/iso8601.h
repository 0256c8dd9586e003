// ISO 8601 UTC timestamps, as AWS writes them in JSON credentials, IMDS notices and the Query
// protocols ("2017-05-17T15:09:54Z"), and as spotgrid stores them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "spotgrid/core/clock.h"

namespace spotgrid {

// "2024-05-01T12:00:00Z" (whole seconds, UTC).
std::string FormatIso8601(Clock::WallTime time);

// Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)"; nullopt for anything else. AWS
// timestamps always carry a zone, so a missing one is refused rather than guessed. Parsed by
// hand: strptime depends on the locale.
std::optional<Clock::WallTime> ParseIso8601(std::string_view text);

}  // namespace spotgrid
