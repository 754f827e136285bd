// TarExtractor on archives built here: entries split at every possible feed
// boundary, deferred writes carried out in reverse order, and the archives a
// restore must refuse (unsafe paths, bad checksums, entries cut short), among
// them crafted ones that try to write outside the destination: each of those
// checks that the sibling directories of the destination stay empty, with
// openat2 and with the component-by-component fallback.
#include "engine/restore/tar_extractor.h"
#include "common/beneath.h"
#include "support/tar_builder.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

namespace sb {
namespace {

namespace fs = std::filesystem;
using test::End;
using test::Entry;
using test::Header;
using test::Padded;

std::string PaxPath(const std::string& path) {
  std::string rec = " path=" + path + "\n";
  size_t len = rec.size() + 1;
  while (std::to_string(len).size() + rec.size() != len) ++len;
  std::string body = std::to_string(len) + rec;
  return Header("pax", 'x', body.size()) + Padded(body);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class TarExtractorTest : public ::testing::Test {
 protected:
  // root_/target is the destination; root_/outside and root_/space are its
  // siblings, which a crafted archive must never reach (space is where the
  // operator mapped tablespace 16384).
  void SetUp() override {
    char tmpl[] = "/tmp/sb-tar-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/target";
    outside_ = root_ + "/outside";
    space_ = root_ + "/space";
    for (const auto& d : {dir_, outside_, space_}) fs::create_directory(d);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A data directory in miniature: a directory, files of 0, 1 and 3000 bytes
  // (crossing blocks), a pax long name and a symlink.
  std::string Archive() {
    big_.clear();
    for (int i = 0; i < 3000; ++i) big_.push_back(static_cast<char>('a' + i % 26));
    long_name_ = "base/1/" + std::string(120, 'x');
    return Header("base/", '5', 0) + Header("base/1/", '5', 0) + Entry("base/1/empty", "") +
           Entry("base/1/one", "1") + Entry("global/pg_control", big_) + PaxPath(long_name_) +
           Entry("ignored-short-name", "long") + Header("pg_tblspc/16384", '2', 0, "/old/place") + End();
  }
  void ExpectExtracted() {
    EXPECT_TRUE(fs::is_directory(dir_ + "/base/1"));
    EXPECT_EQ(fs::file_size(dir_ + "/base/1/empty"), 0u);
    EXPECT_EQ(ReadFile(dir_ + "/base/1/one"), "1");
    EXPECT_EQ(ReadFile(dir_ + "/global/pg_control"), big_);
    EXPECT_EQ(ReadFile(dir_ + "/" + long_name_), "long");
    EXPECT_FALSE(fs::exists(dir_ + "/ignored-short-name"));
    EXPECT_EQ(fs::read_symlink(dir_ + "/pg_tblspc/16384"), "/new/place");
  }
  std::map<uint32_t, std::string> Relocate() { return {{16384, "/new/place"}}; }

  // Nothing but the three directories in root_, and nothing in the two siblings.
  void ExpectNothingOutside() {
    std::vector<std::string> top;
    for (const auto& e : fs::directory_iterator(root_)) top.push_back(e.path().filename());
    std::sort(top.begin(), top.end());
    EXPECT_EQ(top, (std::vector<std::string>{"outside", "space", "target"}));
    EXPECT_TRUE(fs::is_empty(outside_)) << "written outside the target";
    EXPECT_TRUE(fs::is_empty(space_)) << "written through the tablespace link";
  }

  std::string root_;
  std::string outside_;
  std::string space_;
  std::string dir_;
  std::string big_;
  std::string long_name_;
};

TEST_F(TarExtractorTest, ExtractsWhateverTheFeedBoundaries) {
  const std::string tar = Archive();
  for (size_t piece : {size_t{1}, size_t{7}, size_t{511}, size_t{512}, size_t{513}, tar.size()}) {
    SCOPED_TRACE(fmt::format("pieces of {} bytes", piece));
    fs::remove_all(dir_);
    fs::create_directory(dir_);
    TarExtractor x(dir_, "base.tar", Relocate());
    for (size_t at = 0; at < tar.size(); at += piece) {
      ASSERT_TRUE(x.Feed(std::string_view(tar).substr(at, piece)).ok());
    }
    ASSERT_TRUE(x.Finish().ok());
    EXPECT_EQ(x.files_written(), 4u);
    ExpectExtracted();
  }
  // The owner can write; nothing beyond what the archive and a data directory allow.
  auto perms = static_cast<unsigned>(fs::status(dir_ + "/base/1/one").permissions());
  EXPECT_EQ(perms & 0600u, 0600u);
  EXPECT_EQ(perms & ~0640u, 0u);
}

TEST_F(TarExtractorTest, DeferredWritesMayRunInAnyOrderAndCloseWithTheLastOne) {
  const std::string tar = Archive();
  TarExtractor x(dir_, "base.tar", Relocate());
  std::vector<FileWrite> writes;
  // Feed in pieces that split file data, as objects split a tar stream.
  for (size_t at = 0; at < tar.size(); at += 700) {
    ASSERT_TRUE(x.Feed(std::string_view(tar).substr(at, 700), &writes).ok());
  }
  EXPECT_FALSE(fs::exists(dir_ + "/base/1/one") && fs::file_size(dir_ + "/base/1/one") == 1u)
      << "deferred data must not be written by Feed";
  std::reverse(writes.begin(), writes.end());
  for (auto& w : writes) {
    ASSERT_TRUE(w.file->WriteAt(w.offset, w.bytes).ok());
    w.file.reset();
  }
  ASSERT_TRUE(x.Finish().ok());
  ExpectExtracted();
}

TEST_F(TarExtractorTest, RefusesUnsafePathsBadChecksumsAndTruncation) {
  {
    TarExtractor x(dir_, "base.tar");
    Status s = x.Feed(Entry("../escape", "x"));
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("unsafe entry path \"../escape\""), std::string::npos) << s.message();
    EXPECT_FALSE(fs::exists(fs::path(dir_).parent_path() / "escape"));
  }
  {
    TarExtractor x(dir_, "base.tar");
    EXPECT_FALSE(x.Feed(Entry("/etc/abs", "x")).ok());
  }
  {
    std::string tar = Entry("a", "x");
    tar[0] = 'b';  // the checksum no longer matches
    TarExtractor x(dir_, "base.tar");
    Status s = x.Feed(tar);
    EXPECT_EQ(s.code(), StatusCode::kCorruption);
    EXPECT_NE(s.message().find("archive \"base.tar\""), std::string::npos) << s.message();
  }
  {
    TarExtractor x(dir_, "base.tar");
    std::string tar = Entry("cut", std::string(2000, 'z'));
    ASSERT_TRUE(x.Feed(std::string_view(tar).substr(0, 1000)).ok());
    Status s = x.Finish();
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("\"cut\" is cut short"), std::string::npos) << s.message();
  }
}

TEST_F(TarExtractorTest, AFileThatCannotBeCreatedIsNamed) {
  fs::create_directories(dir_ + "/base/taken");  // a directory where the archive has a file
  TarExtractor x(dir_, "base.tar");
  Status s = x.Feed(Entry("base/taken", "data"));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot create \"" + dir_ + "/base/taken\""), std::string::npos) << s.message();
}

