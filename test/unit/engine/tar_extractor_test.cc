// TarExtractor on archives built here: entries split at every possible feed
// boundary, deferred writes carried out in reverse order, and the archives a
// restore must refuse (unsafe paths, bad checksums, entries cut short).
#include "engine/restore/tar_extractor.h"

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

// A ustar header block for one entry; `size` data bytes follow it.
std::string Header(const std::string& name, char type, uint64_t size, const std::string& link = "") {
  std::string b(512, '\0');
  std::memcpy(b.data(), name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(b.data() + 100, 8, "%07o", 0640u);
  std::snprintf(b.data() + 124, 12, "%011llo", static_cast<unsigned long long>(size));
  b[156] = type;
  std::memcpy(b.data() + 157, link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(b.data() + 257, "ustar", 6);
  std::memcpy(b.data() + 263, "00", 2);
  std::memset(b.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  std::snprintf(b.data() + 148, 8, "%06o", sum);
  return b;
}

std::string Padded(const std::string& data) { return data + std::string((512 - data.size() % 512) % 512, '\0'); }

std::string Entry(const std::string& name, const std::string& data) { return Header(name, '0', data.size()) + Padded(data); }

std::string PaxPath(const std::string& path) {
  std::string rec = " path=" + path + "\n";
  size_t len = rec.size() + 1;
  while (std::to_string(len).size() + rec.size() != len) ++len;
  std::string body = std::to_string(len) + rec;
  return Header("pax", 'x', body.size()) + Padded(body);
}

std::string End() { return std::string(1024, '\0'); }

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class TarExtractorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sb-tar-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

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
  TarExtractor::SymlinkRewriter Relocate() {
    return [](const std::string&, const std::string& target) {
      return target == "/old/place" ? std::string("/new/place") : target;
    };
  }

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

}  // namespace
}  // namespace sb
