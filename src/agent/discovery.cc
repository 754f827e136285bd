#include "agent/discovery.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>

#include "common/logging.h"
#include "common/text.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

constexpr const char* kAutoConfName = "postgresql.auto.conf";
constexpr int kDefaultPort = 5432;
constexpr const char* kDefaultSocketDirectory = "/var/run/postgresql";

// ---- the lexer: guc-file.l's token classes, longest match first, ties in rule order ----

enum class Token { kId, kQualifiedId, kString, kUnquoted, kInteger, kReal, kEquals, kError };

bool IsAsciiAlpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(unsigned char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
// LETTER is [A-Za-z_\200-\377]: any byte above ASCII counts as a letter.
bool IsLetter(unsigned char c) { return IsAsciiAlpha(c) || c == '_' || c >= 0x80; }
bool IsLetterOrDigit(unsigned char c) { return IsLetter(c) || IsDigit(c); }
bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Each returns the length of the longest match at the start of `s` (0: none).
size_t MatchId(std::string_view s) {
  if (s.empty() || !IsLetter(s[0])) return 0;
  size_t i = 1;
  while (i < s.size() && IsLetterOrDigit(s[i])) ++i;
  return i;
}

size_t MatchQualifiedId(std::string_view s) {
  const size_t first = MatchId(s);
  if (first == 0 || first >= s.size() || s[first] != '.') return 0;
  const size_t second = MatchId(s.substr(first + 1));
  return second == 0 ? 0 : first + 1 + second;
}

// '( [^'\\\n] | \\. | '' )*' — a quote may close the string or start a doubled
// quote, so the longest match is the last quote that could have closed it.
size_t MatchString(std::string_view s) {
  if (s.empty() || s[0] != '\'') return 0;
  size_t accept = 0;
  size_t i = 1;
  while (i < s.size() && s[i] != '\n') {
    if (s[i] == '\\') {
      if (i + 1 >= s.size() || s[i + 1] == '\n') break;
      i += 2;
    } else if (s[i] == '\'') {
      accept = i + 1;
      if (i + 1 >= s.size() || s[i + 1] != '\'') break;
      i += 2;
    } else {
      ++i;
    }
  }
  return accept;
}

size_t MatchUnquoted(std::string_view s) {
  if (s.empty() || !IsLetter(s[0])) return 0;
  size_t i = 1;
  auto punctuation = [](char c) { return c == '-' || c == '.' || c == '_' || c == ':' || c == '/'; };
  while (i < s.size() && (IsLetterOrDigit(s[i]) || punctuation(s[i]))) ++i;
  return i;
}

size_t SkipSign(std::string_view s) { return !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0; }

// {SIGN}?({DIGIT}+|0x{HEXDIGIT}+){UNIT_LETTER}*
size_t MatchInteger(std::string_view s) {
  const size_t start = SkipSign(s);
  auto with_units = [&](size_t i) {
    while (i < s.size() && IsAsciiAlpha(s[i])) ++i;
    return i;
  };
  size_t best = 0;
  size_t i = start;
  while (i < s.size() && IsDigit(s[i])) ++i;
  if (i > start) best = with_units(i);
  if (s.substr(start, 2) == "0x") {
    size_t h = start + 2;
    while (h < s.size() && IsHexDigit(s[h])) ++h;
    if (h > start + 2) best = std::max(best, with_units(h));
  }
  return best;
}

// {SIGN}?{DIGIT}*"."{DIGIT}*([Ee]{SIGN}?{DIGIT}+)?
size_t MatchReal(std::string_view s) {
  size_t i = SkipSign(s);
  while (i < s.size() && IsDigit(s[i])) ++i;
  if (i >= s.size() || s[i] != '.') return 0;
  ++i;
  while (i < s.size() && IsDigit(s[i])) ++i;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t e = i + 1 + SkipSign(s.substr(i + 1));
    const size_t digits = e;
    while (e < s.size() && IsDigit(s[e])) ++e;
    if (e > digits) i = e;
  }
  return i;
}

struct Lexeme {
  Token token;
  std::string_view text;
};

// The next token of `line` at `pos` (after blanks), or nothing at the end or at a comment.
std::optional<Lexeme> NextToken(std::string_view line, size_t& pos) {
  while (pos < line.size() && IsBlank(line[pos])) ++pos;
  if (pos >= line.size() || line[pos] == '#') return std::nullopt;
  const std::string_view rest = line.substr(pos);
  const std::array<size_t, 7> lengths = {MatchId(rest),       MatchQualifiedId(rest), MatchString(rest),
                                         MatchUnquoted(rest), MatchInteger(rest),     MatchReal(rest),
                                         rest[0] == '=' ? size_t{1} : size_t{0}};
  const auto longest = std::max_element(lengths.begin(), lengths.end());  // the first of equals
  Lexeme lexeme{Token::kError, rest.substr(0, 1)};
  if (*longest > 0) lexeme = {static_cast<Token>(longest - lengths.begin()), rest.substr(0, *longest)};
  pos += lexeme.text.size();
  return lexeme;
}

