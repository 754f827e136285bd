#include "agent/agent_config.h"

#include "agent/http_listener.h"

#include <fmt/core.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

// Parse errors come back as values: no exception leaves this file.
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "common/text.h"
#include "repo/repository.h"

namespace sb {
namespace {

const char* const kAgentKeys[] = {"state_dir",     "socket",           "discover",
                                  "discover_root", "max_parallel_fulls", "loop_interval",
                                  "http_listen"};

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

const char* TypeName(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time: return "a date/time";
    default: return "nothing";
  }
}

// toml++ messages as one lowercase line: "Error while parsing …" with any
// control characters it quotes from the input made visible.
std::string OneLine(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  if (StartsWith(out, "Error ")) out[0] = 'e';
  return out;
}

// TOML allows non-ASCII text only inside strings and comments. toml++ 3.3.0
// (Debian 12's) reaches __builtin_unreachable when it tests some non-ASCII
// code points for whitespace (upstream issues 190/295, found by
// fuzz_agent_config), so such bytes are refused before it sees them: outside
// strings and comments (invalid TOML anyway) and in multi-line basic strings
// (whose line-ending backslash trims whitespace). Strings are found as toml++
// finds them: a quote opens one only where a key or value begins (a line
// start, after '=', '.', or '[' '{' ',' of a table header, array or inline
// table); a bare value (4ot"x"=...) runs to a space, ',', ']', '}', '#' or a
// line end, whatever quotes or '=' it holds. Returns the 1-based line of the
// first such byte, or 0.
size_t LineOfNonAsciiOutsideStrings(std::string_view t) {
  enum class In { kCode, kBare, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral } in = In::kCode;
  size_t line = 1;
  char last = '\n';  // the last character in code that was not a space or tab
  auto at = [&](size_t i, std::string_view what) { return t.substr(i, what.size()) == what; };
  auto value_starts = [&] { return last == '=' || last == '[' || last == ','; };
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (c == '\n') ++line;
    const bool non_ascii = static_cast<unsigned char>(c) >= 0x80;
    if (in == In::kBare) {
      if (non_ascii) return line;
      if (std::string_view(" \t\r\n,]}#").find(c) == std::string_view::npos) continue;
      in = In::kCode;  // the terminator is read as code below
    }
    switch (in) {
      case In::kCode: {
        if (non_ascii) return line;
        const bool may_open = std::string_view("\n=[{,.").find(last) != std::string_view::npos;
        const bool value = value_starts();
        if (c != ' ' && c != '\t') last = c;
        if (c == '#') in = In::kComment;
        else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') break;
        else if (may_open && at(i, "\"\"\"")) { in = In::kMultiBasic; i += 2; }
        else if (may_open && at(i, "\'\'\'")) { in = In::kMultiLiteral; i += 2; }
        else if (may_open && c == '"') in = In::kBasic;
        else if (may_open && c == '\'') in = In::kLiteral;
        else if (value && std::string_view("[{]},").find(c) == std::string_view::npos) in = In::kBare;
        break;
      }
      case In::kBare:
        break;
      case In::kComment:
        if (c == '\n') { in = In::kCode; last = '\n'; }
        break;
      case In::kBasic:
        if (c == '\\' && i + 1 < t.size() && t[i + 1] != '\n') ++i;
        else if (c == '"' || c == '\n') { in = In::kCode; last = c; }
        break;
      case In::kLiteral:
        if (c == '\'' || c == '\n') { in = In::kCode; last = c; }
        break;
      case In::kMultiBasic:
        if (non_ascii) return line;
        if (c == '\\' && i + 1 < t.size() && t[i + 1] != '\n') ++i;
        else if (at(i, "\"\"\"")) { in = In::kCode; last = '"'; i += 2; }
        break;
      case In::kMultiLiteral:
        if (at(i, "\'\'\'")) { in = In::kCode; last = '\''; i += 2; }
        break;
    }
  }
  return 0;
}

class Parser {
 public:
  explicit Parser(std::string origin) : origin_(std::move(origin)) {}

  // `config file "P" line N: message` (line omitted when unknown), always one
  // line: messages quote names and values from the file, and a TOML string
  // may hold "\n" (found by fuzz_agent_config: a cluster name with a newline).
  Status Error(const toml::source_region& where, const std::string& message) const {
    if (where.begin.line > 0) {
      return Status::InvalidArgument(
          fmt::format("config file \"{}\" line {}: {}", origin_, where.begin.line, OneLine(message)));
    }
    return Status::InvalidArgument(fmt::format("config file \"{}\": {}", origin_, OneLine(message)));
  }

