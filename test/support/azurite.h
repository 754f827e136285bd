// AzuriteServer: a throwaway Azurite blob service for tests, started from
// `azurite-blob` on PATH on 127.0.0.1 and a free port, with its data in a
// temp dir. Killed (whole process group) and the dir removed in the
// destructor. Start() waits, with a 30 s deadline, until the port accepts
// connections. Thread-safety: start/stop from one thread; the accessors are
// plain values.
//
// Tests call Start() (or Shared()) from SetUp and, when it returns null,
// GTEST_SKIP if SkipRequested() (SMARTBACKUP_SKIP_AZURE=1) or FAIL with
// StartError() otherwise — see SB_REQUIRE_AZURITE.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

namespace sb::test {

class AzuriteServer {
 public:
  static constexpr const char* kAccount = "devstoreaccount1";
  // The emulator's fixed, publicly documented account key.
  static constexpr const char* kAccountKey =
      "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

  // Null on failure, with the reason in StartError().
  static std::unique_ptr<AzuriteServer> Start();
  // One server for the whole test process, started on first use and stopped
  // at exit. Null on failure (the failure is remembered, not retried).
  static AzuriteServer* Shared();
  static const std::string& StartError();
  // SMARTBACKUP_SKIP_AZURE=1: tests may skip when Azurite cannot start.
  static bool SkipRequested();
  // Full path of azurite-blob on PATH, or "" when it is not installed.
  static std::string FindBinary();

  ~AzuriteServer();
  AzuriteServer(const AzuriteServer&) = delete;
  AzuriteServer& operator=(const AzuriteServer&) = delete;

  int port() const { return port_; }
  // Sends `sig` to the server's process group (SIGSTOP freezes the endpoint, SIGCONT thaws it).
  void Signal(int sig) const;
  // "http://127.0.0.1:PORT/devstoreaccount1"
  std::string endpoint() const;
  // "DefaultEndpointsProtocol=http;AccountName=…;AccountKey=…;BlobEndpoint=…;"
  std::string connection_string() const;

 private:
  AzuriteServer() = default;
  std::string root_;  // temp dir we own
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace sb::test

// In a test body or SetUp: declares `AzuriteServer* var` for the shared
// server, skipping or failing the test if it cannot run.
#define SB_REQUIRE_AZURITE(var)                                                              \
  ::sb::test::AzuriteServer* var = ::sb::test::AzuriteServer::Shared();                      \
  if (var == nullptr) {                                                                      \
    if (::sb::test::AzuriteServer::SkipRequested()) {                                        \
      GTEST_SKIP() << "azurite unavailable (SMARTBACKUP_SKIP_AZURE=1): "                     \
                   << ::sb::test::AzuriteServer::StartError();                               \
    }                                                                                        \
    FAIL() << ::sb::test::AzuriteServer::StartError();                                       \
  }
