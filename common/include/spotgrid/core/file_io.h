// Whole-file reads and crash-safe whole-file writes: the one home for both, so every caller
// reports a failure the same way (an Error of category kIo naming the operation and the path,
// or kNotFound when the file does not exist).
//
// Thread-safety: pure functions over the file system.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "spotgrid/core/status.h"

namespace spotgrid {

// The file's bytes. A missing file (or a path through a file) is Error{kNotFound}; any other
// failure is Error{kIo}.
// `operation` names what the caller was doing ("read config file"), for the error.
Result<std::string> ReadFile(const std::filesystem::path& path,
                             std::string_view operation = "read file");

// Writes `data` to a temporary file beside `path`, fsyncs it and renames it over `path`: a
// reader sees the old file or the new one, never a torn one. `mode` is the file's mode (0600
// for anything secret); without it, that of any new file (0666 less the umask). The temporary
// is removed on failure.
Status WriteFileAtomically(const std::filesystem::path& path, std::string_view data,
                           std::optional<std::filesystem::perms> mode = std::nullopt,
                           std::string_view operation = "write file");

// A fresh, not-yet-existing name beside `path` (so the final rename stays on one file system
// and is atomic) for a temporary file (".<name>.part-<random>"), created empty with O_EXCL so
// no other writer can take it; its mode as WriteFileAtomically's. Rename it into place with
// RenameInto, or remove it.
Result<std::string> CreateTemporaryBeside(
    const std::filesystem::path& path, std::string_view operation,
    std::optional<std::filesystem::perms> mode = std::nullopt);

// rename(2) of `from` onto `to`; on failure `from` is removed and the error names both.
Status RenameInto(const std::filesystem::path& from, const std::filesystem::path& to,
                  std::string_view operation);

}  // namespace spotgrid
