// Discovery reads postgresql.conf as the server does: the line syntax of
// guc-file.l, includes in order with their depth limit, postgresql.auto.conf
// from the data directory last; and turns the result into a conninfo.
#include "agent/discovery.h"

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace sb {
namespace {

namespace fs = std::filesystem;

// ---- the line syntax ----

std::vector<PgConfigLine> Lines(const std::string& text) {
  auto lines = ParseConfigLines(text, "/etc/pg.conf");
  EXPECT_TRUE(lines.ok()) << lines.status().ToString();
  return lines.ok() ? *lines : std::vector<PgConfigLine>{};
}

std::string OnlyValue(const std::string& text) {
  auto lines = Lines(text);
  EXPECT_EQ(lines.size(), 1u) << text;
  return lines.empty() ? "" : lines[0].value;
}

Status SyntaxOf(const std::string& text) {
  auto lines = ParseConfigLines(text, "/etc/pg.conf");
  return lines.ok() ? Status::Ok() : lines.status();
}

TEST(ParseConfigLinesTest, NameValueFormsCommentsAndLineNumbers) {
  auto lines = Lines(
      "# a comment\n"
      "\n"
      "port = 5433\n"
      "port=5434\n"
      "Port 5435   # trailing comment\n"
      "  \t listen_addresses='*'\r\n"
      "custom.setting = on");  // no final newline
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].name, "port");
  EXPECT_EQ(lines[0].value, "5433");
  EXPECT_EQ(lines[0].line, 3);
  EXPECT_EQ(lines[1].value, "5434");
  EXPECT_EQ(lines[2].name, "Port");
  EXPECT_EQ(lines[2].value, "5435");
  EXPECT_EQ(lines[3].name, "listen_addresses");
  EXPECT_EQ(lines[3].value, "*");
  EXPECT_EQ(lines[4].name, "custom.setting");
  EXPECT_EQ(lines[4].value, "on");
  EXPECT_EQ(lines[4].line, 7);
}

TEST(ParseConfigLinesTest, QuotedStringsFoldQuotesAndEscapes) {
  EXPECT_EQ(OnlyValue("x = 'it''s'"), "it's");
  EXPECT_EQ(OnlyValue("x = 'it\\'s'"), "it's");
  EXPECT_EQ(OnlyValue("x = 'a\\\\b'"), "a\\b");
  EXPECT_EQ(OnlyValue("x = 'tab\\tnl\\nff\\fbs\\bcr\\r'"), "tab\tnl\nff\fbs\bcr\r");
  EXPECT_EQ(OnlyValue("x = '\\101\\1022'"), "AB2");  // octal, at most three digits
  EXPECT_EQ(OnlyValue("x = '\\q'"), "q");              // any other escaped character stands for itself
  EXPECT_EQ(OnlyValue("x = ''"), "");
  EXPECT_EQ(OnlyValue("x = 'a # not a comment' # a comment"), "a # not a comment");
  EXPECT_EQ(OnlyValue("x = '/var/run/postgresql, /tmp'"), "/var/run/postgresql, /tmp");
  EXPECT_EQ(OnlyValue("x='a''b'"), "a'b");
}

TEST(ParseConfigLinesTest, UnquotedWordsAndNumbersAreTakenAsWritten) {
  EXPECT_EQ(OnlyValue("x = on"), "on");
  EXPECT_EQ(OnlyValue("x = 5MB"), "5MB");
  EXPECT_EQ(OnlyValue("x = -1"), "-1");
  EXPECT_EQ(OnlyValue("x = 0x1F"), "0x1F");
  EXPECT_EQ(OnlyValue("x = 1.5e3"), "1.5e3");
  EXPECT_EQ(OnlyValue("x = .5"), ".5");
  EXPECT_EQ(OnlyValue("x = en_US.UTF-8"), "en_US.UTF-8");
  EXPECT_EQ(OnlyValue("x = pg_catalog/x:y"), "pg_catalog/x:y");
  EXPECT_EQ(OnlyValue("x = abc#comment"), "abc");
}

