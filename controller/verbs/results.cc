// controller results --out DIR: downloads every succeeded unit's output/ to DIR/UNIT/...,
// several objects in flight, skipping files already present and identical. --merge
// concatenates each unit's CSV result into one CSV led by the unit id and its parameters.
//
// Keys come from S3, which anyone with write access to the bucket controls, so a key is
// turned into a path only after checking it cannot leave DIR: no absolute path, no "." or ".."
// component, no empty component, and no symbolic link on the way down.

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include "grid.h"
#include "job_selection.h"
#include "output.h"
#include "spotgrid/core/digest.h"
#include "spotgrid/core/file_io.h"
#include "spotgrid/core/parallel_for.h"
#include "spotgrid/core/safe_path.h"
#include "spotgrid/services/s3_client.h"
#include "verb_options.h"
#include "verbs/verbs.h"

namespace spotgrid {
namespace {

namespace fs = std::filesystem;

constexpr int kConcurrency = 8;

struct UnitOutputs {
  const UnitRecord* unit = nullptr;
  std::vector<S3ListedObject> objects;
};

struct Download {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;
  fs::path path;
};

// DIR/<unit>/<relative> for the object key's part below output/, or an error when the
// relative key could escape DIR (see spotgrid/core/safe_path.h). Creates the parent directories.
Result<fs::path> SafePath(const fs::path& root, const std::string& unit,
                          const std::string& relative) {
  const std::string what = "refusing S3 key '" + relative + "' of unit " + unit + ": ";
  if (unit.empty() || unit == "." || unit == ".." || unit.find('/') != std::string::npos) {
    return Error::InvalidInput(what + "unsafe unit id");
  }
  auto path = SafePathUnder(root, unit + "/" + relative);
  if (!path.ok()) {
    Error error = path.error();
    if (error.category == ErrorCategory::kInvalidInput) error.message = what + error.message;
    return error;
  }
  return path;
}

// The ETag as an MD5 when it is one (single-part uploads); "" for multipart ETags ("...-3").
std::string PlainMd5(std::string etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  if (etag.size() != 32) return "";
  for (char& c : etag) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
  }
  return etag;
}

bool AlreadyThere(const Download& download) {
  std::error_code ec;
  auto status = fs::symlink_status(download.path, ec);
  if (ec || !fs::is_regular_file(status)) return false;
  if (fs::file_size(download.path, ec) != download.size || ec) return false;
  const std::string md5 = PlainMd5(download.etag);
  if (md5.empty()) return true;
  auto local = Md5HexOfFile(download.path.string());
  return local.ok() && *local == md5;
}

std::string CsvLine(const std::vector<std::string>& fields) {
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + CsvEscape(fields[i]);
  line += '\n';
  return line;
}

struct MergeStats {
  std::int64_t rows = 0;
  std::vector<std::string> missing;  // succeeded units without a result file
};

// Concatenates DIR/<unit>/<result_file> of every unit into `merge_path` (written beside it
// and renamed into place, so a failed merge never leaves half a file).
Result<MergeStats> Merge(const std::vector<UnitOutputs>& units, const fs::path& root,
                         const std::string& result_file, const JobRecord& job,
                         const fs::path& merge_path) {
  std::vector<std::string> params;
  for (const std::string& column : job.spec.columns) {
    if (column != "command" && column != "unit") params.push_back(column);
  }
  MergeStats stats;
  std::optional<std::vector<std::string>> header;
  std::string first_unit;
  std::string body;
  for (const UnitOutputs& entry : units) {
    const UnitRecord& unit = *entry.unit;
    fs::path path = root / unit.spec.id / result_file;
    std::error_code ec;
    if (!fs::is_regular_file(fs::symlink_status(path, ec))) {
      stats.missing.push_back(unit.spec.id);
      continue;
    }
    auto data = ReadFile(path, "read result file");
    if (!data.ok()) return data.error();
    if (data->empty()) continue;
    // A result file is any CSV: its column names need not be environment variable names,
    // and a header without rows is a unit that found nothing.
    auto table = ParseCsv(*data, path.string(),
                          CsvRules{.grid_column_names = false, .require_data_rows = false});
    if (!table.ok()) return table.error();
    if (!header) {
      header = table->header;
      first_unit = unit.spec.id;
    } else if (table->header != *header) {
      return Error::InvalidInput("unit " + unit.spec.id + ": the header of " + result_file +
                                 " differs from unit " + first_unit + "'s; cannot merge");
    }
    // Chunked units run several rows; the leading columns carry the first row's values.
    std::vector<std::string> lead = {unit.spec.id};
    for (const std::string& column : params) {
      std::string value;
      if (!unit.spec.rows.empty()) {
        for (const auto& [name, v] : unit.spec.rows.front().params) {
          if (name == column) value = v;
        }
      }
      lead.push_back(value);
    }
    for (const CsvRecord& record : table->records) {
      std::vector<std::string> fields = lead;
      fields.insert(fields.end(), record.fields.begin(), record.fields.end());
      body += CsvLine(fields);
      ++stats.rows;
    }
  }
  std::vector<std::string> head = {"unit"};
  head.insert(head.end(), params.begin(), params.end());
  if (header) head.insert(head.end(), header->begin(), header->end());
  if (Status written = WriteFileAtomically(merge_path, CsvLine(head) + body, std::nullopt,
                                           "write merged results");
      !written.ok()) {
    return written.error();
  }
  return stats;
}

int RunResults(const Args& args, Controller& controller) {
  const std::string out_dir = args.GetOr("out", "");
  if (out_dir.empty()) return ReportError(controller, Error::InvalidInput("--out DIR is required"));
  const std::string result_file = args.GetOr("result-file", "result.csv");
  if (result_file.empty() || result_file.find('/') != std::string::npos || result_file == "." ||
      result_file == "..") {
    return ReportError(controller, Error::InvalidInput("--result-file '" + result_file +
                                                       "': expected a file name, no '/'"));
  }
  const bool json = args.Has("json");
  auto stack = OpenStack(args, controller);
  if (!stack.ok()) return ReportError(controller, stack.error());
  auto job = SelectJob(args, controller, *stack->ledger, stack->info, json);
  if (!job.ok()) return ReportError(controller, job.error());
  auto s3_result = controller.s3();
  if (!s3_result.ok()) return ReportError(controller, s3_result.error());
  S3& s3 = **s3_result;
  const StackInfo& info = stack->info;

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec && !fs::is_directory(out_dir)) {
    return ReportError(controller, Error::Io("mkdir", out_dir + ": " + ec.message()));
  }
  const fs::path root(out_dir);

