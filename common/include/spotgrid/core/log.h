// Logging goes through spdlog. Every module asks Logger() for the process logger, which the
// binaries configure once at start (journal under systemd, stderr otherwise).
//
// Rule for every log line: never log a secret access key, a session token, an Authorization
// header or a presigned URL. The client core logs only service, operation, status, error code
// and request id.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

namespace spotgrid {

// The shared logger ("spotgrid"). Created on first use with a stderr sink at level "warn",
// so libraries stay quiet unless a binary configures otherwise.
spdlog::logger& Logger();

// Replaces the shared logger (binaries call this once at start, before threads exist).
void SetLogger(std::shared_ptr<spdlog::logger> logger);

}  // namespace spotgrid
