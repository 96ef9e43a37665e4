// cli/args.h — a small, strict command-line parser shared by the subcommands.
//
// Each subcommand declares its flags; anything undeclared is a usage error
// naming the flag. `--` ends option parsing (what follows is positional).
// Supports `--name value`, `--name=value`, `-x value`, and bundled short
// booleans (`-fq`).
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace locald::cli {

struct OptionSpec {
    std::string_view long_name;  // "follow" for --follow
    char short_name = 0;         // 'f' for -f, 0 for none
    bool takes_value = false;    // --name VALUE
    bool repeatable = false;     // -e K=V -e K2=V2
};

class ParsedArgs {
public:
    bool has(std::string_view long_name) const { return m_values.contains(std::string(long_name)); }
    // The last value given for the option, if any.
    std::optional<std::string> value(std::string_view long_name) const;
    // Every value given for a repeatable option, in order.
    std::vector<std::string> values(std::string_view long_name) const;
    const std::vector<std::string>& positional() const { return m_positional; }
    // Arguments after a literal `--`.
    const std::vector<std::string>& rest() const { return m_rest; }
    bool saw_double_dash() const { return m_saw_double_dash; }

private:
    friend base::Result<ParsedArgs> parse_args(std::span<const std::string>,
                                               std::span<const OptionSpec>, bool);
    std::map<std::string, std::vector<std::string>> m_values;
    std::vector<std::string> m_positional;
    std::vector<std::string> m_rest;
    bool m_saw_double_dash = false;
};

// Errors are InvalidArgument with a message suited to `locald: error: …`.
// With `stop_at_first_positional`, everything from the first positional on is
// kept verbatim (for `container run IMAGE CMD…`).
base::Result<ParsedArgs> parse_args(std::span<const std::string> args,
                                    std::span<const OptionSpec> options,
                                    bool stop_at_first_positional = false);

}  // namespace locald::cli