  std::vector<UnitRecord> succeeded;
  Status listed = stack->ledger->ListUnits(
      job->spec.id, UnitState::kSucceeded, [&](const std::vector<UnitRecord>& page) {
        succeeded.insert(succeeded.end(), page.begin(), page.end());
        return true;
      });
  if (!listed.ok()) return ReportError(controller, listed);
  std::sort(succeeded.begin(), succeeded.end(),
            [](const UnitRecord& a, const UnitRecord& b) { return a.spec.id < b.spec.id; });

  // Phase 1: list each unit's output/ (one listing per unit, several at once).
  std::vector<UnitOutputs> units(succeeded.size());
  Status outputs_listed = ParallelForStatus(
      succeeded.size(), kConcurrency, OnError::kStopStarting, [&](std::size_t i) -> Status {
        units[i].unit = &succeeded[i];
        ListObjectsOptions options;
        options.prefix = OutputPrefix(info, job->spec.id, succeeded[i].spec.id);
        auto listing = s3.ListObjects(info.bucket, options);
        if (!listing.ok()) return listing.error();
        units[i].objects = std::move(listing->objects);
        return Status::Ok();
      });
  if (!outputs_listed.ok()) return ReportError(controller, outputs_listed.error());

  std::vector<Download> downloads;
  for (const UnitOutputs& entry : units) {
    const std::string prefix = OutputPrefix(info, job->spec.id, entry.unit->spec.id);
    for (const S3ListedObject& object : entry.objects) {
      if (object.key.size() <= prefix.size() || object.key.back() == '/') continue;  // folders
      auto path = SafePath(root, entry.unit->spec.id, object.key.substr(prefix.size()));
      if (!path.ok()) return ReportError(controller, path.error());
      downloads.push_back({object.key, object.size, object.etag, std::move(*path)});
    }
  }