TEST(ParseConfigLinesTest, RefusesWhatTheServerRefuses) {
  for (const char* bad : {"port = /tmp", "port =", "port", "port = 1 2", "= 5", "5 = 5", "x = 'unterminated",
                          "x = 'a' 'b'", "x = a.b", "x == 1", "x = \"double\"", "x = 'a\\"}) {
    Status s = SyntaxOf(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  Status s = SyntaxOf("ok = 1\n\nport = /tmp\n");
  EXPECT_NE(s.message().find("\"/etc/pg.conf\" line 3, near token \"/\""), std::string::npos) << s.message();
  s = SyntaxOf("port =\n");
  EXPECT_NE(s.message().find("line 1, near end of line"), std::string::npos) << s.message();
}

// ---- files ----

class DiscoveryFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "sb_discovery_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `text` at `rel` (under the temp dir), creating directories; returns the absolute path.
  std::string Write(const std::string& rel, const std::string& text) {
    const fs::path p = fs::path(dir_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string Path(const std::string& rel) const { return (fs::path(dir_) / rel).string(); }

  PgSettingsFile Read(const std::string& rel) {
    auto s = ReadEffectiveSettings(Path(rel));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : PgSettingsFile{};
  }
  static std::string Value(const PgSettingsFile& s, const std::string& name) {
    const std::string* v = s.Find(name);
    return v ? *v : "<unset>";
  }

  std::string dir_;
};

TEST_F(DiscoveryFilesTest, LaterSettingsWinWhateverTheCaseOfTheName) {
  Write("etc/postgresql.conf", "PORT = 1\nwork_mem = 4MB\nport = 2\nPort=3\n");
  auto s = Read("etc/postgresql.conf");
  EXPECT_EQ(Value(s, "port"), "3");
  EXPECT_EQ(Value(s, "PORT"), "3");
  EXPECT_EQ(Value(s, "work_mem"), "4MB");
  EXPECT_EQ(Value(s, "shared_buffers"), "<unset>");
  EXPECT_EQ(s.settings.at("port").line, 4);
  EXPECT_EQ(s.settings.at("port").file, Path("etc/postgresql.conf"));
}

TEST_F(DiscoveryFilesTest, IncludesAreReadInPlaceRelativeToTheIncludingFile) {
  Write("etc/postgresql.conf",
        "port = 1\n"
        "a = main\n"
        "include 'sub/one.conf'\n"  // sets port = 2, then includes ../two.conf (port = 3)
        "b = main\n"
        "INCLUDE_IF_EXISTS = 'absent.conf'\n"
        "include_if_exists '" +
            Path("etc/three.conf") + "'\n");
  Write("etc/sub/one.conf", "port = 2\nb = one\ninclude '../two.conf'\n");
  Write("etc/two.conf", "port = 3\na = two\n");
  Write("etc/three.conf", "c = three\n");
  auto s = Read("etc/postgresql.conf");
  EXPECT_EQ(Value(s, "port"), "3");
  EXPECT_EQ(Value(s, "a"), "two");   // set before the include: the include wins
  EXPECT_EQ(Value(s, "b"), "main");  // set after the include: the main file wins
  EXPECT_EQ(Value(s, "c"), "three");
  EXPECT_EQ(s.settings.at("port").file, Path("etc/two.conf"));
  EXPECT_EQ(s.files_read, (std::vector<std::string>{Path("etc/postgresql.conf"), Path("etc/sub/one.conf"),
                                                    Path("etc/two.conf"), Path("etc/three.conf")}));
  ASSERT_FALSE(s.files_skipped.empty());
  EXPECT_EQ(s.files_skipped[0], Path("etc/absent.conf"));
}

TEST_F(DiscoveryFilesTest, IncludeDirReadsConfFilesInByteOrder) {
  Write("etc/postgresql.conf", "order = main\ninclude_dir 'conf.d'\n");
  Write("etc/conf.d/10-b.conf", "order = '10-b'\n");
  Write("etc/conf.d/2-a.conf", "order = '2-a'\nfrom_2a = yes\n");
  Write("etc/conf.d/B.conf", "order = B\n");
  Write("etc/conf.d/a.conf", "order = a\n");  // last: 'a' (0x61) sorts after '2' and 'B'
  Write("etc/conf.d/.hidden.conf", "order = hidden\nhidden = yes\n");
  Write("etc/conf.d/x.conf.bak", "order = bak\n");
  Write("etc/conf.d/.conf", "order = dotconf\n");
  Write("etc/conf.d/README", "this is not configuration\n");
  fs::create_directories(Path("etc/conf.d/sub.conf"));  // a directory named *.conf is skipped
  auto s = Read("etc/postgresql.conf");
  EXPECT_EQ(Value(s, "order"), "a");
  EXPECT_EQ(Value(s, "from_2a"), "yes");
  EXPECT_EQ(Value(s, "hidden"), "<unset>");
  EXPECT_EQ(s.files_read, (std::vector<std::string>{Path("etc/postgresql.conf"), Path("etc/conf.d/10-b.conf"),
                                                    Path("etc/conf.d/2-a.conf"), Path("etc/conf.d/B.conf"),
                                                    Path("etc/conf.d/a.conf")}));
}

TEST_F(DiscoveryFilesTest, MissingFilesAndDirectories) {
  auto s = ReadEffectiveSettings(Path("etc/postgresql.conf"));
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);

  Write("etc/postgresql.conf", "include 'absent.conf'\n");
  s = ReadEffectiveSettings(Path("etc/postgresql.conf"));
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_NE(s.status().message().find(Path("etc/absent.conf")), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("included from \"" + Path("etc/postgresql.conf") + "\" line 1"),
            std::string::npos)
      << s.status().message();

  Write("etc/postgresql.conf", "include_dir 'absent.d'\n");
  EXPECT_EQ(ReadEffectiveSettings(Path("etc/postgresql.conf")).status().code(), StatusCode::kNotFound);

  Write("etc/postgresql.conf", "include ''\n");
  EXPECT_EQ(ReadEffectiveSettings(Path("etc/postgresql.conf")).status().code(), StatusCode::kInvalidArgument);

  fs::create_directories(Path("etc/adir"));
  Write("etc/postgresql.conf", "include 'adir'\n");
  EXPECT_EQ(ReadEffectiveSettings(Path("etc/postgresql.conf")).status().code(), StatusCode::kIoError);
}

TEST_F(DiscoveryFilesTest, ASyntaxErrorInAnIncludedFileFailsTheWhole) {
  Write("etc/postgresql.conf", "port = 5433\ninclude_dir 'conf.d'\n");
  Write("etc/conf.d/bad.conf", "\nunix_socket_directories = /tmp\n");
  auto s = ReadEffectiveSettings(Path("etc/postgresql.conf"));
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find(Path("etc/conf.d/bad.conf") + "\" line 2"), std::string::npos)
      << s.status().message();
}

TEST_F(DiscoveryFilesTest, IncludeCyclesStopAtTheDepthLimit) {
  Write("etc/postgresql.conf", "include 'a.conf'\n");
  Write("etc/a.conf", "include 'b.conf'\n");
  Write("etc/b.conf", "include 'a.conf'\n");
  auto s = ReadEffectiveSettings(Path("etc/postgresql.conf"));
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("maximum nesting depth"), std::string::npos) << s.status().message();

  Write("etc/self.conf", "include_dir '.'\n");  // a directory including itself
  Write("etc/postgresql.conf", "include 'self.conf'\n");
  EXPECT_EQ(ReadEffectiveSettings(Path("etc/postgresql.conf")).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DiscoveryFilesTest, NestingAsDeepAsTheServerAllowsAndNoDeeper) {
  // postgresql.conf is depth 0; d1.conf … d<n>.conf are depths 1 … n.
  auto chain = [&](int n) {
    Write("etc/postgresql.conf", "include 'd1.conf'\n");
    for (int i = 1; i < n; ++i) Write("etc/d" + std::to_string(i) + ".conf", fmt::format("include 'd{}.conf'\n", i + 1));
    Write("etc/d" + std::to_string(n) + ".conf", "deepest = " + std::to_string(n) + "\n");
    return ReadEffectiveSettings(Path("etc/postgresql.conf"));
  };
  auto ok = chain(kMaxConfigIncludeDepth);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(Value(*ok, "deepest"), "10");
  EXPECT_EQ(chain(kMaxConfigIncludeDepth + 1).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DiscoveryFilesTest, AutoConfInTheConfigDirectoryIsReadLast) {
  Write("data/postgresql.conf", "port = 5433\ninclude_dir 'conf.d'\n");
  Write("data/conf.d/z.conf", "port = 5434\n");
  Write("data/postgresql.auto.conf", "# Do not edit this file manually!\nport = '5435'\n");
  auto s = Read("data/postgresql.conf");
  EXPECT_EQ(Value(s, "port"), "5435");
  EXPECT_EQ(s.data_directory, Path("data"));
  EXPECT_EQ(s.files_read.back(), Path("data/postgresql.auto.conf"));
}

TEST_F(DiscoveryFilesTest, DataDirectoryNamesWhereAutoConfIs) {
  // Debian: the configuration under /etc, the data directory elsewhere.
  Write("etc/15/main/postgresql.conf", "data_directory = '" + Path("lib/15/main") + "'\nport = 5433\n");
  Write("etc/15/main/postgresql.auto.conf", "port = 1111\n");  // not in the data directory: ignored
  Write("lib/15/main/postgresql.auto.conf", "port = 5440\ndata_directory = '/elsewhere'\n");
  auto s = Read("etc/15/main/postgresql.conf");
  EXPECT_EQ(s.data_directory, Path("lib/15/main"));
  EXPECT_EQ(Value(s, "port"), "5440");
  EXPECT_EQ(Value(s, "data_directory"), Path("lib/15/main"));  // ALTER SYSTEM cannot move it

  // Relative: against the configuration file's directory.
  Write("etc/15/main/postgresql.conf", "data_directory = '../../../lib/15/main'\n");
  s = Read("etc/15/main/postgresql.conf");
  EXPECT_EQ(s.data_directory, Path("lib/15/main"));
  EXPECT_EQ(Value(s, "port"), "5440");

  // No auto.conf there: nothing more to read, not an error.
  Write("etc/15/main/postgresql.conf", "data_directory = '" + Path("lib/none") + "'\nport = 5433\n");
  s = Read("etc/15/main/postgresql.conf");
  EXPECT_EQ(Value(s, "port"), "5433");
  EXPECT_EQ(s.files_skipped, (std::vector<std::string>{Path("lib/none/postgresql.auto.conf")}));

  // A broken auto.conf stops the server: it fails the read too.
  Write("lib/15/main/postgresql.auto.conf", "port = \n");
  Write("etc/15/main/postgresql.conf", "data_directory = '" + Path("lib/15/main") + "'\n");
  EXPECT_EQ(ReadEffectiveSettings(Path("etc/15/main/postgresql.conf")).status().code(), StatusCode::kInvalidArgument);
}

// ---- socket directories, conninfo, the Debian tree ----

TEST(SplitSocketDirectoriesTest, SplitsAsTheServerDoes) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*SplitSocketDirectories("/var/run/postgresql"), V{"/var/run/postgresql"});
  EXPECT_EQ(*SplitSocketDirectories(" /a , /b/ ,/c"), (V{"/a", "/b", "/c"}));
  EXPECT_EQ(*SplitSocketDirectories("\"/with space\", \"/q\"\"uote\",/d"), (V{"/with space", "/q\"uote", "/d"}));
  EXPECT_EQ(*SplitSocketDirectories("/with inner space"), V{"/with inner space"});
  EXPECT_EQ(*SplitSocketDirectories(""), V{});
  EXPECT_EQ(*SplitSocketDirectories("   "), V{});
  EXPECT_EQ(SplitSocketDirectories("/a,,/b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitSocketDirectories("/a,").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitSocketDirectories("\"/a").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitSocketDirectories("\"/a\" x").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DiscoveryFilesTest, ConninfoFromTheEffectiveSettings) {
  Write("a/postgresql.conf", "# defaults only\n");
  EXPECT_EQ(*DiscoverClusterConninfo(Path("a/postgresql.conf")), "host=/var/run/postgresql port=5432 dbname=postgres");

  Write("b/postgresql.conf", "port=5433\nunix_socket_directories = '/run/pg, /tmp'\n");
  EXPECT_EQ(*DiscoverClusterConninfo(Path("b/postgresql.conf")), "host=/run/pg port=5433 dbname=postgres");

  Write("c/postgresql.conf", "port = 5433\nunix_socket_directories = '\"/run/my pg\",/tmp'\n");
  Write("c/postgresql.auto.conf", "port = '5444'\n");
  EXPECT_EQ(*DiscoverClusterConninfo(Path("c/postgresql.conf")), "host='/run/my pg' port=5444 dbname=postgres");

  Write("d/postgresql.conf", "port = 0x1538\n");  // the server reads integers with C prefixes
  EXPECT_EQ(*DiscoverClusterConninfo(Path("d/postgresql.conf")), "host=/var/run/postgresql port=5432 dbname=postgres");

  Write("e/postgresql.conf", "port = 70000\n");
  EXPECT_EQ(DiscoverClusterConninfo(Path("e/postgresql.conf")).status().code(), StatusCode::kInvalidArgument);
  Write("f/postgresql.conf", "port = 'five'\n");
  EXPECT_EQ(DiscoverClusterConninfo(Path("f/postgresql.conf")).status().code(), StatusCode::kInvalidArgument);
  Write("g/postgresql.conf", "unix_socket_directories = ''\n");
  EXPECT_EQ(DiscoverClusterConninfo(Path("g/postgresql.conf")).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(DiscoveryFilesTest, DiscoversTheDebianTreeAndSkipsWhatItCannotRead) {
  Write("etc/15/main/postgresql.conf",
        "data_directory = '" + Path("lib/15/main") + "'\nport = 5432\ninclude_dir 'conf.d'\n");
  Write("etc/15/main/conf.d/port.conf", "port = 5433\n");
  Write("lib/15/main/postgresql.auto.conf", "unix_socket_directories = '/run/a,/run/b'\n");
  Write("etc/16/other/postgresql.conf", "port=5500 # other\n");
  Write("etc/16/broken/postgresql.conf", "port = 5501 5502\n");
  fs::create_directories(Path("etc/16/noconf"));
  Write("etc/16/afile", "not a cluster\n");
  Write("etc/.hidden/main/postgresql.conf", "port = 1\n");
  Write("etc/README", "not a version\n");

  const auto found = DiscoverClusters(Path("etc"));
  EXPECT_EQ(found, (std::map<std::string, std::string>{
                       {"15-main", "host=/run/a port=5433 dbname=postgres"},
                       {"16-other", "host=/var/run/postgresql port=5500 dbname=postgres"},
                   }));
  EXPECT_TRUE(DiscoverClusters(Path("absent")).empty());
}

}  // namespace
}  // namespace sb
