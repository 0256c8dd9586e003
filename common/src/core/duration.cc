#include "spotgrid/core/duration.h"

#include <charconv>
#include <system_error>

namespace spotgrid {

std::optional<std::chrono::seconds> ParseDuration(std::string_view text) {
  constexpr long long kMaxSeconds = 365LL * 86400;
  long long unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 's':
        unit = 1;
        text.remove_suffix(1);
        break;
      case 'm':
        unit = 60;
        text.remove_suffix(1);
        break;
      case 'h':
        unit = 3600;
        text.remove_suffix(1);
        break;
      case 'd':
        unit = 86400;
        text.remove_suffix(1);
        break;
      default:
        break;
    }
  }
  if (text.empty()) return std::nullopt;
  long long value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value < 0 || value > kMaxSeconds / unit) {
    return std::nullopt;
  }
  return std::chrono::seconds(value * unit);
}

}  // namespace spotgrid