// Runs each test with openat2 and with the O_NOFOLLOW walk that replaces it
// on kernels without it.
class TarConfinementTest : public TarExtractorTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    TarExtractorTest::SetUp();
    SetOpenat2DisabledForTesting(GetParam());
  }
  void TearDown() override {
    SetOpenat2DisabledForTesting(false);
    TarExtractorTest::TearDown();
  }
  // Feeds `tar` to an extractor of the main archive (tablespace 16384 mapped
  // to space_) and returns the first failure.
  Status Extract(const std::string& tar, std::map<uint32_t, std::string> links = {}) {
    TarExtractor x(dir_, "base.tar", std::move(links));
    Status s = x.Feed(tar);
    if (s.ok()) s = x.Finish();
    return s;
  }
  std::map<uint32_t, std::string> Mapped() { return {{16384, space_}}; }
};

INSTANTIATE_TEST_SUITE_P(Openat2AndFallback, TarConfinementTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "walk" : "openat2"; });

TEST_P(TarConfinementTest, ASymlinkMemberThenAFileUnderItWritesNothingOutside) {
  Status s = Extract(Header("link", '2', 0, outside_) + Entry("link/planted", "x") + End());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
  EXPECT_NE(s.message().find("symlink entry \"link\""), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir_ + "/link")));
  ExpectNothingOutside();
}

TEST_P(TarConfinementTest, ASymlinkMemberThenAFileOfTheSameNameWritesNothingOutside) {
  Status s = Extract(Header("authorized_keys", '2', 0, outside_ + "/authorized_keys") +
                     Entry("authorized_keys", "ssh-ed25519 AAAA planted") + End());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
  ExpectNothingOutside();
}

TEST_P(TarConfinementTest, ADirectoryEntryThroughASymlinkMemberIsRefused) {
  Status s = Extract(Header("link", '2', 0, outside_) + Header("link/sub/", '5', 0) + End());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
  ExpectNothingOutside();
}

