// credential_process: a profile names a program whose standard output is the credentials.
//
// As botocore does it: the command line is split into words the way Python's shlex.split does
// (POSIX rules: whitespace separates words, '...' is literal, "..." keeps backslash escapes
// of '"' and '\', a backslash outside quotes escapes any character) and run without a shell.
// Exit status 0 and a JSON document {"Version": 1, "AccessKeyId", "SecretAccessKey",
// "SessionToken"?, "Expiration"?} are required. Without Expiration the credentials are
// long-term and fetched once; with it they are refreshed ahead of it.
//
// Errors name the profile and the program (never the output, which holds secrets); on a
// failing exit the program's standard error (at most 1 KiB), which is how such programs
// explain themselves ("run: my-login first").
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "spotgrid/aws/credentials.h"

namespace spotgrid {

// shlex.split (posix=True, comments=False). An unterminated quote or a trailing escape is an
// error, as in Python.
Result<std::vector<std::string>> SplitCommandLine(std::string_view command);

// Runs `command` (from profile `profile`) and parses what it prints.
Result<Credentials> RunCredentialProcess(const std::string& command, const std::string& profile);

// The JSON contract above; `where` names the profile in errors.
Result<Credentials> ParseCredentialProcessOutput(std::string_view output, const std::string& where);

}  // namespace spotgrid
