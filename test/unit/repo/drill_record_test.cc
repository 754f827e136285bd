// DrillRecord: round trip, and the strict grammar of what is read back (the
// repository is untrusted): checksum, members, names, the record's own key.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "repo/drill_record.h"
#include "repo/object_codec.h"

namespace sb {
namespace {

using nlohmann::json;

DrillRecord Passed() {
  DrillRecord r;
  r.database = "main";
  r.system_identifier = 7300000000000000001ull;
  r.container = "7300000000000000001-00000001";
  r.drill_id = "20261130T120000Z-D-1a2b";
  r.backup_id = "20261130T110000Z-F-0c0d";
  r.result = DrillResult::kPassed;
  r.target = "latest";
  r.started = *ParseRfc3339("2026-11-30T12:00:00Z");
  r.finished = *ParseRfc3339("2026-11-30T12:01:30Z");
  r.reached_lsn = *Lsn::Parse("0/5000060");
  r.reached_time = *ParseRfc3339("2026-11-30T11:59:58Z");
  r.restore_seconds = 12.5;
  r.replay_seconds = 3.25;
  r.check_seconds = 20;
  r.bytes = 123456789;
  r.host = "db1";
  return r;
}

std::string Key(const DrillRecord& r) { return DrillRecordKey(r.database, r.container, r.drill_id); }

// The JSON with one change and a recomputed (valid) checksum: only the grammar can refuse it.
std::string Forged(const DrillRecord& r, const std::function<void(json&)>& change) {
  json j = json::parse(r.ToJson());
  change(j);
  j.erase("checksum");
  j["checksum"] = Sha256Hex(j.dump());
  return j.dump();
}

TEST(DrillRecordTest, RoundTrips) {
  const DrillRecord r = Passed();
  auto back = DrillRecord::FromJson(r.ToJson(), Key(r));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->drill_id, r.drill_id);
  EXPECT_EQ(back->backup_id, r.backup_id);
  EXPECT_EQ(back->result, DrillResult::kPassed);
  EXPECT_EQ(back->reached_lsn->ToString(), "0/5000060");
  EXPECT_EQ(back->reached_time, r.reached_time);
  EXPECT_DOUBLE_EQ(back->replay_seconds, 3.25);
  EXPECT_EQ(back->bytes, r.bytes);

  DrillRecord f = Passed();
  f.result = DrillResult::kFailed;
  f.reached_lsn.reset();
  f.reached_time.reset();
  f.error = "object \"db/main/wal/x\" is missing";
  f.failed_object = "db/main/wal/x";
  f.stage = DrillStage::kRecovery;
  f.target = "time 2026-11-30T11:00:00Z";
  auto fb = DrillRecord::FromJson(f.ToJson(), Key(f));
  ASSERT_TRUE(fb.ok()) << fb.status().message();
  EXPECT_EQ(fb->failed_object, "db/main/wal/x");
  EXPECT_EQ(fb->target, "time 2026-11-30T11:00:00Z");
  EXPECT_EQ(fb->stage, DrillStage::kRecovery);
  EXPECT_TRUE(BackupsAtFault(fb->stage));
  EXPECT_FALSE(BackupsAtFault(DrillStage::kPrepare));
}

TEST(DrillRecordTest, RefusesWhatIsOutsideTheGrammar) {
  const DrillRecord r = Passed();
  auto refused = [&](const std::string& text) {
    auto p = DrillRecord::FromJson(text, Key(r));
    return !p.ok() && p.status().code() == StatusCode::kCorruption;
  };
  EXPECT_TRUE(refused("not json"));
  EXPECT_TRUE(refused("[]"));
  std::string tampered = r.ToJson();
  tampered.replace(tampered.find("db1"), 3, "db2");
  EXPECT_TRUE(refused(tampered)) << "checksum";
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["database"] = "../etc"; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["container"] = "x"; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["drill_id"] = "20261130T120000Z-F-1a2b"; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["backup_id"] = "../../x"; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["result"] = "maybe"; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["target"] = "yesterday"; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["reached_lsn"] = "zz"; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["replay_seconds"] = -1; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["restore_seconds"] = 1e300; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["bytes"] = -5; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["host"] = "a\nb"; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["extra"] = 1; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["finished"] = "2026-11-30T11:00:00Z"; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["reached_lsn"] = nullptr; }))) << "a passed drill proves a point";
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["result"] = "failed"; }))) << "a failed drill names its cause";
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["version"] = 2; })));
  EXPECT_TRUE(refused(Forged(r, [](json& j) { j["stage"] = "restore"; }))) << "a passed drill has no stage";
  // A valid record under another name is a copy, not this drill's record.
  auto moved = DrillRecord::FromJson(r.ToJson(), DrillRecordKey("main", r.container, "20261130T120000Z-D-ffff"));
  EXPECT_FALSE(moved.ok());
}

TEST(DrillRecordTest, IdsAndKeys) {
  const std::string id = NewDrillId(*ParseRfc3339("2026-11-30T12:00:00Z"));
  EXPECT_TRUE(ValidateDrillId(id).ok()) << id;
  EXPECT_EQ(id.substr(0, 19), "20261130T120000Z-D-");
  EXPECT_FALSE(ValidateDrillId("20261130T120000Z-D-1A2B").ok());
  EXPECT_FALSE(ValidateDrillId("../20261130T120000Z-D").ok());
  EXPECT_EQ(DrillRecordKey("main", "1-00000001", id), "db/main/drills/1-00000001/" + id + ".json");
}

}  // namespace
}  // namespace sb
