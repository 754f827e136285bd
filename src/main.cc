#include <csignal>

#include "cli/cli.h"

int main(int argc, char** argv) {
  // A client that hangs up (API, PostgreSQL, storage) must give an error, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  return sb::RunCli(argc, argv);
}
