// Turning a name that someone else chose (an S3 key below a prefix) into a path under a local
// root without letting it escape that root.
//
// A relative name is accepted only when it is a plain '/'-separated list of components: not
// empty, not absolute, no NUL, and no empty, "." or ".." component (so "a//b" and "a/./b" are
// refused rather than normalised: S3 keeps them distinct from "a/b", a file system would not).
// On the way down from the root, no existing component may be a symbolic link, every existing
// directory component must be a directory, and an existing final component must be a regular
// file, so a write to the returned path cannot land anywhere but below the root. The check is
// made when the function runs: a directory that an untrusted process can change at the same
// time is not protected (callers restore into directories nothing else writes yet).
//
// Thread-safety: plain functions; two calls creating the same parents concurrently are safe.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "spotgrid/core/status.h"

namespace spotgrid {

// The components of `relative` if it is a safe relative name (see above), else an
// InvalidInput error naming it. Touches no file.
Result<std::vector<std::string>> SplitSafeRelativePath(std::string_view relative);

struct SafePathOptions {
  bool create_parents = true;  // make missing directories between root and the file
};

// root / relative after the checks above; creates the missing parent directories unless told
// not to. `root` itself is trusted (it may be or sit below a symbolic link). Errors name
// `relative` and the reason ("... is a symbolic link", "... is not a directory").
Result<std::filesystem::path> SafePathUnder(const std::filesystem::path& root,
                                            std::string_view relative,
                                            const SafePathOptions& options = {});

}  // namespace spotgrid