TEST_P(TarConfinementTest, NothingGoesThroughTheTablespaceLinkItMade) {
  const std::string link = Header("pg_tblspc/", '5', 0) + Header("pg_tblspc/16384", '2', 0, "/etc");
  {
    Status s = Extract(link + Entry("pg_tblspc/16384/PG_15_202209061/1/1259", "x") + End(), Mapped());
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
    EXPECT_NE(s.message().find("which is a symlink"), std::string::npos) << s.message();
    // The link itself was made, and points where the operator said, not where the archive did.
    EXPECT_EQ(fs::read_symlink(dir_ + "/pg_tblspc/16384"), fs::path(space_));
  }
  for (const std::string& second : {Entry("pg_tblspc/16384", "x"), Header("pg_tblspc/16384/sub", '5', 0),
                                    Header("pg_tblspc/16384", '2', 0, space_)}) {
    fs::remove_all(dir_);
    fs::create_directory(dir_);
    Status s = Extract(link + second + End(), Mapped());
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
  }
  ExpectNothingOutside();
}

TEST_P(TarConfinementTest, ASymlinkPlacedInTheTargetIsNotFollowed) {
  // What another writer of the target could do while the restore runs.
  fs::create_directory_symlink(outside_, dir_ + "/base");
  Status s = Extract(Header("base/1/", '5', 0) + Entry("base/1/1259", "x") + End());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
  fs::remove(dir_ + "/base");
  fs::create_symlink(outside_ + "/PG_VERSION", dir_ + "/PG_VERSION");
  s = Extract(Entry("PG_VERSION", "15\n") + End());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
  fs::remove(dir_ + "/PG_VERSION");
  ExpectNothingOutside();
}

TEST_P(TarConfinementTest, ModesAreMaskedToWhatADataDirectoryAllows) {
  ASSERT_TRUE(Extract(Header("d/", '5', 0, "", 07777) + Header("d/suid", '0', 0, "", 06777) +
                      Header("d/sticky", '0', 0, "", 01755) + End())
                  .ok());
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777 & ~0750u, 0u) << std::oct << (st.st_mode & 07777);
  for (const char* f : {"/d/suid", "/d/sticky"}) {
    ASSERT_EQ(::stat((dir_ + f).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777 & ~0640u, 0u) << f << " " << std::oct << (st.st_mode & 07777);
  }
  ExpectNothingOutside();
}

TEST_P(TarConfinementTest, HardLinksDevicesAndFifosAreRefused) {
  for (char type : {'1', '3', '4', '6'}) {
    SCOPED_TRACE(fmt::format("type {}", type));
    fs::remove_all(dir_);
    fs::create_directory(dir_);
    Status s = Extract(Entry("a", "x") + Header("b", type, 0, type == '1' ? "a" : "") + End());
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
    EXPECT_FALSE(fs::exists(fs::symlink_status(dir_ + "/b"))) << "entry b was created";
  }
  ExpectNothingOutside();
}

TEST_P(TarConfinementTest, OnlyThePgTblspcLinksOfMappedTablespacesAreMade) {
  for (const std::string& entry : {Header("pg_tblspc/16385", '2', 0, outside_),    // not mapped
                                   Header("pg_tblspc/016384", '2', 0, outside_),   // not how PostgreSQL names it
                                   Header("global/16384", '2', 0, outside_),       // not in pg_tblspc
                                   Header("pg_tblspc/16384/x", '2', 0, outside_)}) {
    fs::remove_all(dir_);
    fs::create_directory(dir_);
    Status s = Extract(Header("pg_tblspc/", '5', 0) + entry + End(), Mapped());
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
    EXPECT_NE(s.message().find("--tablespace-map"), std::string::npos) << s.message();
  }
  EXPECT_TRUE(fs::is_empty(dir_ + "/pg_tblspc"));
  // A tablespace's own archive may hold no link at all.
  fs::remove_all(dir_);
  fs::create_directory(dir_);
  EXPECT_EQ(Extract(Header("pg_tblspc/16384", '2', 0, space_) + End()).code(), StatusCode::kCorruption);
  ExpectNothingOutside();
}

TEST_P(TarConfinementTest, ATablespaceMapFileIsRefused) {
  // PostgreSQL would link pg_tblspc/16384 to /etc at startup and replay WAL there.
  Status s = Extract(Entry("tablespace_map", "16384 /etc\n") + End(), Mapped());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
  EXPECT_FALSE(fs::exists(dir_ + "/tablespace_map"));
  ExpectNothingOutside();
}

TEST_P(TarConfinementTest, AnEntryNamedTwiceIsACorruptArchive) {
  Status s = Extract(Entry("PG_VERSION", "15\n") + Entry("PG_VERSION", "evil\n") + End());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
  EXPECT_EQ(ReadFile(dir_ + "/PG_VERSION"), "15\n");
  ExpectNothingOutside();
}

}  // namespace
}  // namespace sb
