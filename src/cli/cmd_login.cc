// `locald login REGISTRY [-u USER] [--password-stdin]` and `locald logout REGISTRY`
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "oci/pull.h"
#include "oci/push.h"

namespace locald::cli {

const char kLoginHelp[] =
    "usage: locald login REGISTRY [-u USER] [--password-stdin]\n"
    "\n"
    "Checks a username and password (or token) against REGISTRY and, when the\n"
    "registry accepts them, saves them in <config>/auth.json (mode 0600, in a\n"
    "0700 directory) for pull and push. Without --password-stdin the password is\n"
    "asked on the terminal (not echoed). Docker Hub is `docker.io`.\n"
    "\n"
    "  -u, --username USER   the account (asked on the terminal when missing)\n"
    "  --password-stdin      read the password from standard input\n";

const char kLogoutHelp[] =
    "usage: locald logout REGISTRY\n"
    "\n"
    "Removes the credentials `locald login` saved for REGISTRY.\n";

namespace {

const OptionSpec kLoginOptions[] = {
    {"username", 'u', true},
    {"password-stdin"},
};

// Reads a line from the terminal without echo.
base::Result<std::string> read_secret(const char* prompt) {
    if (!isatty(STDIN_FILENO)) {
        return base::invalid_argument("no terminal to ask the password on: use --password-stdin");
    }
    std::fprintf(stderr, "%s", prompt);
    termios old{};
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::string line;
    std::getline(std::cin, line);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
    return line;
}

}  // namespace

int run_login(std::span<const std::string> args) {
    auto parsed = parse_args(args, kLoginOptions);
    if (!parsed) {
        return report_usage("login", parsed.error());
    }
    if (parsed->positional().size() != 1) {
        return report_usage("login", base::invalid_argument("expected one REGISTRY"));
    }
    oci::Credentials credentials;
    if (auto user = parsed->value("username")) {
        credentials.username = *user;
    } else {
        if (!isatty(STDIN_FILENO) || parsed->has("password-stdin")) {
            return report_usage("login", base::invalid_argument("-u USER is required"));
        }
        std::fprintf(stderr, "Username: ");
        std::getline(std::cin, credentials.username);
    }
    if (parsed->has("password-stdin")) {
        std::string all((std::istreambuf_iterator<char>(std::cin)),
                        std::istreambuf_iterator<char>());
        while (!all.empty() && (all.back() == '\n' || all.back() == '\r')) {
            all.pop_back();
        }
        credentials.password = all;
    } else {
        auto secret = read_secret("Password: ");
        if (!secret) {
            return report_usage("login", secret.error());
        }
        credentials.password = secret.release_value();
    }
    if (credentials.username.empty() || credentials.password.empty()) {
        return report_usage("login",
                            base::invalid_argument("username and password must not be empty"));
    }
    auto config_dir = oci::default_config_dir();
    if (!config_dir) {
        return report_error(config_dir.error());
    }
    auto result = oci::login(config_dir.value(), parsed->positional()[0], credentials);
    if (!result) {
        return report_error(result.error());
    }
    std::printf("login succeeded: %s\n", oci::normalise_registry(parsed->positional()[0])->c_str());
    return kExitOk;
}

int run_logout(std::span<const std::string> args) {
    auto parsed = parse_args(args, {});
    if (!parsed) {
        return report_usage("logout", parsed.error());
    }
    if (parsed->positional().size() != 1) {
        return report_usage("logout", base::invalid_argument("expected one REGISTRY"));
    }
    auto config_dir = oci::default_config_dir();
    if (!config_dir) {
        return report_error(config_dir.error());
    }
    auto result = oci::logout(config_dir.value(), parsed->positional()[0]);
    if (!result) {
        return report_error(result.error());
    }
    std::printf("removed credentials for %s\n",
                oci::normalise_registry(parsed->positional()[0])->c_str());
    return kExitOk;
}

}  // namespace locald::cli
