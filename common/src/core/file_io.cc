#include "spotgrid/core/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

namespace spotgrid {

namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// "cannot <verb> <path>: <strerror>", kNotFound when the path names nothing.
Error IoError(std::string_view operation, std::string_view verb, const std::filesystem::path& path,
              int err) {
  Error error = Error::Io(std::string(operation), "cannot " + std::string(verb) + " " +
                                                      path.string() + ": " + ErrnoText(err));
  // ENOTDIR: a parent of the path is a file, so the path names nothing either.
  if (err == ENOENT || err == ENOTDIR) error.category = ErrorCategory::kNotFound;
  return error;
}

}  // namespace

Result<std::string> ReadFile(const std::filesystem::path& path, std::string_view operation) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError(operation, "read", path, errno);
  std::string data;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      data.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      const int err = errno;
      ::close(fd);
      return IoError(operation, "read", path, err);
    }
  }
  ::close(fd);
  return data;
}

Result<std::string> CreateTemporaryBeside(const std::filesystem::path& path,
                                          std::string_view operation,
                                          std::optional<std::filesystem::perms> mode) {
  // The umask applies as to any new file; it can only take bits away from a secret's 0600.
  const mode_t create_mode = mode ? static_cast<mode_t>(*mode) : 0666;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  for (int attempt = 0; attempt < 16; ++attempt) {
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(rng()));
    const std::string name = (dir / ("." + path.filename().string() + ".part-" + suffix)).string();
    const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, create_mode);
    if (fd >= 0) {
      ::close(fd);
      return name;
    }
    if (errno != EEXIST) return IoError(operation, "create", name, errno);
  }
  return Error::Io(std::string(operation),
                   "cannot find a free temporary name beside " + path.string());
}

Status RenameInto(const std::filesystem::path& from, const std::filesystem::path& to,
                  std::string_view operation) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    const int err = errno;
    std::remove(from.c_str());
    return Error::Io(std::string(operation), "cannot rename " + from.string() + " to " +
                                                 to.string() + ": " + ErrnoText(err));
  }
  return Status::Ok();
}

Status WriteFileAtomically(const std::filesystem::path& path, std::string_view data,
                           std::optional<std::filesystem::perms> mode, std::string_view operation) {
  auto temp = CreateTemporaryBeside(path, operation, mode);
  if (!temp.ok()) return temp.error();
  const int fd = ::open(temp->c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::remove(temp->c_str());
    return IoError(operation, "open", *temp, err);
  }
  auto fail = [&](int err) -> Status {
    ::close(fd);
    std::remove(temp->c_str());
    return IoError(operation, "write", path, err);
  };
  std::size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail(errno);
  if (::close(fd) != 0) {
    const int err = errno;
    std::remove(temp->c_str());
    return IoError(operation, "write", path, err);
  }
  return RenameInto(*temp, path, operation);
}

}  // namespace spotgrid
