#include <cstdio>

#include "cli/command.h"
#include "cli/commands_list.h"

namespace locald::cli {

namespace {

// The table: one line per subcommand, in the order `locald --help` lists them.
const Command kCommands[] = {
    {"help", "Show help for a command", kHelpHelp, run_help},
    {"version", "Print the version", "usage: locald version\n", run_version},
    {"up", "Start a project's services (or re-apply its config)", kUpHelp, run_up},
    {"down", "Stop a project's services", kDownHelp, run_down},
    {"status", "Show the state of every service", kStatusHelp, run_status},
    {"logs", "Show (or follow) service output", kLogsHelp, run_logs},
    {"start", "Start services", kStartHelp, run_start},
    {"stop", "Stop services", kStopHelp, run_stop},
    {"restart", "Restart services", kRestartHelp, run_restart},
    {"attach", "Connect your terminal to a service's PTY", kAttachHelp, run_attach},
    {"run", "Run a one-off command with a service's environment", kRunHelp, run_run},
    {"shutdown", "Stop every service and the daemon", kShutdownHelp, run_shutdown},
    {"daemon", "Run the daemon in the foreground", kDaemonHelp, run_daemon},
    {"pull", "Fetch an image from a registry into the local store", kPullHelp, run_pull},
    {"push", "Upload an image from the local store to a registry", kPushHelp, run_push},
    {"login", "Save credentials for a registry (checked first)", kLoginHelp, run_login},
    {"logout", "Remove saved credentials for a registry", kLogoutHelp, run_logout},
    {"images", "List the images in the local store", kImagesHelp, run_images},
    {"image", "Inspect, save, load or unpack a stored image", kImageHelp, run_image},
    {"tag", "Give a stored image another name", kTagHelp, run_tag},
    {"rmi", "Remove images from the local store", kRmiHelp, run_rmi},
    {"prune", "Delete blobs no image uses and stale partial downloads", kPruneHelp, run_prune},
    {"config", "Show the resolved project configuration", kConfigHelp, run_config},
    {"env", "Show the environment a service runs with", kEnvHelp, run_env},
    {"container", "Run a container in the foreground (rootless)", kContainerHelp, run_container},
    {"doctor", "Check what rootless containers need on this machine", kDoctorHelp, run_doctor},
    {"__launch", "Internal: run one container from a spec", kLaunchHelp, run_launch, true},
    {"__prepare-image", "Internal: pull and prepare an image service's root filesystem",
     kPrepareImageHelp, run_prepare_image, true},
    {"provision", "Build a project's build services for the host (Dump Layer)", kProvisionHelp,
     run_provision},
    {"__provision", "Internal: provision one build service", kProvisionInternalHelp,
     run_provision_internal, true},
    {"__run-provisioned", "Internal: provision when stale, then exec a build service's process",
     kRunProvisionedHelp, run_run_provisioned, true},
};

}  // namespace

std::span<const Command> commands() {
    return kCommands;
}

const Command* find_command(std::string_view name) {
    for (const auto& command : kCommands) {
        if (command.name == name) {
            return &command;
        }
    }
    return nullptr;
}

int report_error(const base::Error& error) {
    std::fprintf(stderr, "locald: error: %s\n", error.to_string().c_str());
    return exit_code_for(error.kind());
}

int report_usage(std::string_view command, const base::Error& error) {
    std::fprintf(stderr, "locald: error: %s\n", error.to_string().c_str());
    std::fprintf(stderr, "see `locald help %.*s`\n", static_cast<int>(command.size()),
                 command.data());
    return kExitUsage;
}

}  // namespace locald::cli
