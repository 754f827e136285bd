// Scheduler rules (spec section 3, SQL Server's F1-F4 and L1-L4): pure
// functions of an observation and the settings; `o.now` is the only time.
#include "agent/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstdint>

#include <fmt/format.h>

#include "common/text.h"

namespace sb {
namespace {

using Action = Decision::Action;
using Duration = SystemTime::duration;

constexpr std::chrono::days kDay{1};
constexpr std::chrono::days kWeek{7};
// 1970-01-04 was a Sunday: weekly windows are counted from it (weekday 0 = Sunday).
constexpr std::chrono::days kFirstSunday{3};

Decision Make(Action action, std::string reason, std::optional<SystemTime> next_due = std::nullopt) {
  Decision d;
  d.action = action;
  d.reason = std::move(reason);
  d.next_due = next_due;
  return d;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t Mod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }

// A schedule as a period and the offset of its window starts from the anchor
// (a Sunday 00:00 UTC), both in clock ticks. Out-of-range values are folded
// into the period rather than rejected: validation belongs to settings.
struct Period {
  int64_t period;
  int64_t offset;
};

Period PeriodOf(const FullSchedule& s) {
  const int64_t start = std::chrono::duration_cast<Duration>(s.window_start).count();
  if (s.frequency == FullSchedule::Frequency::kWeekly) {
    const int64_t week = std::chrono::duration_cast<Duration>(kWeek).count();
    const int64_t day = std::chrono::duration_cast<Duration>(kDay).count();
    return {week, Mod(Mod(s.weekday, 7) * day + start, week)};
  }
  const int64_t day = std::chrono::duration_cast<Duration>(kDay).count();
  return {day, Mod(start, day)};
}

// Whole days, hours or minutes of an elapsed time, rounded down, for reasons.
std::string RoughDuration(Duration d) {
  using namespace std::chrono;
  if (d < Duration::zero()) d = Duration::zero();
  if (d >= kDay) return FormatDuration(floor<days>(d));
  if (d >= hours(1)) return FormatDuration(floor<hours>(d));
  if (d >= minutes(1)) return FormatDuration(floor<minutes>(d));
  return FormatDuration(floor<seconds>(d));
}

std::string Ms(std::chrono::milliseconds d) { return FormatDuration(d); }

// The skips shared by both rules, in order of scope: instance, cluster, server state.
std::optional<Decision> Skip(const ClusterObservation& o, const ClusterSettings& s) {
  if (!o.master_switch_on) return Make(Action::kSkip, "master switch is off");
  if (!s.enabled || !o.enabled) return Make(Action::kSkip, "managed backup is disabled");
  if (!o.reachable) {
    return Make(Action::kSkip,
                "cluster unreachable: " + (o.unreachable_error.empty() ? std::string("no connection") : o.unreachable_error));
  }
  if (o.in_recovery) return Make(Action::kSkip, "standby: backups run on the primary only");
  if (o.storage_error) return Make(Action::kSkip, "storage unusable: " + *o.storage_error);
  if (o.wal_level == "minimal") {
    return Make(Action::kSkip, "wal_level is minimal (SIMPLE recovery model): scheduling stopped");
  }
  return std::nullopt;
}

uint64_t WalSince(Lsn current, Lsn from) { return current > from ? current.value - from.value : 0; }

}  // namespace

SystemTime CurrentWindowStart(const FullSchedule& schedule, SystemTime now) {
  const Period p = PeriodOf(schedule);
  const int64_t anchor = std::chrono::duration_cast<Duration>(kFirstSunday).count() + p.offset;
  const int64_t t = now.time_since_epoch().count();
  const int64_t start = anchor + FloorDiv(t - anchor, p.period) * p.period;
  return SystemTime(Duration(start));
}

SystemTime NextWindowStart(const FullSchedule& schedule, SystemTime now) {
  const SystemTime start = CurrentWindowStart(schedule, now);
  if (start == now) return start;
  return start + Duration(PeriodOf(schedule).period);
}

bool InWindow(const FullSchedule& schedule, SystemTime now) {
  if (schedule.window_length <= std::chrono::minutes::zero()) return false;
  return now < CurrentWindowStart(schedule, now) + schedule.window_length;
}

std::string DescribeWindow(const FullSchedule& schedule) {
  static const char* kDays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  const int64_t minutes = Mod(schedule.window_start.count(), 24 * 60);
  const std::string at = fmt::format("{:02}:{:02}", minutes / 60, minutes % 60);
  if (schedule.frequency == FullSchedule::Frequency::kWeekly) {
    return fmt::format("weekly {} {} window", kDays[Mod(schedule.weekday, 7)], at);
  }
  return fmt::format("daily {} window", at);
}

Decision DecideFull(const ClusterObservation& o, const ClusterSettings& s) {
  if (auto skip = Skip(o, s)) return *skip;
  if (o.full_running) return Make(Action::kNone, "a full backup is already running");

  // Data safety first: these fire at once, inside a custom window or not.
  if (o.new_container) {
    return Make(Action::kFull,
                o.new_container_cause.empty() ? std::string("new container: full backup")
                                              : fmt::format("new container ({}): full backup", o.new_container_cause),
                o.now);
  }
  if (!o.last_full_finish) return Make(Action::kFull, "managed backup just enabled: first full backup", o.now);
  // A failed restore drill, and no full since: the chain it tested cannot be trusted.
  if (o.last_drill_failed && o.last_drill_finish && *o.last_drill_finish > *o.last_full_finish) {
    return Make(Action::kFull, fmt::format("the last restore drill failed ({}): full backup at once", o.last_drill_error),
                o.now);
  }
  if (o.chain_broken) {
    return Make(Action::kFull,
                o.chain_break_cause.empty() ? std::string("log chain broken: full backup at once")
                                            : fmt::format("log chain broken ({}): full backup at once", o.chain_break_cause),
                o.now);
  }

  const SystemTime last = *o.last_full_finish;
  const SystemTime age_due = last + s.full_max_age;
  const uint64_t wal = o.last_full_start_lsn ? WalSince(o.current_lsn, *o.last_full_start_lsn) : 0;
  // Threshold triggers, in the order SQL Server lists them (F2, F3).
  std::optional<std::string> threshold;
  if (o.last_full_start_lsn && wal >= s.full_max_wal) {
    threshold = fmt::format("≥ {} of WAL since the last full backup", FormatByteSize(s.full_max_wal));
  } else if (o.now >= age_due) {
    threshold = fmt::format("≥ {} since the last full backup", Ms(s.full_max_age));
  }

  if (!s.full_schedule) {
    if (threshold) return Make(Action::kFull, *threshold, o.now);
    return Make(Action::kNone,
                fmt::format("no full backup due: {} of WAL (limit {}) and {} (limit {}) since the last full backup",
                            FormatByteSize(wal), FormatByteSize(s.full_max_wal), RoughDuration(o.now - last),
                            Ms(s.full_max_age)),
                age_due);
  }

  const FullSchedule& w = *s.full_schedule;
  const std::string window = DescribeWindow(w);
  const SystemTime next_window = NextWindowStart(w, o.now);
  if (!InWindow(w, o.now)) {
    const std::string why = threshold ? *threshold + ": waiting for the " + window
                                      : "outside the full backup window (" + window + ")";
    return Make(Action::kNone, fmt::format("{}; next window at {}", why, FormatRfc3339(next_window)), next_window);
  }
  // Inside the window: the scheduled full once per window, thresholds as usual.
  if (last < CurrentWindowStart(w, o.now)) {
    return Make(Action::kFull, fmt::format("scheduled full backup ({})", window), o.now);
  }
  if (threshold) return Make(Action::kFull, *threshold, o.now);
  // The age trigger can only fire inside a window: if it falls due before the
  // window closes it is next, otherwise the next window is.
  SystemTime due = next_window;
  if (age_due < next_window && InWindow(w, age_due)) due = std::max(age_due, o.now);
  return Make(Action::kNone,
              fmt::format("full backup already taken in this window ({}); next due at {}", window, FormatRfc3339(due)),
              due);
}

Decision DecideLog(const ClusterObservation& o, const ClusterSettings& s) {
  if (auto skip = Skip(o, s)) return *skip;
  if (o.log_running) return Make(Action::kNone, "a log backup is already running");
  if (!o.last_full_finish) return Make(Action::kNone, "waiting for the first full backup");

  const Lsn full_start = o.last_full_start_lsn.value_or(Lsn{});
  const Lsn base = o.last_log_end_lsn ? std::max(*o.last_log_end_lsn, full_start) : full_start;
  const bool has_log = o.last_log_finish.has_value() || o.last_log_end_lsn.has_value();

  // When the age rules next fire: L3 and the custom frequency, whichever is sooner.
  std::optional<SystemTime> due;
  std::chrono::milliseconds interval = s.log_max_age;
  const bool custom = s.log_frequency && *s.log_frequency > std::chrono::milliseconds::zero();
  if (custom) interval = std::min(interval, *s.log_frequency);
  if (o.last_log_finish) due = *o.last_log_finish + interval;

  if (o.current_lsn <= base) {
    // Nothing to back up; the age rules fire only once WAL arrives.
    return Make(Action::kNone, fmt::format("no new WAL since {}", base.ToString()),
                due && *due > o.now ? due : std::nullopt);
  }
  // L1: no log backup since the full (also one that finished before the full
  // did: it cannot cover the WAL the full needs to reach consistency).
  if (!has_log || (o.last_log_finish && *o.last_log_finish < *o.last_full_finish)) {
    if (!(o.last_log_end_lsn && *o.last_log_end_lsn < full_start)) {
      return Make(Action::kLog, "no log backup since the full backup", o.now);
    }
  }
  // L4: the chain must run ahead of the newest full.
  if (o.last_log_end_lsn && o.last_full_start_lsn && *o.last_log_end_lsn < *o.last_full_start_lsn) {
    return Make(Action::kLog, "log backups are behind the latest full backup", o.now);
  }
  // L2.
  const uint64_t wal = WalSince(o.current_lsn, base);
  if (wal >= s.log_max_wal) {
    return Make(Action::kLog, fmt::format("≥ {} of WAL since the last log backup", FormatByteSize(s.log_max_wal)),
                o.now);
  }
  if (o.last_log_finish) {
    const auto age = o.now - *o.last_log_finish;
    // Custom frequency first: when set it is the operator's stated intent.
    if (custom && age >= *s.log_frequency) {
      return Make(Action::kLog,
                  fmt::format("log frequency {} elapsed since the last log backup", Ms(*s.log_frequency)), o.now);
    }
    // L3.
    if (age >= s.log_max_age) {
      return Make(Action::kLog, fmt::format("≥ {} since the last log backup", Ms(s.log_max_age)), o.now);
    }
  }
  return Make(Action::kNone,
              fmt::format("no log backup due: {} of WAL (limit {}) since the last log backup", FormatByteSize(wal),
                          FormatByteSize(s.log_max_wal)),
              due);
}

Decision DecideDrill(const ClusterObservation& o, const ClusterSettings& s) {
  if (!s.drill_enabled) return Make(Action::kNone, "restore drills are off (drill_enabled = false)");
  if (auto skip = Skip(o, s)) return *skip;
  if (o.drill_key_unreadable) {
    Decision d = Make(Action::kSkip,
                      "restore drills skipped: backups are sealed to a public key, so this host cannot read them; "
                      "hint: run smartbackup drill --repo URL --db NAME --private-key KEY where the private key is");
    d.drill_skip = DrillSkip::kUnreadable;
    return d;
  }
  if (o.newest_full_id.empty()) return Make(Action::kNone, "no drill: waiting for the first full backup");
  if (o.drill_running) return Make(Action::kNone, "a restore drill is running");
  if (o.full_running || o.log_running) return Make(Action::kNone, "no drill while a backup runs");
  if (o.last_drill_backup_id == o.newest_full_id) {
    return Make(Action::kNone,
                fmt::format("the newest full backup {} was drilled already; next drill after the next full backup",
                            o.newest_full_id));
  }
  if (o.last_drill_finish && o.now < *o.last_drill_finish + s.drill_interval) {
    const SystemTime due = *o.last_drill_finish + s.drill_interval;
    return Make(Action::kNone,
                fmt::format("next restore drill at {} (drill_interval {})", FormatRfc3339(due), Ms(s.drill_interval)),
                due);
  }
  const uint64_t need = o.newest_full_bytes + s.drill_free_space_reserve;
  if (o.drill_free_bytes && *o.drill_free_bytes < need) {
    Decision d = Make(Action::kSkip,
                      fmt::format("restore drill skipped: restoring {} needs {} free with the {} reserve, the scratch "
                                  "directory has {}; hint: free space or set drill_scratch_dir",
                                  FormatByteSize(o.newest_full_bytes), FormatByteSize(need),
                                  FormatByteSize(s.drill_free_space_reserve), FormatByteSize(*o.drill_free_bytes)));
    d.drill_skip = DrillSkip::kNoSpace;
    return d;
  }
  return Make(Action::kDrill, fmt::format("new full backup {} not yet proven by a restore drill", o.newest_full_id), o.now);
}

}  // namespace sb
