// The Storage conformance suite (see test/support/storage_conformance.h),
// instantiated here for the memory and local drivers and for the fault and
// retry decorators in pass-through mode, followed by tests of behaviour
// specific to LocalStorage and MemoryStorage.
#include "support/storage_conformance.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/text.h"
#include "storage/fault/fault_storage.h"
#include "storage/local/local_storage.h"
#include "storage/memory/memory_storage.h"
#include "storage/retry/retry_storage.h"
#include "storage/storage_factory.h"

namespace sb::test {

// ---------------------------------------------------------------------------
// Fixture

void StorageConformanceTest::SetUp() {
  storage_ = Open();
  ASSERT_NE(storage_, nullptr);
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info->name();
  std::replace(name.begin(), name.end(), '/', '_');
  std::random_device rd;
  base_ = "conformance/" + name + "-" + std::to_string(rd() % 1000000) + std::to_string(::getpid()) + "/";
}

void StorageConformanceTest::TearDown() {
  if (!storage_) return;
  auto all = ListAll(*storage_, base_);
  if (!all.ok()) return;
  for (const auto& o : *all) (void)storage_->Delete(o.key);
}

std::vector<std::string> StorageConformanceTest::ListKeys(std::string_view prefix) {
  std::vector<std::string> keys;
  auto all = ListAll(*storage_, Key(prefix));
  EXPECT_TRUE(all.ok()) << all.status().ToString();
  if (!all.ok()) return keys;
  for (const auto& o : *all) keys.push_back(o.key.substr(base_.size()));
  return keys;
}

namespace {

std::string AllBytes() {
  std::string s;
  for (int rep = 0; rep < 4; ++rep) {
    for (int c = 0; c < 256; ++c) s.push_back(static_cast<char>(c));
  }
  s += std::string(100, '\0');
  return s;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

// Both copy the status out, so temporaries may be passed.
#define ASSERT_OK(expr)                                               \
  do {                                                                \
    const ::sb::Status sb_s_ = StatusOf(expr);                        \
    ASSERT_TRUE(sb_s_.ok()) << #expr << ": " << sb_s_.ToString();     \
  } while (0)

#define EXPECT_CODE(expr, code_)                                              \
  do {                                                                        \
    const ::sb::Status sb_s_ = StatusOf(expr);                                \
    EXPECT_EQ(sb_s_.code(), (code_)) << #expr << ": " << sb_s_.ToString();    \
  } while (0)

}  // namespace

// ---------------------------------------------------------------------------
// Round trips

TEST_P(StorageConformanceTest, PutGetRoundTripsTextBinaryAndEmpty) {
  const std::string binary = AllBytes();
  ASSERT_OK(storage_->Put(Key("text"), "hello, world"));
  ASSERT_OK(storage_->Put(Key("dir/sub/binary.bin"), binary));
  ASSERT_OK(storage_->Put(Key("empty"), ""));

  auto text = storage_->Get(Key("text"));
  ASSERT_OK(text.status());
  EXPECT_EQ(*text, "hello, world");

  auto bin = storage_->Get(Key("dir/sub/binary.bin"));
  ASSERT_OK(bin.status());
  EXPECT_EQ(bin->size(), binary.size());
  EXPECT_TRUE(*bin == binary) << "binary data with NULs must round-trip byte for byte";

  auto empty = storage_->Get(Key("empty"));
  ASSERT_OK(empty.status());
  EXPECT_EQ(*empty, "");
  auto empty_info = storage_->Stat(Key("empty"));
  ASSERT_OK(empty_info.status());
  EXPECT_EQ(empty_info->size, 0u);
  auto listed = ListAll(*storage_, Key("empty"));
  ASSERT_OK(listed.status());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].size, 0u);
}

TEST_P(StorageConformanceTest, KeysWithSpacesAndPunctuationRoundTrip) {
  const std::vector<std::string> keys = {"with space/file name.txt", "plus+equals=percent%25&amp", "unicode-\xc3\xbc.bin",
                                         "colon:semi;comma,tilde~"};
  for (const auto& k : keys) ASSERT_OK(storage_->Put(Key(k), "v:" + k));
  for (const auto& k : keys) {
    auto got = storage_->Get(Key(k));
    ASSERT_OK(got.status());
    EXPECT_EQ(*got, "v:" + k);
  }
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(ListKeys(), sorted);
}

TEST_P(StorageConformanceTest, LargeObjectRoundTrips) {
  const std::string big = RandomBytes(3 * 1024 * 1024 + 17, 42);
  ASSERT_OK(storage_->Put(Key("big"), big));
  auto got = storage_->Get(Key("big"));
  ASSERT_OK(got.status());
  EXPECT_TRUE(*got == big);
  auto range = storage_->GetRange(Key("big"), 1024 * 1024 - 5, 10);
  ASSERT_OK(range.status());
  EXPECT_EQ(*range, big.substr(1024 * 1024 - 5, 10));
}

