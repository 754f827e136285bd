// Shared by the fuzz harnesses and the seed generator: the fixed key and
// object key that encrypted seeds are made with (so the harness can open
// them and the fuzzer reaches the decoder behind authentication), and
// scratch directories that are always removed, whatever the input left there.
#pragma once

#include <string>

#include "repo/object_codec.h"

namespace sb::fuzz {

// Deterministic, not secret: only ever used on fuzz inputs.
const EncryptionKey& FuzzKey();
// The object key seeds are encoded under (bound in as GCM associated data).
inline constexpr const char* kObjectKey = "db/fuzz/1-00000001/20260101T000000Z-F-0001/0000.zst";

// A new empty directory under $TMPDIR (or /tmp); aborts when it cannot make one.
std::string MakeTempDir(const char* prefix);
// rm -rf that first gives the owner rwx on every directory (an archive may
// create mode-000 directories) and never follows symlinks.
void RemoveTree(const std::string& path);

}  // namespace sb::fuzz
