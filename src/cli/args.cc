#include "cli/args.h"

namespace locald::cli {

std::optional<std::string> ParsedArgs::value(std::string_view long_name) const {
    auto it = m_values.find(std::string(long_name));
    if (it == m_values.end() || it->second.empty()) {
        return std::nullopt;
    }
    return it->second.back();
}

std::vector<std::string> ParsedArgs::values(std::string_view long_name) const {
    auto it = m_values.find(std::string(long_name));
    return it == m_values.end() ? std::vector<std::string>{} : it->second;
}

namespace {

const OptionSpec* find_long(std::span<const OptionSpec> options, std::string_view name) {
    for (const auto& option : options) {
        if (option.long_name == name) {
            return &option;
        }
    }
    return nullptr;
}

const OptionSpec* find_short(std::span<const OptionSpec> options, char name) {
    for (const auto& option : options) {
        if (option.short_name != 0 && option.short_name == name) {
            return &option;
        }
    }
    return nullptr;
}

}  // namespace

base::Result<ParsedArgs> parse_args(std::span<const std::string> args,
                                    std::span<const OptionSpec> options,
                                    bool stop_at_first_positional) {
    ParsedArgs parsed;
    auto store = [&](const OptionSpec& option, std::string value) -> base::Result<void> {
        auto& slot = parsed.m_values[std::string(option.long_name)];
        if (!slot.empty() && !option.repeatable && option.takes_value) {
            return base::invalid_argument("option --{} given more than once", option.long_name);
        }
        slot.push_back(std::move(value));
        return base::ok();
    };

    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg == "--") {
            parsed.m_saw_double_dash = true;
            parsed.m_rest.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
            break;
        }
        if (arg.size() > 2 && arg.starts_with("--")) {
            std::string_view body(arg);
            body.remove_prefix(2);
            std::optional<std::string> inline_value;
            if (auto eq = body.find('='); eq != std::string_view::npos) {
                inline_value = std::string(body.substr(eq + 1));
                body = body.substr(0, eq);
            }
            const OptionSpec* option = find_long(options, body);
            if (option == nullptr) {
                return base::invalid_argument("unknown option `--{}`", body);
            }
            if (!option->takes_value) {
                if (inline_value) {
                    return base::invalid_argument("option --{} takes no value", body);
                }
                TRY(store(*option, ""));
                continue;
            }
            if (!inline_value) {
                if (i + 1 >= args.size()) {
                    return base::invalid_argument("option --{} needs a value", body);
                }
                inline_value = args[++i];
            }
            TRY(store(*option, std::move(*inline_value)));
            continue;
        }
        if (arg.size() > 1 && arg[0] == '-' && arg != "-") {
            for (size_t j = 1; j < arg.size(); ++j) {
                const OptionSpec* option = find_short(options, arg[j]);
                if (option == nullptr) {
                    return base::invalid_argument("unknown option `-{}`", arg[j]);
                }
                if (!option->takes_value) {
                    TRY(store(*option, ""));
                    continue;
                }
                std::string value;
                if (j + 1 < arg.size()) {
                    value = arg.substr(j + 1);
                } else if (i + 1 < args.size()) {
                    value = args[++i];
                } else {
                    return base::invalid_argument("option -{} needs a value", arg[j]);
                }
                TRY(store(*option, std::move(value)));
                break;
            }
            continue;
        }
        if (stop_at_first_positional) {
            parsed.m_positional.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
            break;
        }
        parsed.m_positional.push_back(arg);
    }
    return parsed;
}

}  // namespace locald::cli
