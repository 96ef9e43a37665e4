// `locald status [SERVICE…] [--json]`.
#include <cstdio>
#include <ctime>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"
#include "cli/output.h"

namespace locald::cli {

const char kStatusHelp[] =
    "usage: locald status [SERVICE…] [--json]\n"
    "\n"
    "Shows every service the daemon knows (or the named ones): state, pid, port,\n"
    "restarts, how long ago it started, and why it is in its state when that is\n"
    "not obvious (exec failure, exit code, probe failure, the dependency it waits for).\n"
    "\n"
    "States: pending, starting, ready, running, stopping, stopped, exited, failed.\n"
    "\n"
    "  --json   one object {\"services\":[{\"project\",\"name\",\"kind\",\"state\",\"pid\",\n"
    "           \"port\",\"restarts\",\"exit_code\",\"started_at\",\"ready_at\"}]}; times are\n"
    "           RFC 3339 UTC strings, absent values are null.\n";

namespace {

constexpr const char* kExactKeys[] = {"project", "name",     "kind",      "state",      "pid",
                                      "port",    "restarts", "exit_code", "started_at", "ready_at"};

std::string text_of(const base::Json& service, std::string_view key) {
    const base::Json* value = service.find(key);
    if (value == nullptr || value->is_null()) {
        return "-";
    }
    if (value->is_string()) {
        return value->as_string();
    }
    return value->dump();
}

std::string since(const base::Json& service) {
    const base::Json* started = service.find("started_at");
    if (started == nullptr || !started->is_string()) {
        return "-";
    }
    std::tm tm{};
    int ms = 0;
    if (std::sscanf(started->as_string().c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
        return "-";
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    std::time_t then = ::timegm(&tm);
    std::int64_t ago = (static_cast<std::int64_t>(std::time(nullptr)) - then) * 1000 - ms;
    return short_duration(ago) + " ago";
}

}  // namespace

int run_status(std::span<const std::string> args) {
    static constexpr OptionSpec kOptions[] = {{"json"}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("status", parsed.error());
    }
    base::Json names = base::Json::array();
    for (const auto& name : parsed->positional()) {
        names.push_back(name);
    }
    auto client = connect_daemon();
    if (!client) {
        return report_error(client.error());
    }
    auto answer = client->call(
        "status", base::Json::object({{"names", std::move(names)}, {"cwd", current_dir()}}));
    if (!answer) {
        return report_error(answer.error());
    }
    const base::Json* services = answer->find("services");
    if (services == nullptr || !services->is_array()) {
        return report_error(base::internal_error("status: the daemon sent no `services`"));
    }
    if (parsed->has("json")) {
        // Exactly the documented keys, in the documented order.
        base::Json list = base::Json::array();
        for (const auto& service : services->as_array()) {
            base::Json row = base::Json::object();
            for (const char* key : kExactKeys) {
                const base::Json* value = service.find(key);
                row.set(key, value ? *value : base::Json());
            }
            list.push_back(std::move(row));
        }
        std::puts(base::Json::object({{"services", std::move(list)}}).dump().c_str());
        return kExitOk;
    }
    if (services->size() == 0) {
        std::puts("no services (start a project with `locald up`)");
        return kExitOk;
    }
    bool colour = use_colour(1);
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"SERVICE", "STATE", "PID", "PORT", "RESTARTS", "STARTED", "DETAIL"});
    for (const auto& service : services->as_array()) {
        std::string state = text_of(service, "state");
        const base::Json* waiting = service.find("waiting");
        std::string detail = text_of(service, "reason");
        if (detail == "-") {
            detail = "";
        }
        if (detail.empty() && state == "exited") {
            detail = "exit code " + text_of(service, "exit_code");
        }
        (void)waiting;
        rows.push_back({text_of(service, "project") + ":" + text_of(service, "name"), state,
                        text_of(service, "pid"), text_of(service, "port"),
                        text_of(service, "restarts"), since(service), detail});
    }
    (void)colour;
    print_table(rows);
    return kExitOk;
}

}  // namespace locald::cli