  // Phase 2: download what is missing or different.
  std::atomic<std::int64_t> done{0}, fetched{0}, skipped{0}, failed{0};
  std::atomic<std::uint64_t> bytes{0};
  std::mutex mu;
  std::vector<std::string> failures;
  {
    ProgressBar bar(controller, "results", static_cast<std::int64_t>(downloads.size()), !json);
    ParallelFor(downloads.size(), kConcurrency, [&](std::size_t i) {
      const Download& d = downloads[i];
      if (AlreadyThere(d)) {
        ++skipped;
      } else if (Status status = s3.GetObjectToFile(info.bucket, d.key, d.path.string());
                 status.ok()) {
        ++fetched;
        bytes += d.size;
      } else {
        ++failed;
        std::lock_guard<std::mutex> lock(mu);
        failures.push_back(S3Url(info.bucket, d.key) + ": " + status.error().ToString());
      }
      bar.Update(++done);
    });
    bar.Finish();
  }
  for (const std::string& failure : failures) {
    std::fprintf(controller.err(), "controller: download failed: %s\n", failure.c_str());
  }

  std::optional<MergeStats> merged;
  if (auto merge_path = args.Get("merge")) {
    auto stats = Merge(units, root, result_file, *job, fs::path(*merge_path));
    if (!stats.ok()) return ReportError(controller, stats.error());
    merged = std::move(*stats);
    for (const std::string& unit : merged->missing) {
      std::fprintf(controller.err(), "controller: unit %s has no %s; left out of %s\n",
                   unit.c_str(), result_file.c_str(), merge_path->c_str());
    }
  }

  if (json) {
    nlohmann::json summary = {{"job", job->spec.id},          {"out", out_dir},
                              {"units", succeeded.size()},    {"files", downloads.size()},
                              {"downloaded", fetched.load()}, {"skipped", skipped.load()},
                              {"failed", failed.load()},      {"bytes", bytes.load()}};
    if (merged) {
      summary["merge"] = {
          {"file", *args.Get("merge")}, {"rows", merged->rows}, {"missing", merged->missing}};
    }
    std::fprintf(controller.out(), "%s\n", summary.dump().c_str());
  } else {
    std::fprintf(controller.out(),
                 "%s succeeded units: %s files downloaded (%s bytes), %s already present, "
                 "%s failed, in %s\n",
                 FormatCount(static_cast<std::int64_t>(succeeded.size())).c_str(),
                 FormatCount(fetched).c_str(),
                 FormatCount(static_cast<std::int64_t>(bytes)).c_str(),
                 FormatCount(skipped).c_str(), FormatCount(failed).c_str(), out_dir.c_str());
    if (merged) {
      std::fprintf(controller.out(), "merged %s rows into %s\n", FormatCount(merged->rows).c_str(),
                   args.Get("merge")->c_str());
    }
  }
  return failed > 0 ? kExitFailure : kExitOk;
}

}  // namespace

Verb ResultsVerb() {
  Verb verb;
  verb.spec.name = "results";
  verb.spec.summary = "download the outputs of succeeded units";
  verb.spec.options = {
      ValueOption("out", "DIR", "where to put them: DIR/UNIT/<file under output/>"),
      JobOption(),
      ValueOption("merge", "FILE.csv",
                  "also concatenate each unit's CSV result into FILE.csv, led by the unit and its "
                  "parameters"),
      ValueOption("result-file", "NAME",
                  "the result file of each unit for --merge (default result.csv)"),
      FlagOption("json", "a JSON summary"),
  };
  verb.spec.details =
      "Files already present with the same size (and the same MD5 when S3 reports one) are "
      "not downloaded again, so rerunning after new units finished fetches only theirs.";
  verb.run = RunResults;
  return verb;
}

}  // namespace spotgrid
