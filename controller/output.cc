#include "output.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace spotgrid {
namespace {

// Display width of a UTF-8 string: code points, which is right for the ids and values we
// print (no wide or combining characters are expected in a table cell).
std::size_t DisplayWidth(const std::string& text) {
  std::size_t width = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++width;
  }
  return width;
}

}  // namespace

std::string FormatCount(std::int64_t value) {
  const bool negative = value < 0;
  std::string digits = std::to_string(negative ? -value : value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return negative ? "-" + out : out;
}

std::string FormatDuration(std::chrono::seconds duration) {
  long long s = std::max<long long>(0, duration.count());
  char buffer[64];
  if (s < 60) {
    std::snprintf(buffer, sizeof(buffer), "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buffer, sizeof(buffer), "%lldm %02llds", s / 60, s % 60);
  } else if (s < 86400) {
    std::snprintf(buffer, sizeof(buffer), "%lldh %02lldm", s / 3600, (s % 3600) / 60);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%lldd %02lldh", s / 86400, (s % 86400) / 3600);
  }
  return buffer;
}

std::string FormatAge(Clock::WallTime then, Clock::WallTime now) {
  auto delta = std::chrono::duration_cast<std::chrono::seconds>(now - then);
  if (delta.count() < 0) return "in " + FormatDuration(-delta);
  return FormatDuration(delta) + " ago";
}

std::string FormatUsd(double usd) {
  char buffer[64];
  if (usd != 0 && std::fabs(usd) < 0.01) {
    std::snprintf(buffer, sizeof(buffer), "$%.4f", usd);
  } else {
    std::snprintf(buffer, sizeof(buffer), "$%.2f", usd);
  }
  return buffer;
}

std::string FormatPercent(std::int64_t part, std::int64_t whole) {
  char buffer[32];
  double pct = whole > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
  std::snprintf(buffer, sizeof(buffer), "%.1f%%", pct);
  return buffer;
}

TextTable::TextTable(std::vector<std::string> header) : header_(std::move(header)) {}

void TextTable::AddRow(std::vector<std::string> row) {
  row.resize(header_.size());
  rows_.push_back(std::move(row));
}

std::string TextTable::Render() const {
  std::vector<std::size_t> widths(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - DisplayWidth(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  emit(header_);
  for (const auto& row : rows_) emit(row);
  return out;
}

std::string S3Url(const std::string& bucket, const std::string& key) {
  return "s3://" + bucket + "/" + key;
}

}  // namespace spotgrid