// GUC_scanstr: strip the quotes, fold '' and the backslash escapes.
std::string Unquote(std::string_view quoted) {
  const std::string_view s = quoted.substr(1, quoted.size() - 2);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\'') {  // the lexer only lets '' through
      out += '\'';
      ++i;
    } else if (s[i] != '\\') {
      out += s[i];
    } else if (const char c = s[++i]; c >= '0' && c <= '7') {
      int value = 0;
      size_t k = 0;
      for (; k < 3 && i + k < s.size() && s[i + k] >= '0' && s[i + k] <= '7'; ++k) value = value * 8 + (s[i + k] - '0');
      i += k - 1;
      out += static_cast<char>(value);
    } else {
      switch (c) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        default: out += c;
      }
    }
  }
  return out;
}

Status SyntaxError(const std::string& file, int line, std::optional<Lexeme> near) {
  const std::string where =
      near ? fmt::format("near token \"{}\"", Printable(near->text)) : std::string("near end of line");
  return Status::InvalidArgument(fmt::format(
      "syntax error in file \"{}\" line {}, {}; hint: PostgreSQL refuses this file too; quote values "
      "holding anything but letters, digits and -._:/",
      Printable(file), line, where));
}

// One line: name [=] value [# comment].
Result<std::optional<PgConfigLine>> ParseLine(std::string_view text, const std::string& file, int number) {
  size_t pos = 0;
  auto name = NextToken(text, pos);
  if (!name) return std::optional<PgConfigLine>();
  if (name->token != Token::kId && name->token != Token::kQualifiedId) return SyntaxError(file, number, name);
  auto value = NextToken(text, pos);
  if (value && value->token == Token::kEquals) value = NextToken(text, pos);
  if (!value) return SyntaxError(file, number, std::nullopt);
  switch (value->token) {
    case Token::kId: case Token::kString: case Token::kInteger: case Token::kReal: case Token::kUnquoted: break;
    default: return SyntaxError(file, number, value);
  }
  if (auto extra = NextToken(text, pos)) return SyntaxError(file, number, extra);
  PgConfigLine line{.name = std::string(name->text), .value = std::string(value->text), .line = number};
  if (value->token == Token::kString) line.value = Unquote(value->text);
  return std::optional<PgConfigLine>(std::move(line));
}

// ---- files ----

Status FromErrno(int err, const std::string& what) {
  const std::string m = fmt::format("{}: {}", what, std::strerror(err));
  if (err == ENOENT || err == ENOTDIR) return Status::NotFound(m);
  if (err == EACCES || err == EPERM) return Status::PermissionDenied(m);
  return Status::IoError(m);
}

// The whole of an opened file; `fd` is closed.
Result<std::string> ReadAll(int fd, const std::string& path) {
  std::string text;
  struct stat st {};
  Status status;
  if (::fstat(fd, &st) != 0) {
    status = FromErrno(errno, fmt::format("could not read configuration file \"{}\"", path));
  } else if (S_ISDIR(st.st_mode)) {
    status = Status::IoError(fmt::format("could not read configuration file \"{}\": is a directory", path));
  }
  char buf[8192];
  while (status.ok()) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) status = FromErrno(errno, fmt::format("could not read configuration file \"{}\"", path));
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigFileBytes) {
      status = Status::InvalidArgument(
          fmt::format("configuration file \"{}\" is larger than {} bytes; hint: is it a configuration file?",
                      path, kMaxConfigFileBytes));
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return text;
}

