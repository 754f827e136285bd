#include "agent/option_doc.h"

#include <fmt/core.h>

#include "common/text.h"

namespace sb {
namespace {

std::string DefaultText(const OptionDef& def) {
  if (def.secret) return "(secret)";
  return def.default_text.empty() ? "none" : def.default_text;
}

// A cell must not end the row early.
std::string Cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string Join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

}  // namespace

std::string OptionFlagHelp(const OptionDef& def, bool with_default) {
  // A flag without a value (--enable) needs no "true or false".
  std::string extra = def.type == OptionDef::Type::kBool ? "" : OptionValuesText(def);
  if (with_default) extra += (extra.empty() ? "" : "; ") + ("default " + DefaultText(def));
  return extra.empty() ? def.help : fmt::format("{} ({})", def.help, extra);
}

std::string OptionFlagPlaceholder(const OptionDef& def) {
  using T = OptionDef::Type;
  switch (def.type) {
    case T::kBool: return "BOOL";
    case T::kInt: return "N";
    case T::kChoice: {
      std::string out;
      for (const auto& c : def.choices) out += (out.empty() ? "" : "|") + c;
      return out;
    }
    case T::kStorageUrl: return "URL";
    case T::kAbsolutePath: return "PATH";
    case T::kDuration: return "DURATION";
    case T::kByteSize: return "SIZE";
    case T::kSchedule: return "SCHEDULE";
    case T::kText: return "SQL";
  }
  return "VALUE";
}

std::string OptionsMarkdown() {
  std::string out = "| option | values | default | flag | description |\n|---|---|---|---|---|\n";
  for (const auto& def : ManagedOptions()) {
    std::string flag = "—";
    if (!def.flag.empty()) {
      flag = "`" + def.flag + "`";
      if (!def.off_flag.empty()) flag += " / `" + def.off_flag + "`";
      flag += " (" + Join(OptionVerbNames(def.verbs)) + ")";
    }
    std::string help = def.help;
    if (def.test_only) help += "; refused unless SMARTBACKUP_TESTING=1";
    out += fmt::format("| `{}` | {} | {} | {} | {} |\n", def.name, Cell(OptionValuesText(def)),
                       def.secret || def.default_text.empty() ? DefaultText(def) : "`" + def.default_text + "`",
                       Cell(flag), Cell(help));
  }
  return out;
}

Result<std::string> ReadmeOptionsSection(std::string_view readme) {
  const size_t begin = readme.find(kReadmeOptionsBegin);
  if (begin == std::string_view::npos) {
    return Status::NotFound(fmt::format("README has no line \"{}\"", kReadmeOptionsBegin));
  }
  size_t start = begin + kReadmeOptionsBegin.size();
  if (start < readme.size() && readme[start] == '\n') ++start;
  const size_t end = readme.find(kReadmeOptionsEnd, start);
  if (end == std::string_view::npos) {
    return Status::NotFound(fmt::format("README has no line \"{}\" after the table", kReadmeOptionsEnd));
  }
  return std::string(readme.substr(start, end - start));
}

}  // namespace sb
