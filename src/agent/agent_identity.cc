#include "agent/agent_identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/text.h"
#include "common/uuid.h"

namespace sb {
namespace {

std::string Errno(int err) { return std::strerror(err); }

// kNotFound when the file does not exist.
Result<std::string> ReadId(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound("no agent identity at \"" + path + "\"");
    return Status::IoError("cannot read the agent identity \"" + path + "\": " + Errno(err));
  }
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  const int err = errno;
  ::close(fd);
  if (n < 0) return Status::IoError("cannot read the agent identity \"" + path + "\": " + Errno(err));
  std::string id = Lower(Trim(std::string_view(buf, static_cast<size_t>(n))));
  if (!IsUuid(id)) {
    return Status::Corruption("the agent identity \"" + path +
                              "\" does not hold a UUID; hint: delete it and the agent makes a new one (leases the old "
                              "identity held are then freed only when they expire)");
  }
  return id;
}

}  // namespace

Result<std::string> LoadOrCreateAgentId(const std::string& state_dir) {
  const std::string path = state_dir + "/agent.id";
  auto existing = ReadId(path);
  if (!existing.status().IsNotFound()) return existing;

  const std::string id = RandomUuid();
  const std::string tmp = path + ".tmp." + RandomUuid().substr(0, 8);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot create the agent identity \"" + tmp + "\": " + Errno(errno));
  const std::string line = id + "\n";
  Status s = Status::Ok();
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(fd) != 0) {
    s = Status::IoError("cannot write the agent identity \"" + tmp + "\": " + Errno(errno));
  }
  ::close(fd);
  // link() never replaces: of concurrent creators exactly one id wins.
  if (s.ok() && ::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
    s = Status::IoError("cannot create the agent identity \"" + path + "\": " + Errno(errno));
  }
  ::unlink(tmp.c_str());
  RETURN_IF_ERROR(s);
  if (int dfd = ::open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return ReadId(path);
}

}  // namespace sb
