// The operator's web page (GET / on the read-only listener): one static HTML
// document with a small inline script, embedded in the binary, that reads
// /overview.json and draws per cluster a timeline of full backups, log
// backups, WAL coverage, gaps (broken chain), restore windows and drills, the
// next decisions with their reasons, faults, and the health counts. No
// framework, no external resource (the page works offline and under a strict
// Content-Security-Policy of its own origin).
// Thread-safety: a constant.
#pragma once

#include <string_view>

namespace sb {

std::string_view MonitorPageHtml();

}  // namespace sb