  Result<AgentConfig> Parse(const std::string& text) {
    if (size_t line = LineOfNonAsciiOutsideStrings(text); line > 0) {
      return Status::InvalidArgument(fmt::format(
          "config file \"{}\" line {}: non-ASCII character outside a string or comment (or in a multi-line \"\"\" "
          "string); hint: write it inside a quoted single-line string",
          origin_, line));
    }
    toml::parse_result parsed = toml::parse(text, origin_);
    if (!parsed) {
      const toml::parse_error& e = parsed.error();
      return Error(e.source(), OneLine(e.description()));
    }
    const toml::table& root = parsed.table();
    AgentConfig cfg;
    cfg.path = origin_;
    for (auto&& [key, node] : root) {
      const std::string k(key.str());
      if (k == "agent") {
        if (!node.is_table()) return Error(key.source(), "\"agent\" must be a table: [agent]");
        RETURN_IF_ERROR(ParseAgent(*node.as_table(), &cfg));
      } else if (k == "defaults") {
        if (!node.is_table()) return Error(key.source(), "\"defaults\" must be a table: [defaults]");
        ASSIGN_OR_RETURN(cfg.defaults, ParseManaged(*node.as_table(), "[defaults]", {}));
      } else if (k == "cluster") {
        if (!node.is_array_of_tables()) {
          return Error(key.source(), "\"cluster\" must be an array of tables: [[cluster]]");
        }
        for (auto&& entry : *node.as_array()) {
          ASSIGN_OR_RETURN(ClusterEntry c, ParseCluster(*entry.as_table()));
          for (const auto& other : cfg.clusters) {
            if (other.name == c.name) {
              return Error(entry.source(), fmt::format("duplicate [[cluster]] name \"{}\"; hint: each cluster "
                                                       "needs its own name",
                                                       c.name));
            }
          }
          cfg.clusters.push_back(std::move(c));
        }
      } else {
        return Error(key.source(), fmt::format("unknown table or key \"{}\" at the top level; hint: one of "
                                               "[agent], [defaults], [[cluster]]",
                                               k));
      }
    }
    return cfg;
  }

 private:
  Result<std::string> String(const toml::key& key, const toml::node& node, const std::string& table) const {
    if (!node.is_string()) {
      return Error(node.source(),
                   fmt::format("{} {} must be a string, got {}", table, key.str(), TypeName(node.type())));
    }
    return std::string(*node.value<std::string>());
  }

  Status ParseAgent(const toml::table& t, AgentConfig* cfg) const {
    for (auto&& [key, node] : t) {
      const std::string k(key.str());
      if (k == "state_dir" || k == "socket" || k == "discover_root") {
        ASSIGN_OR_RETURN(std::string v, String(key, node, "[agent]"));
        if (v.empty()) return Error(node.source(), fmt::format("[agent] {} must not be empty", k));
        if (k == "state_dir") cfg->state_dir = v;
        if (k == "socket") cfg->socket = v;
        if (k == "discover_root") cfg->discover_root = v;
      } else if (k == "discover") {
        if (!node.is_boolean()) {
          return Error(node.source(), fmt::format("[agent] discover must be true or false, got {}",
                                                  TypeName(node.type())));
        }
        cfg->discover = *node.value<bool>();
      } else if (k == "max_parallel_fulls") {
        if (!node.is_integer()) {
          return Error(node.source(), fmt::format("[agent] max_parallel_fulls must be an integer, got {}",
                                                  TypeName(node.type())));
        }
        const int64_t n = *node.value<int64_t>();
        if (n < 1 || n > 100) {
          return Error(node.source(), fmt::format("[agent] max_parallel_fulls must be between 1 and 100, got {}", n));
        }
        cfg->max_parallel_fulls = static_cast<int>(n);
      } else if (k == "loop_interval") {
        std::string text;
        if (node.is_integer()) {
          text = std::to_string(*node.value<int64_t>());
        } else {
          ASSIGN_OR_RETURN(text, String(key, node, "[agent]"));
        }
        auto d = ParseDuration(text);
        if (!d.ok()) return Error(node.source(), "[agent] loop_interval: " + d.status().message());
        if (d->count() <= 0) {
          return Error(node.source(), fmt::format("[agent] loop_interval must be greater than zero, got \"{}\"", text));
        }
        cfg->loop_interval = *d;
      } else if (k == "http_listen") {
        ASSIGN_OR_RETURN(std::string v, String(key, node, "[agent]"));
        if (!v.empty()) {
          auto address = ParseListenAddress(v);
          if (!address.ok()) return Error(node.source(), address.status().message());
        }
        cfg->http_listen = v;
      } else {
        std::vector<std::string> names(std::begin(kAgentKeys), std::end(kAgentKeys));
        return Error(key.source(), fmt::format("unknown key \"{}\" in [agent]; hint: one of {}", k, Join(names)));
      }
    }
    return Status::Ok();
  }