TEST_P(StorageConformanceTest, OverwriteReplacesTheWholeObject) {
  ASSERT_OK(storage_->Put(Key("obj"), "a much longer first version"));
  ASSERT_OK(storage_->Put(Key("obj"), "v2"));
  auto got = storage_->Get(Key("obj"));
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, "v2");
  auto info = storage_->Stat(Key("obj"));
  ASSERT_OK(info.status());
  EXPECT_EQ(info->size, 2u);
  EXPECT_EQ(ListKeys(), std::vector<std::string>{"obj"});
}

TEST_P(StorageConformanceTest, OtherHandlesSeeTheSameData) {
  auto other = Open();
  ASSERT_OK(storage_->Put(Key("shared"), "from one"));
  auto got = other->Get(Key("shared"));
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, "from one");
  ASSERT_OK(other->Delete(Key("shared")));
  EXPECT_CODE(storage_->Get(Key("shared")), StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------
// if_absent

TEST_P(StorageConformanceTest, IfAbsentCreatesOnlyWhenMissing) {
  PutOptions if_absent{.if_absent = true};
  ASSERT_OK(storage_->Put(Key("once"), "first", if_absent));
  Status again = storage_->Put(Key("once"), "second", if_absent);
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
  EXPECT_FALSE(again.message().empty());
  auto got = storage_->Get(Key("once"));
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, "first") << "a refused if_absent Put must not change the object";

  ASSERT_OK(storage_->Delete(Key("once")));
  ASSERT_OK(storage_->Put(Key("once"), "third", if_absent));
  got = storage_->Get(Key("once"));
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, "third");
}

TEST_P(StorageConformanceTest, IfAbsentRaceHasExactlyOneWinner) {
  constexpr int kThreads = 8;
  std::atomic<int> winners{0}, losers{0}, others{0};
  std::atomic<int> winner_id{-1};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto handle = Open();
      Status s = handle->Put(Key("race"), "writer " + std::to_string(t), PutOptions{.if_absent = true});
      if (s.ok()) {
        ++winners;
        winner_id = t;
      } else if (s.IsAlreadyExists()) {
        ++losers;
      } else {
        ++others;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(losers.load(), kThreads - 1);
  EXPECT_EQ(others.load(), 0);
  auto got = storage_->Get(Key("race"));
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, "writer " + std::to_string(winner_id.load()));
}

// ---------------------------------------------------------------------------
// Missing keys

TEST_P(StorageConformanceTest, MissingKeysAreNotFound) {
  EXPECT_CODE(storage_->Get(Key("missing")), StatusCode::kNotFound);
  EXPECT_CODE(storage_->GetRange(Key("missing"), 0, 10), StatusCode::kNotFound);
  EXPECT_CODE(storage_->Stat(Key("missing")), StatusCode::kNotFound);
  EXPECT_CODE(storage_->Get(Key("no/such/dir/missing")), StatusCode::kNotFound);
  EXPECT_CODE(storage_->Stat(Key("no/such/dir/missing")), StatusCode::kNotFound);
  // A "directory" made only by other keys is not an object.
  ASSERT_OK(storage_->Put(Key("parent/child"), "x"));
  EXPECT_CODE(storage_->Get(Key("parent")), StatusCode::kNotFound);
  EXPECT_CODE(storage_->Stat(Key("parent")), StatusCode::kNotFound);
  auto r = storage_->Get(Key("missing"));
  EXPECT_FALSE(r.status().message().empty());
}

// ---------------------------------------------------------------------------
// Ranged reads

TEST_P(StorageConformanceTest, GetRangeReadsSlicesAndCutsAtTheEnd) {
  ASSERT_OK(storage_->Put(Key("digits"), "0123456789"));
  struct Case {
    uint64_t offset, length;
    std::string want;
  };
  const std::vector<Case> cases = {
      {0, 4, "0123"}, {3, 4, "3456"},  {0, 10, "0123456789"}, {8, 10, "89"},
      {9, 1, "9"},    {10, 5, ""},     {100, 5, ""},          {0, 1000, "0123456789"},
  };
  for (const auto& c : cases) {
    auto got = storage_->GetRange(Key("digits"), c.offset, c.length);
    ASSERT_OK(got.status());
    EXPECT_EQ(*got, c.want) << "offset " << c.offset << " length " << c.length;
  }
  ASSERT_OK(storage_->Put(Key("zero"), ""));
  auto zero = storage_->GetRange(Key("zero"), 0, 10);
  ASSERT_OK(zero.status());
  EXPECT_EQ(*zero, "");
  const std::string binary = AllBytes();
  ASSERT_OK(storage_->Put(Key("binary"), binary));
  auto mid = storage_->GetRange(Key("binary"), 250, 20);
  ASSERT_OK(mid.status());
  EXPECT_TRUE(*mid == binary.substr(250, 20));
}

// ---------------------------------------------------------------------------
// Stat

