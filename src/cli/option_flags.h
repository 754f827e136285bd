// Command-line flags generated from the managed-option table (agent/settings.h):
// each verb named in an option's row gets the row's flag, help, placeholder
// and validation, so a flag accepts exactly what the config file and the API
// accept and refuses a bad value with the same one-line message (as a usage
// error, exit 2, before anything runs). Also the `options` verb that prints
// the table (text, JSON, or the README's markdown).
// Thread-safety: called while building the command line, single-threaded.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "agent/settings.h"

namespace sb {

// Adds the flags of every option whose row lists `verb`; a value given is
// stored, validated and canonical, into (*values)[option name]. Defaults are
// not stored: SettingsFrom(*values) fills them from the table. `with_default`
// false shows no default in --help (purge, where the flag is required).
void AddOptionFlags(CLI::App* app, OptionVerb verb, PartialSettings* values, bool with_default = true);

// `--set KEY=VALUE` for any option, validated like the option's own flag.
void AddSetFlag(CLI::App* app, PartialSettings* values);

// The `options` verb: the option table as text, JSON (--output json) or the
// README's markdown (--markdown).
void PrintOptions(bool markdown, bool json);

}  // namespace sb