  // The text of one managed option from its TOML value, by the option's type.
  Result<std::string> OptionText(const OptionDef& def, const toml::key& key, const toml::node& node,
                                 const std::string& table) const {
    using T = OptionDef::Type;
    switch (def.type) {
      case T::kBool:
        if (node.is_boolean()) return std::string(*node.value<bool>() ? "true" : "false");
        if (node.is_string()) return std::string(*node.value<std::string>());
        return Error(node.source(),
                     fmt::format("{} {} must be true or false, got {}", table, def.name, TypeName(node.type())));
      case T::kInt:
        if (node.is_integer()) return std::to_string(*node.value<int64_t>());
        if (node.is_string()) return std::string(*node.value<std::string>());
        return Error(node.source(),
                     fmt::format("{} {} must be an integer, got {}", table, def.name, TypeName(node.type())));
      case T::kDuration:
      case T::kByteSize:
        if (node.is_integer()) return std::to_string(*node.value<int64_t>());
        if (node.is_string()) return std::string(*node.value<std::string>());
        return Error(node.source(), fmt::format("{} {} must be a string such as \"{}\", got {}", table, def.name,
                                                def.type == T::kDuration ? "10s" : "5MiB", TypeName(node.type())));
      case T::kChoice:
      case T::kStorageUrl:
      case T::kAbsolutePath:
      case T::kSchedule:
      case T::kText:
        return String(key, node, table);
    }
    return Status::Internal("unreachable");
  }

  // Managed options of [defaults] or a [[cluster]] entry; `extra` are keys
  // the caller handles itself (skipped here).
  Result<PartialSettings> ParseManaged(const toml::table& t, const std::string& table,
                                       const std::set<std::string>& extra) const {
    PartialSettings out;
    for (auto&& [key, node] : t) {
      const std::string k(key.str());
      if (extra.count(k)) continue;
      const OptionDef* def = FindOption(k);
      if (def == nullptr) {
        std::string names = OptionNames();
        if (!extra.empty()) names = Join(std::vector<std::string>(extra.begin(), extra.end())) + ", " + names;
        return Error(key.source(), fmt::format("unknown key \"{}\" in {}; hint: one of {}", k, table, names));
      }
      ASSIGN_OR_RETURN(std::string text, OptionText(*def, key, node, table));
      auto canonical = ValidateOption(k, text);
      if (!canonical.ok()) return Error(node.source(), table + ": " + canonical.status().message());
      out[k] = *canonical;
    }
    return out;
  }

  Result<ClusterEntry> ParseCluster(const toml::table& t) const {
    ClusterEntry c;
    const toml::node* name = t.get("name");
    if (name == nullptr) return Error(t.source(), "[[cluster]] has no name; hint: add name = \"main\"");
    if (!name->is_string()) {
      return Error(name->source(), fmt::format("[[cluster]] name must be a string, got {}", TypeName(name->type())));
    }
    c.name = *name->value<std::string>();
    Status valid = Repository::ValidateDatabaseName(c.name);
    if (!valid.ok()) {
      return Error(name->source(), fmt::format("invalid [[cluster]] name \"{}\"; hint: use 1-63 letters, digits, "
                                               "'_', '-' or '.'",
                                               c.name));
    }
    const std::string table = fmt::format("[[cluster]] \"{}\"", c.name);
    const toml::node* conninfo = t.get("conninfo");
    if (conninfo == nullptr) {
      return Error(t.source(), fmt::format("{} has no conninfo; hint: add e.g. conninfo = \"host=/var/run/postgresql "
                                           "port=5432 user=smartbackup\"",
                                           table));
    }
    if (!conninfo->is_string()) {
      return Error(conninfo->source(),
                   fmt::format("{} conninfo must be a string, got {}", table, TypeName(conninfo->type())));
    }
    c.conninfo = *conninfo->value<std::string>();
    if (Trim(c.conninfo).empty()) return Error(conninfo->source(), table + " conninfo must not be empty");
    ASSIGN_OR_RETURN(c.overrides, ParseManaged(t, table, {"name", "conninfo"}));
    return c;
  }

  std::string origin_;
};

}  // namespace

Result<AgentConfig> ParseAgentConfig(const std::string& toml_text, const std::string& origin) {
  return Parser(origin).Parse(toml_text);
}

Result<AgentConfig> LoadAgentConfig(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Status::NotFound(fmt::format("config file \"{}\" does not exist; hint: create it (see README for an "
                                        "example) or pass --config FILE",
                                        path));
  }
  if (std::filesystem::is_directory(path, ec)) {
    return Status::InvalidArgument(fmt::format("config file \"{}\" is a directory; hint: pass the TOML file", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::PermissionDenied(
        fmt::format("cannot read config file \"{}\": {}", path, std::strerror(errno)));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IoError(fmt::format("cannot read config file \"{}\"", path));
  return ParseAgentConfig(ss.str(), path);
}

}  // namespace sb
