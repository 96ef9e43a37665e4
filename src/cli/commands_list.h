// cli/commands_list.h — entry points of the subcommands (one cmd_*.cc each).
#pragma once

#include <span>
#include <string>

namespace locald::cli {

extern const char kHelpHelp[];
int run_help(std::span<const std::string> args);
int run_version(std::span<const std::string> args);
extern const char kConfigHelp[];
int run_config(std::span<const std::string> args);
extern const char kEnvHelp[];
int run_env(std::span<const std::string> args);
extern const char kPushHelp[];
int run_push(std::span<const std::string> args);
extern const char kLoginHelp[];
int run_login(std::span<const std::string> args);
extern const char kLogoutHelp[];
int run_logout(std::span<const std::string> args);
extern const char kPullHelp[];
int run_pull(std::span<const std::string> args);

extern const char kUpHelp[];
int run_up(std::span<const std::string> args);
extern const char kDownHelp[];
int run_down(std::span<const std::string> args);
extern const char kStartHelp[];
int run_start(std::span<const std::string> args);
extern const char kStopHelp[];
int run_stop(std::span<const std::string> args);
extern const char kRestartHelp[];
int run_restart(std::span<const std::string> args);
extern const char kStatusHelp[];
int run_status(std::span<const std::string> args);
extern const char kLogsHelp[];
int run_logs(std::span<const std::string> args);
extern const char kAttachHelp[];
int run_attach(std::span<const std::string> args);
extern const char kRunHelp[];
int run_run(std::span<const std::string> args);
extern const char kShutdownHelp[];
int run_shutdown(std::span<const std::string> args);
extern const char kDaemonHelp[];
int run_daemon(std::span<const std::string> args);

extern const char kDoctorHelp[];
int run_doctor(std::span<const std::string> args);
extern const char kContainerHelp[];
int run_container(std::span<const std::string> args);
extern const char kLaunchHelp[];
int run_launch(std::span<const std::string> args);
extern const char kPrepareImageHelp[];
int run_prepare_image(std::span<const std::string> args);
extern const char kProvisionHelp[];
int run_provision(std::span<const std::string> args);
extern const char kProvisionInternalHelp[];
int run_provision_internal(std::span<const std::string> args);
extern const char kRunProvisionedHelp[];
int run_run_provisioned(std::span<const std::string> args);
extern const char kImagesHelp[];
int run_images(std::span<const std::string> args);
extern const char kImageHelp[];
int run_image(std::span<const std::string> args);
// Defined by the layers module (cmd_image_unpack.cc); cmd_image.cc routes
// `image unpack` to it.
int run_image_unpack(std::span<const std::string> args);
extern const char kRmiHelp[];
int run_rmi(std::span<const std::string> args);
extern const char kTagHelp[];
int run_tag(std::span<const std::string> args);
extern const char kPruneHelp[];
int run_prune(std::span<const std::string> args);

}  // namespace locald::cli
