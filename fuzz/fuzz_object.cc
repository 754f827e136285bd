// Fuzzes the object decoder: the header parser (whole object and ranged
// read), and DecodeObject without a key and with the key the encrypted seeds
// were made with, so mutations reach decompression and the size checks behind
// authentication only when the input is a validly encrypted object, and the
// header and plain paths otherwise.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "common/logging.h"
#include "fuzz_util.h"
#include "repo/object_codec.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sb::log::SetLevel(sb::log::Level::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view stored(reinterpret_cast<const char*>(data), size);
  const std::string_view key = sb::fuzz::kObjectKey;

  auto header = sb::ParseObjectHeader(stored, key, /*whole_object=*/true);
  (void)sb::ParseObjectHeader(stored.substr(0, sb::kObjectHeaderSize), key, /*whole_object=*/false);

  auto plain = sb::DecodeObject(stored, key, nullptr);
  auto keyed = sb::DecodeObject(stored, key, &sb::fuzz::FuzzKey());

  // Whatever decodes must agree with its own header's promises.
  for (const auto* r : {&plain, &keyed}) {
    if (!r->ok()) continue;
    if (!header.ok() || (*r)->size() != header->raw_size) {
      std::fprintf(stderr, "decoded %zu bytes but the header %s\n", (*r)->size(),
                   header.ok() ? "says otherwise" : "does not parse");
      std::abort();
    }
  }
  return 0;
}
