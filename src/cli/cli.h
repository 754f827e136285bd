// The smartbackup command line: parses argv, runs one verb, prints text or
// JSON, and returns the process exit code (0 ok, 1 failure, 2 usage).
#pragma once

namespace sb {
int RunCli(int argc, char** argv);
}  // namespace sb
