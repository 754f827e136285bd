// The README's option table is the one the option table renders (CI fails
// when someone edits one without the other; `smartbackup options --markdown`
// prints the new one), and the help text of a flag comes from its row.
#include "agent/option_doc.h"
#include "support/testing_env.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace sb {
namespace {

TEST(OptionDocTest, ReadmeTableMatchesTheOptionTable) {
  const std::string path = std::string(SMARTBACKUP_SOURCE_DIR) + "/README.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  auto section = ReadmeOptionsSection(text.str());
  ASSERT_TRUE(section.ok()) << section.status().message();
  EXPECT_EQ(*section, OptionsMarkdown())
      << "README.md's option table differs from src/agent/settings.cc; hint: run scripts/update_readme_options.sh "
         "(it puts `build/smartbackup options --markdown` between the markers)";
}

TEST(OptionDocTest, MarkdownHasARowPerOption) {
  const std::string md = OptionsMarkdown();
  size_t rows = 0;
  for (char c : md) rows += c == '\n';
  EXPECT_EQ(rows, ManagedOptions().size() + 2);  // header and rule
  for (const auto& o : ManagedOptions()) {
    EXPECT_NE(md.find("| `" + o.name + "` | " + OptionValuesText(o) + " |"), std::string::npos) << o.name;
    if (!o.flag.empty()) {
      EXPECT_NE(md.find("`" + o.flag + "`"), std::string::npos) << o.name;
    }
  }
}

TEST(OptionDocTest, MarkersAreFound) {
  const std::string readme = "intro\n" + std::string(kReadmeOptionsBegin) + "\n| a |\n" +
                             std::string(kReadmeOptionsEnd) + "\nafter\n";
  auto section = ReadmeOptionsSection(readme);
  ASSERT_TRUE(section.ok());
  EXPECT_EQ(*section, "| a |\n");
  EXPECT_FALSE(ReadmeOptionsSection("no markers").ok());
  EXPECT_FALSE(ReadmeOptionsSection(std::string(kReadmeOptionsBegin) + "\n| a |\n").ok());
}

TEST(OptionDocTest, FlagHelpComesFromTheRow) {
  const OptionDef& days = *FindOption("retention_days");
  EXPECT_EQ(OptionFlagHelp(days, true), days.help + " (1-30 days; default 7)");
  EXPECT_EQ(OptionFlagHelp(days, false), days.help + " (1-30 days)");
  EXPECT_EQ(OptionFlagHelp(*FindOption("enabled"), true), FindOption("enabled")->help + " (default false)");
  EXPECT_EQ(OptionFlagPlaceholder(*FindOption("mode")), "stream|archive");
  EXPECT_EQ(OptionFlagHelp(*FindOption("key_file"), true),
            FindOption("key_file")->help + " (absolute path, or empty; default none)");
}

}  // namespace
}  // namespace sb
