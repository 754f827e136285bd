#include "support/smartbackup_cli.h"

#include <fstream>

#include <gtest/gtest.h>

namespace sb::test {

CommandResult RunSmartbackup(const std::string& args, const std::map<std::string, std::string>& env) {
  // runuser keeps most of the environment; the test marker is passed explicitly all the same.
  std::string cmd = "env SMARTBACKUP_TESTING=1";
  for (const auto& [k, v] : env) cmd += " " + ShellQuote(k + "=" + v);
  cmd += " " + ShellQuote(SMARTBACKUP_BINARY) + " " + args;
  return RunAsPostgres(cmd);
}

std::string TableMd5(PgCluster& cluster, const std::string& table, const std::string& order_by) {
  return cluster.Psql("SELECT md5(string_agg(t::text, '|' ORDER BY " + order_by + ")) || ':' || count(*) FROM " +
                      table + " t");
}

void WritePostgresFile(const std::string& path, const std::string& contents) {
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << contents;
  }
  RunCommand("chown postgres " + ShellQuote(path) + " 2>/dev/null; chmod 600 " + ShellQuote(path));
}

bool MakeRsaKeyPair(const std::string& dir, const std::string& name) {
  const std::string priv = ShellQuote(dir + "/" + name + ".pem"), pub = ShellQuote(dir + "/" + name + ".pub.pem");
  CommandResult r = RunAsPostgres("mkdir -p " + ShellQuote(dir) +
                                  " && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + priv +
                                  " 2>/dev/null && chmod 600 " + priv + " && openssl pkey -in " + priv +
                                  " -pubout -out " + pub);
  return r.exit_code == 0;
}

}  // namespace sb::test
