#include "common/uuid.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cctype>
#include <random>

#include "common/encoding.h"

namespace sb {
namespace {

std::string FormatUuid(std::string b, int version) {
  b[6] = static_cast<char>((b[6] & 0x0f) | (version << 4));
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  std::string h = HexEncode(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

}  // namespace

std::string RandomUuid() {
  std::string b(16, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(b.data()), static_cast<int>(b.size())) != 1) {
    // RAND_bytes only fails when the system has no entropy source at all.
    std::random_device rd;
    for (auto& c : b) c = static_cast<char>(rd());
  }
  return FormatUuid(std::move(b), 4);
}

std::string NameUuid(std::string_view name) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest);
  return FormatUuid(std::string(reinterpret_cast<const char*>(digest), 16), 5);
}

bool IsUuid(std::string_view t) {
  if (t.size() != 36) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    const bool hyphen_place = i == 8 || i == 13 || i == 18 || i == 23;
    if (hyphen_place ? t[i] != '-' : !std::isxdigit(static_cast<unsigned char>(t[i]))) return false;
  }
  return true;
}

}  // namespace sb
