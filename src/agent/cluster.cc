#include "agent/cluster.h"

namespace sb {

const char* FailingPartName(FailingPart part) {
  switch (part) {
    case FailingPart::kServer: return "server";
    case FailingPart::kCredentials: return "credentials";
    case FailingPart::kStorage: return "storage";
    case FailingPart::kCapture: return "capture";
  }
  return "server";
}

const char* ActivityName(Activity activity) {
  switch (activity) {
    case Activity::kObserve: return "observe";
    case Activity::kCapture: return "capture";
    case Activity::kArchive: return "archive";
    case Activity::kFullBackup: return "full_backup";
    case Activity::kLogBackup: return "log_backup";
    case Activity::kRetention: return "retention";
  }
  return "observe";
}

const char* ConditionName(Condition condition) {
  switch (condition) {
    case Condition::kNotObserved: return "not_observed";
    case Condition::kDropped: return "dropped";
    case Condition::kFailing: return "failing";
    case Condition::kRefused: return "refused";
    case Condition::kSkipped: return "skipped";
    case Condition::kQueued: return "queued";
    case Condition::kBackingOff: return "backing_off";
    case Condition::kOk: return "ok";
  }
  return "ok";
}

FailingPart PartOf(const Status& status, FailingPart otherwise) {
  // The storage first: a repository directory the agent may not write is the storage's problem.
  if (status.source() == ErrorSource::kStorage) return FailingPart::kStorage;
  if (status.code() == StatusCode::kPermissionDenied) return FailingPart::kCredentials;
  return otherwise;
}

void NoteFault(Cluster& c, Activity activity, FailingPart part, const std::string& error, SystemTime now) {
  std::lock_guard lock(c.mu);
  auto [it, fresh] = c.faults.try_emplace(activity);
  Fault& f = it->second;
  if (fresh || f.part != part) f.since = now;
  f.part = part;
  f.error = error;
  f.last = now;
}

void ClearFault(Cluster& c, Activity activity) {
  std::lock_guard lock(c.mu);
  c.faults.erase(activity);
}

}  // namespace sb
