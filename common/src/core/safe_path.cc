#include "spotgrid/core/safe_path.h"

#include <sys/stat.h>

#include <system_error>

namespace spotgrid {
namespace fs = std::filesystem;

namespace {

Error Refuse(std::string_view relative, const std::string& why) {
  return Error::InvalidInput("unsafe path '" + std::string(relative) + "': " + why);
}

}  // namespace

Result<std::vector<std::string>> SplitSafeRelativePath(std::string_view relative) {
  if (relative.empty()) return Refuse(relative, "empty path");
  if (relative.front() == '/') return Refuse(relative, "absolute path");
  if (relative.find('\0') != std::string_view::npos) return Refuse(relative, "NUL in the path");
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= relative.size()) {
    std::size_t slash = relative.find('/', start);
    if (slash == std::string_view::npos) slash = relative.size();
    std::string part(relative.substr(start, slash - start));
    if (part.empty() || part == "." || part == "..") {
      return Refuse(relative, "'" + part + "' is not a plain path component");
    }
    parts.push_back(std::move(part));
    start = slash + 1;
  }
  return parts;
}

Result<fs::path> SafePathUnder(const fs::path& root, std::string_view relative,
                               const SafePathOptions& options) {
  auto parts = SplitSafeRelativePath(relative);
  if (!parts.ok()) return parts.error();
  fs::path path = root;
  for (std::size_t i = 0; i < parts->size(); ++i) {
    path /= (*parts)[i];
    const bool last = i + 1 == parts->size();
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode))
        return Refuse(relative, "'" + path.string() + "' is a symbolic link");
      if (!last && !S_ISDIR(st.st_mode)) {
        return Refuse(relative, "'" + path.string() + "' is not a directory");
      }
      if (last && !S_ISREG(st.st_mode)) {
        return Refuse(relative, "'" + path.string() + "' is not a file");
      }
    } else if (!last && options.create_parents) {
      std::error_code ec;
      fs::create_directory(path, ec);
      // Another thread may have made it meanwhile: what counts is that a real directory
      // (not a link planted since the lstat) is there now.
      if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return Error::Io(
            "mkdir", path.string() + ": " + (ec ? ec.message() : std::string("not a directory")));
      }
    }
  }
  return path;
}

}  // namespace spotgrid
