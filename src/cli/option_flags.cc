#include "cli/option_flags.h"

#include <fmt/core.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/option_doc.h"

namespace sb {
namespace {

// CLI11 prefixes the flag's name to the message: "--retention-days: retention_days must be …".
CLI::Validator OptionValidator(const OptionDef& def) {
  return CLI::Validator(
      [name = def.name](std::string& v) {
        auto canonical = ValidateOption(name, v);
        if (!canonical.ok()) return canonical.status().message();
        v = *canonical;
        return std::string();
      },
      "", def.name);
}

}  // namespace

void AddOptionFlags(CLI::App* app, OptionVerb verb, PartialSettings* values, bool with_default) {
  for (const auto& def : ManagedOptions()) {
    if ((def.verbs & verb) == 0 || def.flag.empty()) continue;
    const std::string& name = def.name;
    if (def.type == OptionDef::Type::kBool && !def.off_flag.empty()) {
      auto* on = app->add_flag_callback(def.flag, [values, name] { (*values)[name] = "true"; },
                                        OptionFlagHelp(def, with_default));
      auto* off = app->add_flag_callback(def.off_flag, [values, name] { (*values)[name] = "false"; }, def.off_help);
      on->excludes(off);
      continue;
    }
    app->add_option_function<std::string>(def.flag, [values, name](const std::string& v) { (*values)[name] = v; },
                                          OptionFlagHelp(def, with_default))
        ->type_name(OptionFlagPlaceholder(def))
        ->transform(OptionValidator(def));  // a transform: the canonical text replaces the value
  }
}

void AddSetFlag(CLI::App* app, PartialSettings* values) {
  app->add_option_function<std::vector<std::string>>(
         "--set",
         [values](const std::vector<std::string>& entries) {
           for (const auto& kv : entries) {
             const size_t eq = kv.find('=');
             (*values)[kv.substr(0, eq)] = *ValidateOption(kv.substr(0, eq), kv.substr(eq + 1));
           }
         },
         "KEY=VALUE for any managed setting (smartbackup options lists them)")
      ->type_name("KEY=VALUE")
      ->check(CLI::Validator(
          [](std::string& kv) {
            const size_t eq = kv.find('=');
            if (eq == std::string::npos) return fmt::format("--set takes KEY=VALUE, got \"{}\"", kv);
            auto canonical = ValidateOption(kv.substr(0, eq), kv.substr(eq + 1));
            return canonical.ok() ? std::string() : canonical.status().message();
          },
          "", "setting"));
}

void PrintOptions(bool markdown, bool json) {
  if (markdown) {
    std::cout << OptionsMarkdown();
    return;
  }
  if (json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& def : ManagedOptions()) {
      rows.push_back({{"name", def.name},
                      {"values", OptionValuesText(def)},
                      {"default", def.secret ? "" : def.default_text},
                      {"flag", def.flag},
                      {"off_flag", def.off_flag},
                      {"verbs", OptionVerbNames(def.verbs)},
                      {"secret", def.secret},
                      {"test_only", def.test_only},
                      {"help", def.help}});
    }
    std::cout << rows.dump(2) << "\n";
    return;
  }
  for (const auto& def : ManagedOptions()) {
    std::string flag = def.flag.empty() ? "" : "; flag: " + def.flag;
    if (!def.off_flag.empty()) flag += " / " + def.off_flag;
    const std::string default_text = def.secret ? "(secret)" : def.default_text.empty() ? "none" : def.default_text;
    std::cout << fmt::format("{:<16} {}\n{:<16} values: {}; default: {}{}\n", def.name, def.help, "",
                             OptionValuesText(def), default_text, flag);
  }
}

}  // namespace sb