TEST_P(StorageConformanceTest, StatReportsKeySizeAndMtime) {
  const std::string data(12345, 'x');
  ASSERT_OK(storage_->Put(Key("sized"), data));
  auto info = storage_->Stat(Key("sized"));
  ASSERT_OK(info.status());
  EXPECT_EQ(info->key, Key("sized"));
  EXPECT_EQ(info->size, data.size());
  const auto now = std::chrono::system_clock::now();
  EXPECT_GT(info->mtime, now - std::chrono::hours(24));
  EXPECT_LT(info->mtime, now + std::chrono::hours(24));
}

// ---------------------------------------------------------------------------
// List

TEST_P(StorageConformanceTest, ListIsLexicographicWithSizes) {
  // Chosen so that walking directories in name order would get it wrong:
  // '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' (0x30).
  const std::vector<std::string> keys = {"a/x0", "a/x/z", "a/x-y", "a/x.1", "b", "a/X", "a/x/y/deep", "a/w"};
  for (size_t i = 0; i < keys.size(); ++i) ASSERT_OK(storage_->Put(Key(keys[i]), std::string(i + 1, 'd')));
  std::vector<std::string> want = keys;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ListKeys(), want);

  auto page = storage_->List(base_, "", 1000);
  ASSERT_OK(page.status());
  EXPECT_TRUE(page->next_token.empty());
  ASSERT_EQ(page->objects.size(), keys.size());
  for (const auto& o : page->objects) {
    size_t idx = std::find(keys.begin(), keys.end(), o.key.substr(base_.size())) - keys.begin();
    ASSERT_LT(idx, keys.size());
    EXPECT_EQ(o.size, idx + 1) << o.key;
  }
}

TEST_P(StorageConformanceTest, ListPaginatesWithMaxResults) {
  const std::vector<std::string> keys = {"p/1", "p/2", "p/3/a", "p/3/b", "p/4"};
  for (const auto& k : keys) ASSERT_OK(storage_->Put(Key(k), k));
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = storage_->List(Key("p/"), token, 2);
    ASSERT_OK(page.status());
    EXPECT_LE(page->objects.size(), 2u);
    for (const auto& o : page->objects) seen.push_back(o.key.substr(base_.size()));
    if (!page->next_token.empty()) {
      EXPECT_NE(page->next_token, token) << "a continuation token must make progress";
    }
    token = page->next_token;
    ASSERT_LT(++pages, 10) << "listing does not terminate";
  } while (!token.empty());
  EXPECT_EQ(seen, keys);
  EXPECT_GE(pages, 3);

  // A token also works on another handle (tokens carry no per-handle state).
  auto first = storage_->List(Key("p/"), "", 2);
  ASSERT_OK(first.status());
  ASSERT_FALSE(first->next_token.empty());
  auto other = Open();
  auto second = other->List(Key("p/"), first->next_token, 2);
  ASSERT_OK(second.status());
  ASSERT_FALSE(second->objects.empty());
  EXPECT_EQ(second->objects[0].key, Key("p/3/a"));
}

TEST_P(StorageConformanceTest, ListPrefixIsAPlainStringPrefix) {
  const std::vector<std::string> keys = {"q/a", "q/b-3", "q/b/1", "q/b/2/deep", "q/bc/2", "q/c"};
  for (const auto& k : keys) ASSERT_OK(storage_->Put(Key(k), "v"));
  EXPECT_EQ(ListKeys("q/b"), (std::vector<std::string>{"q/b-3", "q/b/1", "q/b/2/deep", "q/bc/2"}));
  EXPECT_EQ(ListKeys("q/b/"), (std::vector<std::string>{"q/b/1", "q/b/2/deep"}));
  EXPECT_EQ(ListKeys("q/bc"), (std::vector<std::string>{"q/bc/2"}));
  EXPECT_EQ(ListKeys("q/c"), (std::vector<std::string>{"q/c"}));
  EXPECT_EQ(ListKeys("q/"), keys);
  EXPECT_EQ(ListKeys("q/z"), std::vector<std::string>{});
  // Paging through a prefix never leaves it.
  std::vector<std::string> seen;
  std::string token;
  do {
    auto page = storage_->List(Key("q/b"), token, 1);
    ASSERT_OK(page.status());
    for (const auto& o : page->objects) seen.push_back(o.key.substr(base_.size()));
    token = page->next_token;
  } while (!token.empty());
  EXPECT_EQ(seen, (std::vector<std::string>{"q/b-3", "q/b/1", "q/b/2/deep", "q/bc/2"}));
}

TEST_P(StorageConformanceTest, ListOfAnEmptyPrefixIsEmptyAndComplete) {
  auto page = storage_->List(Key("nothing/here/"), "", 10);
  ASSERT_OK(page.status());
  EXPECT_TRUE(page->objects.empty());
  EXPECT_TRUE(page->next_token.empty());
}

// ---------------------------------------------------------------------------
// Delete

