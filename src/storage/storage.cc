#include "storage/storage.h"

namespace sb {

Result<std::vector<ObjectInfo>> ListAll(Storage& storage, std::string_view prefix) {
  std::vector<ObjectInfo> all;
  std::string token;
  do {
    // Azure's largest page: a long listing (a container's WAL parts) in the fewest requests.
    ASSIGN_OR_RETURN(ListPage page, storage.List(prefix, token, 5000));
    for (auto& o : page.objects) all.push_back(std::move(o));
    token = std::move(page.next_token);
  } while (!token.empty());
  return all;
}

}  // namespace sb
