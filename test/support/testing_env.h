// Marks the process as running under tests (SMARTBACKUP_TESTING=1) before any test starts, so that
// test-only settings (retention_unit) are accepted; processes the tests start inherit it. Included
// by the support headers; a test that checks the refusal outside tests unsets it itself.
// Thread-safety: set during static initialisation, before threads exist.
#pragma once

#include <cstdlib>

namespace sb::test {

inline const bool kSmartbackupTestingSet = [] {
  ::setenv("SMARTBACKUP_TESTING", "1", /*overwrite=*/0);
  return true;
}();

}  // namespace sb::test