TEST_P(StorageConformanceTest, DeleteIsIdempotentAndOnlyRemovesThatKey) {
  ASSERT_OK(storage_->Delete(Key("never-existed")));
  ASSERT_OK(storage_->Delete(Key("no/such/dir/never-existed")));
  ASSERT_OK(storage_->Put(Key("d/x"), "1"));
  ASSERT_OK(storage_->Put(Key("d/x2"), "2"));
  ASSERT_OK(storage_->Put(Key("d/y/z"), "3"));
  ASSERT_OK(storage_->Delete(Key("d/x")));
  EXPECT_CODE(storage_->Get(Key("d/x")), StatusCode::kNotFound);
  EXPECT_CODE(storage_->Stat(Key("d/x")), StatusCode::kNotFound);
  ASSERT_OK(storage_->Delete(Key("d/x")));
  EXPECT_EQ(ListKeys(), (std::vector<std::string>{"d/x2", "d/y/z"}));
  ASSERT_OK(storage_->Delete(Key("d/y/z")));
  EXPECT_EQ(ListKeys(), (std::vector<std::string>{"d/x2"}));
  // The key can be written again after being deleted.
  ASSERT_OK(storage_->Put(Key("d/y/z"), "again"));
  auto got = storage_->Get(Key("d/y/z"));
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, "again");
}

// ---------------------------------------------------------------------------
// Leases

TEST_P(StorageConformanceTest, LeaseIsExclusiveUntilReleased) {
  auto alice = storage_->AcquireLease(Key("lock"), LeaseOptions{.owner = "alice"});
  ASSERT_OK(alice.status());

  // Same handle, and a second handle onto the same store, are both refused.
  auto bob = storage_->AcquireLease(Key("lock"), LeaseOptions{.owner = "bob"});
  EXPECT_EQ(bob.status().code(), StatusCode::kAlreadyExists) << bob.status().ToString();
  if (GetParam().names_lease_holder) {
    EXPECT_NE(bob.status().message().find("alice"), std::string::npos) << bob.status().ToString();
  }
  auto other = Open();
  auto bob2 = other->AcquireLease(Key("lock"), LeaseOptions{.owner = "bob"});
  EXPECT_EQ(bob2.status().code(), StatusCode::kAlreadyExists) << bob2.status().ToString();

  // Other keys are independent.
  auto unrelated = storage_->AcquireLease(Key("other-lock"), LeaseOptions{.owner = "bob"});
  ASSERT_OK(unrelated.status());

  ASSERT_OK((*alice)->Renew());
  ASSERT_OK((*alice)->Release());

  auto bob3 = other->AcquireLease(Key("lock"), LeaseOptions{.owner = "bob"});
  ASSERT_OK(bob3.status());
  auto carol = storage_->AcquireLease(Key("lock"), LeaseOptions{.owner = "carol"});
  EXPECT_EQ(carol.status().code(), StatusCode::kAlreadyExists);
  if (GetParam().names_lease_holder) {
    EXPECT_NE(carol.status().message().find("bob"), std::string::npos) << carol.status().ToString();
  }
  // Destroying a Lease releases it.
  bob3 = Status::Cancelled("dropped");
  auto carol2 = storage_->AcquireLease(Key("lock"), LeaseOptions{.owner = "carol"});
  ASSERT_OK(carol2.status());
  ASSERT_OK((*carol2)->Release());
  ASSERT_OK((*unrelated)->Release());
}

// Issue 11: after a kill -9 the restarted agent must take back its own lease
// at once, not wait for it to expire; another holder is still refused.
TEST_P(StorageConformanceTest, LeaseTheSameHolderDidNotReleaseIsRetakenAtOnce) {
  const LeaseOptions mine{.ttl = std::chrono::seconds(60), .owner = "agent-a",
                          .holder_id = "6f1c2a4e-0b7d-4e2a-9c3b-5d8e7f6a1b2c"};
  auto first = storage_->AcquireLease(Key("lock"), mine);
  ASSERT_OK(first.status());
  std::unique_ptr<Lease> crashed = std::move(first).value();
  // The holder dies without releasing. On file:// the kernel drops its flock.
  if (GetParam().lease_dies_with_process) crashed.reset();

  auto restarted = Open();
  auto again = restarted->AcquireLease(Key("lock"), mine);
  ASSERT_OK(again.status());
  ASSERT_OK((*again)->Renew());

  auto other = Open()->AcquireLease(Key("lock"), LeaseOptions{.owner = "agent-b", .holder_id = "another-holder"});
  EXPECT_EQ(other.status().code(), StatusCode::kAlreadyExists) << other.status().ToString();
  if (GetParam().names_lease_holder) {
    EXPECT_NE(other.status().message().find("agent-a"), std::string::npos) << other.status().ToString();
  }
  auto anonymous = Open()->AcquireLease(Key("lock"), LeaseOptions{.owner = "agent-c"});
  EXPECT_EQ(anonymous.status().code(), StatusCode::kAlreadyExists) << anonymous.status().ToString();

  ASSERT_OK((*again)->Release());
  crashed.reset();  // the dead process's handle, after the lease is gone: harmless
  auto next = Open()->AcquireLease(Key("lock"), LeaseOptions{.owner = "agent-b", .holder_id = "another-holder"});
  ASSERT_OK(next.status());
  ASSERT_OK((*next)->Release());
}

