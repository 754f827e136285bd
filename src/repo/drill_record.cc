#include "repo/drill_record.h"

#include <fmt/core.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "repo/object_codec.h"
#include "common/text.h"
#include "repo/json_fields.h"
#include "repo/repository.h"

namespace sb {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "smartbackup-drill";
constexpr int kVersion = 1;
constexpr size_t kMaxText = 2000;    // error
constexpr size_t kMaxShort = 1024;   // host, failed object, target
constexpr double kMaxSeconds = 1e9;  // ~31 years: anything more is not a measurement

bool IsDigitChar(char c) { return c >= '0' && c <= '9'; }
bool IsLowerHexChar(char c) { return IsDigitChar(c) || (c >= 'a' && c <= 'f'); }

// Printable one-line text: no control characters (records are shown to people as they are).
bool IsPlainText(const std::string& s, size_t max) {
  if (s.size() > max) return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

std::string ChecksumOf(json j) {
  j.erase("checksum");
  return Sha256Hex(j.dump());
}

std::string StringMember(const json& j, const char* name) {
  const json& v = j.at(name);
  if (!v.is_string()) throw std::runtime_error(std::string("member \"") + name + "\" is not a string");
  return v.get<std::string>();
}

double SecondsMember(const json& j, const char* name) {
  const json& v = j.at(name);
  if (!v.is_number()) throw std::runtime_error(std::string("member \"") + name + "\" is not a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < 0 || d > kMaxSeconds) {
    throw std::runtime_error(std::string("member \"") + name + "\" is out of range");
  }
  return d;
}

SystemTime TimeMember(const json& j, const char* name) {
  auto t = ParseRfc3339(StringMember(j, name));
  if (!t.ok()) throw std::runtime_error(std::string("member \"") + name + "\" is not an RFC 3339 time");
  return *t;
}

// "latest", "time <RFC 3339>" or "lsn <LSN>".
bool IsTarget(const std::string& t) {
  if (t == "latest") return true;
  if (StartsWith(t, "time ")) return ParseRfc3339(t.substr(5)).ok();
  if (StartsWith(t, "lsn ")) return Lsn::Parse(t.substr(4)).ok();
  return false;
}

}  // namespace

const char* DrillResultName(DrillResult result) { return result == DrillResult::kPassed ? "passed" : "failed"; }

const char* DrillStageName(DrillStage stage) {
  switch (stage) {
    case DrillStage::kNone: return "";
    case DrillStage::kPlan: return "plan";
    case DrillStage::kPrepare: return "prepare";
    case DrillStage::kRestore: return "restore";
    case DrillStage::kRecovery: return "recovery";
    case DrillStage::kCheck: return "check";
  }
  return "";
}

bool BackupsAtFault(DrillStage stage) {
  return stage == DrillStage::kRestore || stage == DrillStage::kRecovery || stage == DrillStage::kCheck;
}

std::string NewDrillId(SystemTime start) {
  unsigned char rnd[2];
  RAND_bytes(rnd, sizeof rnd);
  return fmt::format("{}-D-{:02x}{:02x}", FormatCompactTime(start), rnd[0], rnd[1]);
}

Status ValidateDrillId(std::string_view id) {
  const bool ok = id.size() == 23 && std::all_of(id.begin(), id.begin() + 8, IsDigitChar) && id[8] == 'T' &&
                  std::all_of(id.begin() + 9, id.begin() + 15, IsDigitChar) && id[15] == 'Z' && id[16] == '-' &&
                  id[17] == 'D' && id[18] == '-' && std::all_of(id.begin() + 19, id.end(), IsLowerHexChar);
  if (ok) return Status::Ok();
  return Status::InvalidArgument(
      fmt::format("invalid drill id \"{}\"; hint: a drill id looks like 20261130T120000Z-D-1a2b", Printable(id)));
}

std::string DrillRecordKey(const std::string& db, const std::string& container, const std::string& drill_id) {
  return fmt::format("db/{}/drills/{}/{}.json", db, container, drill_id);
}

std::string DrillRecord::ToJson() const {
  auto opt_time = [](const std::optional<SystemTime>& t) { return t ? json(FormatRfc3339(*t)) : json(nullptr); };
  json j = {{"format", kFormat},
            {"version", kVersion},
            {"database", database},
            {"system_identifier", std::to_string(system_identifier)},
            {"container", container},
            {"drill_id", drill_id},
            {"backup_id", backup_id.empty() ? json(nullptr) : json(backup_id)},
            {"result", DrillResultName(result)},
            {"target", target},
            {"started", FormatRfc3339(started)},
            {"finished", FormatRfc3339(finished)},
            {"reached_lsn", reached_lsn ? json(reached_lsn->ToString()) : json(nullptr)},
            {"reached_time", opt_time(reached_time)},
            {"restore_seconds", restore_seconds},
            {"replay_seconds", replay_seconds},
            {"check_seconds", check_seconds},
            {"bytes", bytes},
            {"host", host},
            {"error", error.empty() ? json(nullptr) : json(error)},
            {"failed_object", failed_object.empty() ? json(nullptr) : json(failed_object)},
            {"stage", stage == DrillStage::kNone ? json(nullptr) : json(DrillStageName(stage))}};
  j["checksum"] = ChecksumOf(j);
  return j.dump(1);
}

Result<DrillRecord> DrillRecord::FromJson(std::string_view text, const std::string& origin) {
  auto corrupt = [&](const std::string& why) {
    return Status::Corruption(
        fmt::format("drill record \"{}\" is corrupt ({}); hint: delete it, a new drill writes a new one",
                    Printable(origin), why));
  };
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt("not valid JSON");
  if (!j.contains("format") || !j["format"].is_string() || j["format"].get<std::string>() != kFormat) {
    return corrupt("not a smartbackup drill record");
  }
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int64_t>() != kVersion) {
    return corrupt("unknown version");
  }
  if (!j.contains("checksum") || !j["checksum"].is_string()) return corrupt("no checksum");
  static const char* kMembers[] = {"format", "version", "database", "system_identifier", "container", "drill_id",
                                   "backup_id", "result", "target", "started", "finished", "reached_lsn",
                                   "reached_time", "restore_seconds", "replay_seconds", "check_seconds", "bytes",
                                   "host", "error", "failed_object", "stage", "checksum"};
  for (const auto& item : j.items()) {
    const std::string& name = item.key();  // a plain reference: clang 14 cannot capture a structured binding
    if (std::find_if(std::begin(kMembers), std::end(kMembers), [&](const char* m) { return name == m; }) ==
        std::end(kMembers)) {
      return corrupt("unknown member");
    }
  }
  DrillRecord r;
  try {
    if (j["checksum"].get<std::string>() != ChecksumOf(j)) return corrupt("checksum mismatch");
    r.database = StringMember(j, "database");
    if (!Repository::ValidateDatabaseName(r.database).ok()) return corrupt("invalid database name");
    auto sysid = Repository::ParseSystemIdentifier(StringMember(j, "system_identifier"));
    if (!sysid) return corrupt("invalid system identifier");
    r.system_identifier = *sysid;
    r.container = StringMember(j, "container");
    if (!Repository::ValidateContainerName(r.container).ok()) return corrupt("invalid container");
    r.drill_id = StringMember(j, "drill_id");
    if (!ValidateDrillId(r.drill_id).ok()) return corrupt("invalid drill id");
    if (!j.at("backup_id").is_null()) {
      r.backup_id = StringMember(j, "backup_id");
      if (!Repository::ValidateBackupId(r.backup_id).ok()) return corrupt("invalid backup id");
    }
    const std::string result = StringMember(j, "result");
    if (result == "passed") {
      r.result = DrillResult::kPassed;
    } else if (result == "failed") {
      r.result = DrillResult::kFailed;
    } else {
      return corrupt("invalid result");
    }
    r.target = StringMember(j, "target");
    if (r.target.size() > kMaxShort || !IsTarget(r.target)) return corrupt("invalid target");
    r.started = TimeMember(j, "started");
    r.finished = TimeMember(j, "finished");
    if (r.finished < r.started) return corrupt("finished before it started");
    if (!j.at("reached_lsn").is_null()) {
      auto lsn = Lsn::Parse(StringMember(j, "reached_lsn"));
      if (!lsn.ok()) return corrupt("invalid reached_lsn");
      r.reached_lsn = *lsn;
    }
    if (!j.at("reached_time").is_null()) r.reached_time = TimeMember(j, "reached_time");
    r.restore_seconds = SecondsMember(j, "restore_seconds");
    r.replay_seconds = SecondsMember(j, "replay_seconds");
    r.check_seconds = SecondsMember(j, "check_seconds");
    r.bytes = IntegerMember<uint64_t>(j, "bytes");
    r.host = StringMember(j, "host");
    if (!IsPlainText(r.host, kMaxShort)) return corrupt("invalid host");
    if (!j.at("error").is_null()) {
      r.error = StringMember(j, "error");
      if (r.error.empty() || !IsPlainText(r.error, kMaxText)) return corrupt("invalid error");
    }
    if (!j.at("failed_object").is_null()) {
      r.failed_object = StringMember(j, "failed_object");
      if (r.failed_object.empty() || !IsPlainText(r.failed_object, kMaxShort)) return corrupt("invalid failed_object");
    }
    if (!j.at("stage").is_null()) {
      const std::string stage = StringMember(j, "stage");
      for (auto st : {DrillStage::kPlan, DrillStage::kPrepare, DrillStage::kRestore, DrillStage::kRecovery,
                      DrillStage::kCheck}) {
        if (stage == DrillStageName(st)) r.stage = st;
      }
      if (r.stage == DrillStage::kNone) return corrupt("invalid stage");
    }
  } catch (const std::exception& e) {
    return corrupt(e.what());
  }
  // A passed drill proved a point; a failed one says why.
  if (r.result == DrillResult::kPassed && (!r.reached_lsn || r.backup_id.empty() || !r.error.empty())) {
    return corrupt("a passed drill without its point or base backup");
  }
  if (r.result == DrillResult::kFailed && (r.error.empty() || r.stage == DrillStage::kNone)) {
    return corrupt("a failed drill without its cause");
  }
  if (r.result == DrillResult::kPassed && r.stage != DrillStage::kNone) return corrupt("a passed drill with a stage");
  if (origin != DrillRecordKey(r.database, r.container, r.drill_id)) {
    return corrupt("it names another key (a copy under another name)");
  }
  return r;
}

