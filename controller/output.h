// Text formatting shared by the read-only verbs (progress, list, show, workers): counts with
// thousands separators, short durations and ages, dollars, and aligned text tables.
//
// Thread-safety: pure functions; a TextTable is used by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "spotgrid/core/clock.h"

namespace spotgrid {

// 1234567 -> "1,234,567".
std::string FormatCount(std::int64_t value);

// A duration as a person reads it: "45s", "12m 05s", "3h 12m", "2d 03h". Negative -> "0s".
std::string FormatDuration(std::chrono::seconds duration);

// "12s ago", "3h 12m ago"; a time in the future reads "in 5s".
std::string FormatAge(Clock::WallTime then, Clock::WallTime now);

// "$1.23"; below a cent with more digits ("$0.0042") so small runs do not read "$0.00".
std::string FormatUsd(double usd);

// "12.5%" of part in whole; "0.0%" when whole is 0.
std::string FormatPercent(std::int64_t part, std::int64_t whole);

// Columns padded to their widest cell, separated by two spaces; the last column is not padded.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header);
  void AddRow(std::vector<std::string> row);
  std::size_t rows() const { return rows_.size(); }
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// "s3://bucket/key".
std::string S3Url(const std::string& bucket, const std::string& key);

}  // namespace spotgrid