TEST_P(StorageConformanceTest, ConcurrentLeaseAttemptsHaveOneWinner) {
  constexpr int kThreads = 8;
  std::atomic<int> winners{0}, busy{0}, others{0};
  std::vector<std::unique_ptr<Lease>> held(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto handle = Open();
      auto lease = handle->AcquireLease(Key("contended"), LeaseOptions{.owner = "t" + std::to_string(t)});
      if (lease.ok()) {
        ++winners;
        held[t] = std::move(lease).value();
      } else if (lease.status().IsAlreadyExists()) {
        ++busy;
      } else {
        ++others;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(busy.load(), kThreads - 1);
  EXPECT_EQ(others.load(), 0);
  for (auto& l : held) {
    if (l) ASSERT_OK(l->Release());
  }
}

// ---------------------------------------------------------------------------
// Concurrency and atomicity

TEST_P(StorageConformanceTest, ConcurrentPutsFromEightThreads) {
  constexpr int kThreads = 8;
  constexpr int kKeysPerThread = 12;
  constexpr size_t kSharedSize = 64 * 1024;
  std::atomic<bool> stop{false};
  std::atomic<int> torn_reads{0}, read_errors{0}, write_errors{0};

  // A reader that must only ever see one writer's whole value for "shared".
  std::thread reader([&] {
    auto handle = Open();
    while (!stop) {
      auto got = handle->Get(Key("shared"));
      if (!got.ok()) {
        if (!got.status().IsNotFound()) ++read_errors;
        continue;
      }
      const std::string& v = *got;
      if (v.size() != kSharedSize || v.find_first_not_of(v[0]) != std::string::npos) ++torn_reads;
    }
  });

  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      auto handle = Open();
      const std::string mine(kSharedSize, static_cast<char>('A' + t));
      for (int i = 0; i < kKeysPerThread; ++i) {
        std::string k = Key("c/t" + std::to_string(t) + "/k" + std::to_string(i));
        if (!handle->Put(k, "thread " + std::to_string(t) + " key " + std::to_string(i)).ok()) ++write_errors;
        if (!handle->Put(Key("shared"), mine).ok()) ++write_errors;
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  reader.join();

  EXPECT_EQ(write_errors.load(), 0);
  EXPECT_EQ(read_errors.load(), 0);
  EXPECT_EQ(torn_reads.load(), 0) << "a reader saw a partially written object";
  auto listed = ListKeys("c/");
  EXPECT_EQ(listed.size(), static_cast<size_t>(kThreads * kKeysPerThread));
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end()));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kKeysPerThread; ++i) {
      auto got = storage_->Get(Key("c/t" + std::to_string(t) + "/k" + std::to_string(i)));
      ASSERT_OK(got.status());
      EXPECT_EQ(*got, "thread " + std::to_string(t) + " key " + std::to_string(i));
    }
  }
  auto shared = storage_->Get(Key("shared"));
  ASSERT_OK(shared.status());
  EXPECT_EQ(shared->size(), kSharedSize);
  EXPECT_EQ(shared->find_first_not_of((*shared)[0]), std::string::npos);
}

TEST_P(StorageConformanceTest, DescribeIsNonEmpty) { EXPECT_FALSE(storage_->Describe().empty()); }

// ---------------------------------------------------------------------------
// Instantiations: memory (through its URL), local (a temp dir per process),
// and the decorators with nothing injected, which must not change behaviour.

namespace {

std::string& LocalConformanceRoot() {
  static std::string root = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sb-conformance-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return tmpl;
  }();
  return root;
}

class RemoveLocalRoot : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(LocalConformanceRoot(), ec);
  }
};
[[maybe_unused]] ::testing::Environment* const kRemoveLocalRoot =
    ::testing::AddGlobalTestEnvironment(new RemoveLocalRoot);