// Where an include directive points: absolute as written, else next to the including file.
std::string Resolve(const std::string& location, const std::string& calling_file) {
  fs::path p(location);
  if (p.is_relative()) p = fs::path(calling_file).parent_path() / p;
  std::string out = p.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string Origin(const std::string& calling_file, int line) {
  return calling_file.empty() ? std::string() : fmt::format(" (included from \"{}\" line {})", calling_file, line);
}

// Follows postgresql.conf and its includes, in the server's order, into `out`.
class SettingsReader {
 public:
  explicit SettingsReader(PgSettingsFile& out) : out_(out) {}

  // `path` absolute. A non-strict file (include_if_exists, auto.conf) that cannot be opened is skipped.
  Status ReadFile(const std::string& path, bool strict, int depth, const std::string& calling_file, int calling_line) {
    if (depth > kMaxConfigIncludeDepth) {
      return Status::InvalidArgument(fmt::format(
          "could not open configuration file \"{}\": maximum nesting depth ({}) exceeded{}; hint: do includes "
          "form a cycle?",
          path, kMaxConfigIncludeDepth, Origin(calling_file, calling_line)));
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      Status why = FromErrno(errno, fmt::format("could not open configuration file \"{}\"", path));
      if (strict) return Status(why.code(), why.message() + Origin(calling_file, calling_line));
      log::Debug("discovery: skipping missing configuration file \"{}\" ({})", path, why.message());
      out_.files_skipped.push_back(path);
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(const std::string text, ReadAll(fd, path));
    out_.files_read.push_back(path);
    ASSIGN_OR_RETURN(const auto lines, ParseConfigLines(text, path));
    for (const PgConfigLine& line : lines) RETURN_IF_ERROR(Apply(line, path, depth));
    return Status::Ok();
  }

  bool reading_auto_conf = false;  // ALTER SYSTEM cannot set data_directory: ignored there

 private:
  Status Apply(const PgConfigLine& line, const std::string& file, int depth) {
    const std::string name = Lower(line.name);
    if (name == "include" || name == "include_if_exists" || name == "include_dir") {
      if (Trim(line.value).empty()) {
        return Status::InvalidArgument(fmt::format("empty configuration {} name in file \"{}\" line {}",
                                                   name == "include_dir" ? "directory" : "file", file, line.line));
      }
      const std::string target = Resolve(line.value, file);
      if (name == "include_dir") return ReadDirectory(target, depth + 1, file, line.line);
      return ReadFile(target, name == "include", depth + 1, file, line.line);
    }
    if (reading_auto_conf && name == "data_directory") return Status::Ok();
    out_.settings[name] = PgSetting{.value = line.value, .file = file, .line = line.line};
    return Status::Ok();
  }

  // The directory's *.conf files (not hidden, not directories) in byte order, all at `depth`.
  Status ReadDirectory(const std::string& dir, int depth, const std::string& calling_file, int calling_line) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
      return FromErrno(ec.value(), fmt::format("could not open configuration directory \"{}\"{}", dir,
                                               Origin(calling_file, calling_line)));
    }
    std::vector<std::string> files;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.size() < 6 || name[0] == '.' || !EndsWith(name, ".conf")) continue;
      const fs::file_status st = fs::status(it->path(), ec);  // follows symbolic links, as stat() does
      if (ec) return FromErrno(ec.value(), fmt::format("could not stat file \"{}\"", it->path().string()));
      if (!fs::is_directory(st)) files.push_back(it->path().string());
    }
    if (ec) return FromErrno(ec.value(), fmt::format("could not read configuration directory \"{}\"", dir));
    std::sort(files.begin(), files.end());  // std::string compares bytes unsigned, as strcmp does
    for (const std::string& f : files) RETURN_IF_ERROR(ReadFile(f, /*strict=*/true, depth, calling_file, calling_line));
    return Status::Ok();
  }

  PgSettingsFile& out_;
};

// PostgreSQL's parse_int for a unitless integer: C-style base prefixes, blanks
// around, a fraction rounded; then the range of `port`.
Result<int> ParsePort(const std::string& value) {
  const auto invalid = [&] {
    return Status::InvalidArgument(
        fmt::format("invalid value for parameter \"port\": \"{}\"; hint: a port is 1-65535", Printable(value)));
  };
  const char* begin = value.c_str();
  char* end = nullptr;
  errno = 0;
  double number = static_cast<double>(std::strtol(begin, &end, 0));
  if (end == begin || errno == ERANGE) return invalid();
  if (*end == '.' || *end == 'e' || *end == 'E') {
    errno = 0;
    number = std::rint(std::strtod(begin, &end));
    if (end == begin || errno == ERANGE) return invalid();
  }
  while (*end != '\0' && std::isspace(static_cast<unsigned char>(*end))) ++end;
  if (*end != '\0' || !(number >= 1 && number <= 65535)) return invalid();
  return static_cast<int>(number);
}

// A libpq conninfo value: bare when it has nothing special, else single-quoted.
std::string ConninfoValue(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \t\n\r\f\v'\\") == std::string::npos) return v;
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::vector<std::string> SortedEntries(const std::string& dir, std::error_code& ec) {
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] != '.') names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

