// Builds ustar archives in memory for tests of the tar reader and restore:
// any entry type, mode and link target, including the malformed ones a
// crafted repository could hold.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace sb::test {

// A ustar header block for one entry; `size` data bytes follow it.
inline std::string Header(const std::string& name, char type, uint64_t size, const std::string& link = "",
                          unsigned mode = 0640) {
  std::string b(512, '\0');
  std::memcpy(b.data(), name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(b.data() + 100, 8, "%07o", mode);
  std::snprintf(b.data() + 124, 12, "%011llo", static_cast<unsigned long long>(size));
  b[156] = type;
  std::memcpy(b.data() + 157, link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(b.data() + 257, "ustar", 6);
  std::memcpy(b.data() + 263, "00", 2);
  std::memset(b.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  std::snprintf(b.data() + 148, 8, "%06o", sum);
  return b;
}

inline std::string Padded(const std::string& data) { return data + std::string((512 - data.size() % 512) % 512, '\0'); }

inline std::string Entry(const std::string& name, const std::string& data) {
  return Header(name, '0', data.size()) + Padded(data);
}

inline std::string End() { return std::string(1024, '\0'); }

}  // namespace sb::test
