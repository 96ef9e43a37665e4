// cli/container_run.h — the path `locald container run` and `locald run
// SERVICE` (for `image =` services) share, so a one-off container of a
// service behaves exactly as an ad-hoc one.
//
// Contract: `prepare_run_rootfs` resolves REF in the store, pulling it when
// missing with one progress line per layer on stderr (as `docker run`), and
// builds a fresh writable layer, removed when the returned object is dropped;
// warnings go to stderr. `run_container_foreground` runs `spec` attached to
// this process's stdio (stdin replaced by /dev/null unless `interactive`, as
// Docker) and returns the exit status to exit with: the container's (128+N
// for signal N), 127/126 when the command could not be executed, else the
// reported error's code. Single-threaded callers only (it forks and enters
// user namespaces). `daemon_env` (cmd_env.cc) is the environment the running
// daemon gives a service, shared by `env` and `run`.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "config/spec.h"
#include "image/prepare.h"
#include "ns/spec.h"

namespace locald::cli {

base::Result<std::unique_ptr<image::PreparedRootfs>> prepare_run_rootfs(
    const std::string& reference);

int run_container_foreground(const ns::ContainerSpec& spec, bool interactive);

// With provenance; nullopt when no daemon runs or it does not know the service.
std::optional<std::vector<config::EnvEntry>> daemon_env(const std::string& project,
                                                        const std::string& service);

}  // namespace locald::cli