std::unique_ptr<Storage> OpenOrDie(const std::string& url) {
  auto s = OpenStorage(url);
  if (!s.ok()) {
    ADD_FAILURE() << s.status().ToString();
    return std::make_unique<MemoryStorage>();
  }
  return std::move(s).value();
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(
    Drivers, StorageConformanceTest,
    ::testing::Values(
        NamedStorageFactory{"memory", [] { return OpenOrDie("memory://conformance"); }},
        NamedStorageFactory{"local", [] { return std::unique_ptr<Storage>(new LocalStorage(LocalConformanceRoot())); },
                            /*names_lease_holder=*/true, /*lease_dies_with_process=*/true},
        NamedStorageFactory{"local_via_url", [] { return OpenOrDie("file://" + LocalConformanceRoot() + "/via-url"); },
                            /*names_lease_holder=*/true, /*lease_dies_with_process=*/true},
        NamedStorageFactory{"fault_passthrough",
                            [] {
                              return std::unique_ptr<Storage>(
                                  std::make_unique<FaultStorage>(OpenOrDie("memory://conformance-fault")));
                            }},
        NamedStorageFactory{"retry_passthrough",
                            [] {
                              return std::unique_ptr<Storage>(std::make_unique<RetryStorage>(
                                  OpenOrDie("file://" + LocalConformanceRoot() + "/retry")));
                            },
                            /*names_lease_holder=*/true, /*lease_dies_with_process=*/true}),
    StorageConformanceName());

// ---------------------------------------------------------------------------
// LocalStorage specifics

class LocalStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sb-local-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    storage_ = std::make_unique<LocalStorage>(root_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::permissions(root_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(root_, ec);
  }
  std::vector<std::string> TempFilesUnder(const std::string& dir) {
    std::vector<std::string> found;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
      if (e.path().filename().string().starts_with(".tmp.")) found.push_back(e.path().string());
    }
    return found;
  }

  std::string root_;
  std::unique_ptr<LocalStorage> storage_;
};

TEST_F(LocalStorageTest, KeysMapToFilesUnderTheRoot) {
  ASSERT_OK(storage_->Put("a/b/c.txt", "content"));
  std::ifstream in(root_ + "/a/b/c.txt", std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(s, "content");
  EXPECT_EQ(storage_->Describe(), "file://" + root_);
  EXPECT_TRUE(StartsWith(storage_->Describe(), "file:///"));
}

// Restore windows end at the newest WAL's mtime: a whole-second mtime would
// put a target made in the window's last second outside it.
TEST_F(LocalStorageTest, MtimeKeepsTheFileSystemsSubSecondPart) {
  ASSERT_OK(storage_->Put("w/part", "wal"));
  const timespec times[2] = {{1'700'000'000, 123'456'789}, {1'700'000'000, 123'456'789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (root_ + "/w/part").c_str(), times, 0), 0);
  const SystemTime want = SystemTime(std::chrono::seconds(1'700'000'000)) +
                          std::chrono::duration_cast<SystemTime::duration>(std::chrono::nanoseconds(123'456'789));
  auto info = storage_->Stat("w/part");
  ASSERT_OK(info.status());
  EXPECT_EQ(info->mtime, want);
  auto page = storage_->List("w/", "");
  ASSERT_OK(page.status());
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].mtime, want);
}

TEST_F(LocalStorageTest, InvalidKeysAreRejected) {
  for (const std::string& key : std::vector<std::string>{"", "/abs", "a/../b", "..", "../escape", "a//b", "a/", "./a", "a/.", "a/.tmp.x",
                                std::string("nul\0byte", 8)}) {
    EXPECT_CODE(storage_->Put(key, "x"), StatusCode::kInvalidArgument);
    EXPECT_CODE(storage_->Get(key), StatusCode::kInvalidArgument);
    EXPECT_CODE(storage_->GetRange(key, 0, 1), StatusCode::kInvalidArgument);
    EXPECT_CODE(storage_->Stat(key), StatusCode::kInvalidArgument);
    EXPECT_CODE(storage_->Delete(key), StatusCode::kInvalidArgument);
    EXPECT_CODE(storage_->AcquireLease(key, {}), StatusCode::kInvalidArgument);
  }
  Status s = storage_->Put("a/../../etc/passwd", "x");
  EXPECT_NE(s.message().find("\"a/../../etc/passwd\""), std::string::npos) << s.ToString();
  EXPECT_CODE(storage_->List("../", ""), StatusCode::kInvalidArgument);
  EXPECT_CODE(storage_->List("a/../", ""), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(root_).parent_path() / "escape"));
}

TEST_F(LocalStorageTest, PutLeavesNoTempFilesAndListSkipsStrayOnes) {
  ASSERT_OK(storage_->Put("x/obj", "1"));
  ASSERT_OK(storage_->Put("x/obj", "2"));
  EXPECT_CODE(storage_->Put("x/obj", "3", PutOptions{.if_absent = true}), StatusCode::kAlreadyExists);
  ASSERT_OK(storage_->Put("x/new", "4", PutOptions{.if_absent = true}));
  EXPECT_TRUE(TempFilesUnder(root_).empty());

  // What a crash between create and rename leaves behind.
  std::ofstream(root_ + "/x/.tmp.12345.0.99") << "partial";
  std::ofstream(root_ + "/.tmp.1.2.3") << "partial";
  auto all = ListAll(*storage_, "");
  ASSERT_OK(all.status());
  std::vector<std::string> keys;
  for (const auto& o : *all) keys.push_back(o.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"x/new", "x/obj"}));
}