Status WriteDrillRecord(Repository& repo, const DrillRecord& record) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(record.database));
  RETURN_IF_ERROR(Repository::ValidateContainerName(record.container));
  RETURN_IF_ERROR(ValidateDrillId(record.drill_id));
  return repo.storage().Put(DrillRecordKey(record.database, record.container, record.drill_id), record.ToJson(),
                            {.if_absent = true});
}

Result<DrillListing> ListDrillRecords(Repository& repo, const std::string& db) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(db));
  ASSIGN_OR_RETURN(auto objects, ListAll(repo.storage(), fmt::format("db/{}/drills/", db)));
  DrillListing out;
  for (const auto& o : objects) {
    if (!EndsWith(o.key, ".json")) continue;
    auto text = repo.storage().Get(o.key);
    if (!text.ok()) {
      if (text.status().code() == StatusCode::kNotFound) continue;  // deleted meanwhile
      return text.status();
    }
    auto r = DrillRecord::FromJson(*text, o.key);
    if (r.ok()) {
      out.records.push_back(std::move(*r));
    } else {
      out.unreadable.push_back(r.status());
    }
  }
  std::sort(out.records.begin(), out.records.end(),
            [](const DrillRecord& a, const DrillRecord& b) { return a.drill_id < b.drill_id; });
  return out;
}

}  // namespace sb
