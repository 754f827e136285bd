#include <malloc.h>

#include <csignal>

#include "cli/cli.h"

int main(int argc, char** argv) {
  // A client that hangs up (API, PostgreSQL, storage) must give an error, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  // Backup and restore move many 8 MiB buffers between threads. Served by mmap, each one
  // costs page faults and zeroing (most of restore's system time); kept in the heap, reused.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  return sb::RunCli(argc, argv);
}