TEST_F(LocalStorageTest, DeletePrunesEmptyParentsButNotTheRoot) {
  ASSERT_OK(storage_->Put("a/b/c/d", "x"));
  ASSERT_OK(storage_->Put("a/keep", "x"));
  ASSERT_OK(storage_->Delete("a/b/c/d"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/a/b"));
  EXPECT_TRUE(std::filesystem::exists(root_ + "/a/keep"));
  ASSERT_OK(storage_->Delete("a/keep"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/a"));
  EXPECT_TRUE(std::filesystem::is_directory(root_));
}

TEST_F(LocalStorageTest, ObjectAndDirectoryOfTheSameNameConflict) {
  ASSERT_OK(storage_->Put("a", "file"));
  Status s = storage_->Put("a/b", "x");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find(root_ + "/a"), std::string::npos) << s.ToString();
  EXPECT_CODE(storage_->Get("a/b"), StatusCode::kNotFound);
  EXPECT_CODE(storage_->Stat("a/b"), StatusCode::kNotFound);
  ASSERT_OK(storage_->Delete("a/b"));
  auto page = storage_->List("a/", "");
  ASSERT_OK(page.status());
  EXPECT_TRUE(page->objects.empty());
}

TEST_F(LocalStorageTest, ErrnoIsTranslatedInOnePlace) {
  Status s = LocalStorage::ErrnoToStatus(ENOENT, "open", "/r/k");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("\"/r/k\""), std::string::npos) << s.ToString();
  EXPECT_EQ(LocalStorage::ErrnoToStatus(EACCES, "open", "/r/k").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(LocalStorage::ErrnoToStatus(EPERM, "open", "/r/k").code(), StatusCode::kPermissionDenied);
  for (int err : {ENOSPC, EDQUOT}) {
    Status full = LocalStorage::ErrnoToStatus(err, "write", "/r/k");
    EXPECT_EQ(full.code(), StatusCode::kIoError);
    EXPECT_NE(full.message().find("disk full"), std::string::npos) << full.ToString();
    EXPECT_NE(full.message().find("hint:"), std::string::npos) << full.ToString();
  }
  EXPECT_EQ(LocalStorage::ErrnoToStatus(EIO, "read", "/r/k").code(), StatusCode::kIoError);
  EXPECT_EQ(LocalStorage::ErrnoToStatus(EEXIST, "link", "/r/k").code(), StatusCode::kAlreadyExists);
}

TEST_F(LocalStorageTest, UnwritableDirectoryIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  ASSERT_OK(storage_->Put("ro/existing", "x"));
  ASSERT_EQ(::chmod((root_ + "/ro").c_str(), 0500), 0);
  Status s = storage_->Put("ro/new", "x");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find(root_ + "/ro"), std::string::npos) << s.ToString();
  ASSERT_EQ(::chmod((root_ + "/ro").c_str(), 0700), 0);
}

TEST_F(LocalStorageTest, ListWhoseDirectoryIsAFileIsEmpty) {
  ASSERT_OK(storage_->Put("f", "x"));
  auto page = storage_->List("f/", "");
  ASSERT_OK(page.status());
  EXPECT_TRUE(page->objects.empty());
  auto missing_root = LocalStorage(root_ + "/does-not-exist").List("", "");
  ASSERT_OK(missing_root.status());
  EXPECT_TRUE(missing_root->objects.empty());
}

TEST_F(LocalStorageTest, OpenCreatesTheRootAndRefusesAFile) {
  auto opened = LocalStorage::Open(root_ + "/new/nested/");
  ASSERT_OK(opened.status());
  EXPECT_TRUE(std::filesystem::is_directory(root_ + "/new/nested"));
  EXPECT_EQ((*opened)->Describe(), "file://" + root_ + "/new/nested");
  std::ofstream(root_ + "/plain") << "x";
  EXPECT_FALSE(LocalStorage::Open(root_ + "/plain").ok());
  auto under_file = LocalStorage::Open(root_ + "/plain/sub");
  EXPECT_FALSE(under_file.ok());
  EXPECT_NE(under_file.status().message().find(root_ + "/plain"), std::string::npos)
      << under_file.status().ToString();
}

TEST_F(LocalStorageTest, LeaseFileRecordsOwnerAndPid) {
  auto lease = storage_->AcquireLease("locks/repo", LeaseOptions{.owner = "backup-job-7"});
  ASSERT_OK(lease.status());
  auto content = storage_->Get("locks/repo");
  ASSERT_OK(content.status());
  EXPECT_NE(content->find("owner=backup-job-7"), std::string::npos) << *content;
  EXPECT_NE(content->find("pid=" + std::to_string(::getpid())), std::string::npos) << *content;
  // Two Leases in one process exclude each other (flock is per open file description).
  auto again = storage_->AcquireLease("locks/repo", LeaseOptions{.owner = "other"});
  ASSERT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("lease on \"locks/repo\" is held by backup-job-7"), std::string::npos)
      << again.status().ToString();
  EXPECT_NE(again.status().message().find(std::to_string(::getpid())), std::string::npos);
  ASSERT_OK((*lease)->Release());
  ASSERT_OK((*lease)->Release());  // idempotent
  EXPECT_EQ((*lease)->Renew().code(), StatusCode::kFailedPrecondition);
  ASSERT_OK(storage_->AcquireLease("locks/repo", LeaseOptions{.owner = "other"}).status());
}

TEST_F(LocalStorageTest, RenewNoticesTheLeaseFileWasReplaced) {
  auto lease = storage_->AcquireLease("lk", LeaseOptions{.owner = "a"});
  ASSERT_OK(lease.status());
  ASSERT_OK((*lease)->Renew());
  ASSERT_OK(storage_->Delete("lk"));
  EXPECT_EQ((*lease)->Renew().code(), StatusCode::kFailedPrecondition);
}

TEST_F(LocalStorageTest, LeaseIsReleasedWhenTheHolderProcessDies) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    LocalStorage s(root_);
    auto lease = s.AcquireLease("crash-lock", LeaseOptions{.owner = "doomed-child"});
    char c = lease.ok() ? '1' : '0';
    (void)!::write(ready[1], &c, 1);
    ::pause();  // killed with SIGKILL: no destructor, no Release
    ::_exit(0);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(c, '1');

  auto busy = storage_->AcquireLease("crash-lock", LeaseOptions{.owner = "parent"});
  EXPECT_EQ(busy.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(busy.status().message().find("doomed-child"), std::string::npos) << busy.status().ToString();
  EXPECT_NE(busy.status().message().find(std::to_string(child)), std::string::npos) << busy.status().ToString();

  ::kill(child, SIGKILL);
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
  auto mine = storage_->AcquireLease("crash-lock", LeaseOptions{.owner = "parent"});
  ASSERT_OK(mine.status());
}

// ---------------------------------------------------------------------------
// MemoryStorage specifics

TEST(MemoryStorageTest, LeaseExpiresAfterTtlOnTheInjectedClock) {
  ManualClock clock(std::chrono::system_clock::now());
  MemoryStorage storage(&clock);
  auto alice = storage.AcquireLease("lock", LeaseOptions{.ttl = std::chrono::seconds(10), .owner = "alice"});
  ASSERT_OK(alice.status());
  clock.Advance(std::chrono::seconds(5));
  EXPECT_CODE(storage.AcquireLease("lock", LeaseOptions{.owner = "bob"}), StatusCode::kAlreadyExists);
  ASSERT_OK((*alice)->Renew());  // now expires at t=15
  clock.Advance(std::chrono::seconds(9));
  auto still = storage.AcquireLease("lock", LeaseOptions{.owner = "bob"});
  EXPECT_EQ(still.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(still.status().message().find("held by alice"), std::string::npos) << still.status().ToString();
  clock.Advance(std::chrono::seconds(2));  // t=16: expired
  auto bob = storage.AcquireLease("lock", LeaseOptions{.ttl = std::chrono::seconds(30), .owner = "bob"});
  ASSERT_OK(bob.status());
  Status lost = (*alice)->Renew();
  EXPECT_EQ(lost.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(lost.message().find("bob"), std::string::npos) << lost.ToString();
  // alice releasing (or being destroyed) must not drop bob's lease.
  ASSERT_OK((*alice)->Release());
  EXPECT_CODE(storage.AcquireLease("lock", LeaseOptions{.owner = "carol"}), StatusCode::kAlreadyExists);
}

TEST(MemoryStorageTest, ExpiredButUntakenLeaseCanBeRenewed) {
  ManualClock clock(std::chrono::system_clock::now());
  MemoryStorage storage(&clock);
  auto lease = storage.AcquireLease("lock", LeaseOptions{.ttl = std::chrono::seconds(10), .owner = "a"});
  ASSERT_OK(lease.status());
  clock.Advance(std::chrono::seconds(20));
  ASSERT_OK((*lease)->Renew());
  EXPECT_CODE(storage.AcquireLease("lock", LeaseOptions{.owner = "b"}), StatusCode::kAlreadyExists);
}

TEST(MemoryStorageTest, LeaseMayOutliveTheStorage) {
  std::unique_ptr<Lease> lease;
  {
    MemoryStorage storage;
    auto l = storage.AcquireLease("k", LeaseOptions{.owner = "x"});
    ASSERT_OK(l.status());
    lease = std::move(l).value();
  }
  ASSERT_OK(lease->Release());
}

TEST(MemoryStorageTest, MtimeComesFromTheClock) {
  const SystemTime at = SystemTime(std::chrono::seconds(1'700'000'000)) + std::chrono::microseconds(123456);
  ManualClock clock(at);
  MemoryStorage storage(&clock);
  ASSERT_OK(storage.Put("k", "v"));
  auto info = storage.Stat("k");
  ASSERT_OK(info.status());
  EXPECT_EQ(info->mtime, at);  // exact, sub-second part included
  EXPECT_EQ(storage.ObjectCount(), 1u);
  EXPECT_EQ(storage.Describe(), "memory://");
}

}  // namespace sb::test