Result<std::vector<PgConfigLine>> ParseConfigLines(std::string_view text, const std::string& file) {
  std::vector<PgConfigLine> lines;
  int number = 0;
  for (size_t start = 0; start <= text.size(); ++number) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    ASSIGN_OR_RETURN(auto line, ParseLine(text.substr(start, end - start), file, number + 1));
    if (line) lines.push_back(std::move(*line));
    start = end + 1;
  }
  return lines;
}

const std::string* PgSettingsFile::Find(std::string_view name) const {
  auto it = settings.find(Lower(name));
  return it == settings.end() ? nullptr : &it->second.value;
}

Result<PgSettingsFile> ReadEffectiveSettings(const std::string& conf_path) {
  std::error_code ec;
  const std::string conf = Resolve(fs::absolute(conf_path, ec).string(), "");
  PgSettingsFile out;
  SettingsReader reader(out);
  RETURN_IF_ERROR(reader.ReadFile(conf, /*strict=*/true, 0, "", 0));
  // The server learns its data directory from postgresql.conf, then reads auto.conf there.
  const std::string* data_dir = out.Find("data_directory");
  out.data_directory = Resolve(data_dir && !data_dir->empty() ? *data_dir : ".", conf);
  reader.reading_auto_conf = true;
  RETURN_IF_ERROR(reader.ReadFile(out.data_directory + "/" + kAutoConfName, /*strict=*/false, 0, "", 0));
  return out;
}

Result<std::vector<std::string>> SplitSocketDirectories(std::string_view value) {
  std::vector<std::string> dirs;
  const auto invalid = [&](const char* why) {
    return Status::InvalidArgument(
        fmt::format("invalid value for parameter \"unix_socket_directories\": \"{}\" ({})", Printable(value), why));
  };
  size_t i = 0;
  auto skip_blanks = [&] {
    while (i < value.size() && std::isspace(static_cast<unsigned char>(value[i]))) ++i;
  };
  skip_blanks();
  if (i == value.size()) return dirs;
  while (true) {
    std::string dir;
    if (value[i] == '"') {
      for (++i;; ++i) {
        if (i >= value.size()) return invalid("unterminated quote");
        if (value[i] == '"' && (i + 1 >= value.size() || value[i + 1] != '"')) break;
        if (value[i] == '"') ++i;  // "" stands for one quote
        dir += value[i];
      }
      ++i;
    } else {
      const size_t end = std::min(value.find(',', i), value.size());
      dir = Trim(value.substr(i, end - i));
      i = end;
    }
    if (dir.empty()) return invalid("empty directory name");
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    dirs.push_back(std::move(dir));
    skip_blanks();
    if (i == value.size()) return dirs;
    if (value[i] != ',') return invalid("expected a comma after a quoted name");
    ++i;
    skip_blanks();
  }
}

Result<std::string> DiscoverClusterConninfo(const std::string& conf_path) {
  ASSIGN_OR_RETURN(const PgSettingsFile settings, ReadEffectiveSettings(conf_path));
  int port = kDefaultPort;
  if (const std::string* p = settings.Find("port")) {
    ASSIGN_OR_RETURN(port, ParsePort(*p));
  }
  std::string host = kDefaultSocketDirectory;
  if (const std::string* value = settings.Find("unix_socket_directories")) {
    ASSIGN_OR_RETURN(const auto dirs, SplitSocketDirectories(*value));
    if (dirs.empty()) {
      return Status::FailedPrecondition(
          "unix_socket_directories is empty, so the cluster listens on no unix socket; hint: configure it in "
          "agent.toml with a conninfo");
    }
    host = dirs.front();
  }
  return fmt::format("host={} port={} dbname=postgres", ConninfoValue(host), port);
}

std::map<std::string, std::string> DiscoverClusters(const std::string& root) {
  std::map<std::string, std::string> found;
  std::error_code ec;
  const std::vector<std::string> versions = SortedEntries(root, ec);
  if (ec) {
    log::Debug("discovery: nothing under \"{}\": {}", root, ec.message());
    return found;
  }
  for (const std::string& version : versions) {
    const std::string vdir = root + "/" + version;
    const std::vector<std::string> names = SortedEntries(vdir, ec);
    if (ec) {
      log::Debug("discovery: skipping \"{}\": {}", vdir, ec.message());
      continue;
    }
    for (const std::string& name : names) {
      const std::string cluster = version + "-" + name;
      auto conninfo = DiscoverClusterConninfo(vdir + "/" + name + "/postgresql.conf");
      if (!conninfo.ok()) {
        log::Debug("discovery: skipping cluster \"{}\": {}", cluster, conninfo.status().message());
        continue;
      }
      found[cluster] = std::move(conninfo).value();
    }
  }
  return found;
}

}  // namespace sb
