#include "storage/storage.h"

namespace sb {

namespace {
constexpr int kListAllPage = 1 << 20;
}  // namespace

Result<std::vector<ObjectInfo>> ListAll(Storage& storage, std::string_view prefix) {
  std::vector<ObjectInfo> all;
  std::string token;
  do {
    // A long listing (a container's WAL parts) in the fewest requests:
    // drivers clamp this to their largest page (Azure: 5000), and the local
    // driver, which reads the whole directory for every page, returns it in one.
    ASSIGN_OR_RETURN(ListPage page, storage.List(prefix, token, kListAllPage));
    for (auto& o : page.objects) all.push_back(std::move(o));
    token = std::move(page.next_token);
  } while (!token.empty());
  return all;
}

}  // namespace sb
