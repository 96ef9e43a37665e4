// ns/internal/context.h — what the container side of the launcher works on,
// and the step functions, one file per kernel facility (crun/bwrap style).
//
// Internal to src/ns. The parent (launcher.cc) prepares everything that can
// be prepared outside (the id mapping, the seccomp BPF, generated /etc files,
// the cgroup), then clones the container's PID 1, which runs kInitSteps in
// order; PID 1 forks the payload, which runs kPayloadSteps and execs. A failing
// step sends {step, kind, errno, message} to the parent over a CLOEXEC pipe
// (sync.h) and exits; the parent returns that as the error.
#pragma once

#include <linux/filter.h>
#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "base/userns.h"
#include "ns/spec.h"

namespace locald::ns::internal {

// The payload's identity, resolved inside the rootfs.
struct ResolvedUser {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary
    std::string home;           // from passwd; "" when unknown
};

struct ChildContext {
    const ContainerSpec* spec = nullptr;
    base::IdMapping mapping;
    int error_fd = -1;    // write end of the error channel (CLOEXEC)
    int go_fd = -1;       // read end: one byte when the parent has mapped us
    int console_fd = -1;  // tty: our end of the socket the pty master goes to
    // Host directory holding generated hosts/resolv.conf/hostname ("" = none).
    std::string etc_dir;
    std::string hostname;
    std::vector<sock_filter> seccomp_bpf;  // empty: seccomp off
    uint64_t capabilities = 0;             // bit per CAP_* number

    // Filled by the steps.
    base::UniqueFd rootfs_fd;  // O_PATH|O_DIRECTORY on the container root (before pivot)
    base::UniqueFd dev_null;   // O_PATH on the host's /dev/null, for masking files
    ResolvedUser user;
    std::vector<std::string> env;  // final environment
    pid_t payload_pid = -1;
    base::UniqueFd console_slave;  // tty: the pty slave the payload attaches to
};

using StepFn = base::Result<void> (*)(ChildContext&);
struct Step {
    const char* name;
    StepFn run;
};

// Runs `steps` in order; on the first failure reports it and _exit(125)s.
void run_steps(ChildContext& ctx, const Step* steps, size_t count);

// sync.cc — the error channel.
void send_error(int fd, std::string_view step, const base::Error& error);
// Reads the channel to EOF: ok() if nothing came, else the child's error.
base::Result<void> receive_error(int fd);

// Joins an existing user namespace (spec.user_namespace) after checking it is
// one, owned by us, and a direct child of our own, then that its uid and gid
// maps are exactly `mapping` (else an error: never run with other ids); the
// launcher then clones the other namespaces inside it and writes no maps.
base::Result<void> join_user_namespace(const std::string& path, const base::IdMapping& mapping);
// The text of /proc/PID/{uid,gid}_map ("inside outside count" per line,
// space-padded) as entries, in file order.
base::Result<std::vector<base::IdMap>> parse_id_map_file(std::string_view text);
// Reads `file` (a map as seen from inside the joined namespace) and compares
// it with `expected`, order-insensitively.
base::Result<void> check_joined_map(const std::string& file, std::string_view what,
                                    const std::vector<base::IdMap>& expected,
                                    const std::string& ns_path);

// userns.cc
base::Result<void> wait_for_parent(ChildContext& ctx);
base::Result<void> become_container_root(ChildContext& ctx);
base::Result<void> enter_cgroup_namespace(ChildContext& ctx);

// uts.cc / net.cc
base::Result<void> set_hostname(ChildContext& ctx);
base::Result<void> bring_up_loopback(ChildContext& ctx);

// mounts.cc
base::Result<void> make_mounts_private(ChildContext& ctx);
base::Result<void> mount_rootfs(ChildContext& ctx);
base::Result<void> mount_user_mounts(ChildContext& ctx);
base::Result<void> mount_etc_files(ChildContext& ctx);
base::Result<void> make_rootfs_read_only(ChildContext& ctx);
// Helpers shared by the mount files.
base::Result<base::UniqueFd> new_fs_mount(const char* fstype, const char* source,
                                          const std::vector<std::string>& options,
                                          unsigned int attrs);
base::Result<void> attach_mount(int mount_fd, int target_fd, std::string_view what);
base::Result<base::UniqueFd> clone_tree(int dirfd, const char* path, bool recursive, bool read_only,
                                        std::string_view what);
// Opens (creating when missing) a mount target inside the rootfs: a directory
// when `directory`, else an empty regular file. Never follows a symlink out of
// the rootfs; returns an O_PATH fd.
base::Result<base::UniqueFd> open_mount_target(ChildContext& ctx, std::string_view path,
                                               bool directory);

// procfs.cc (proc, sys, masked and read-only paths)
// Opens a directory of the rootfs that must not be a symlink (created if missing).
base::Result<base::UniqueFd> open_real_directory(ChildContext& ctx, std::string_view path);
base::Result<void> mount_proc(ChildContext& ctx);
base::Result<void> mount_sys(ChildContext& ctx);
base::Result<void> mask_paths(ChildContext& ctx);
base::Result<void> make_paths_read_only(ChildContext& ctx);

// devices.cc
base::Result<void> mount_dev(ChildContext& ctx);

// console.cc (tty): PID 1 opens a pty on the container's devpts, binds it on
// /dev/console and sends the master to the launcher; the payload makes the
// slave its controlling terminal and stdio. The launcher relays its own
// stdin/stdout to the master until PID 1 exits and returns its wait status.
base::Result<void> create_console(ChildContext& ctx);
base::Result<void> attach_console(ChildContext& ctx);
// An empty fd when the socket reached EOF (setup failed first).
base::Result<base::UniqueFd> receive_console(int socket);
int relay_console(int master, pid_t init, const sigset_t& signals);

// users.cc
base::Result<void> resolve_user(ChildContext& ctx);
base::Result<void> prepare_cwd(ChildContext& ctx);
// Pure parsers (unit-tested).
struct PasswdEntry {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string home;
};
struct GroupEntry {
    std::string name;
    gid_t gid = 0;
    std::vector<std::string> members;
};
std::vector<PasswdEntry> parse_passwd(std::string_view text);
std::vector<GroupEntry> parse_group(std::string_view text);
base::Result<ResolvedUser> resolve_user_spec(std::string_view user_spec,
                                             const std::vector<std::string>& extra_groups,
                                             const std::vector<PasswdEntry>& passwd,
                                             const std::vector<GroupEntry>& groups);
std::vector<std::string> build_environment(const ContainerSpec& spec, const ResolvedUser& user);

// pivot.cc
base::Result<void> pivot_into_rootfs(ChildContext& ctx);

// caps.cc
base::Result<uint64_t> capabilities_from_names(const std::vector<std::string>& names);
uint64_t default_capabilities();
base::Result<void> drop_init_privileges(ChildContext& ctx);
base::Result<void> switch_user_and_capabilities(ChildContext& ctx);
base::Result<void> set_no_new_privs(ChildContext& ctx);

// process.cc (session, cwd, rlimits, fds, exec)
base::Result<void> start_session(ChildContext& ctx);
base::Result<void> enter_cwd(ChildContext& ctx);
base::Result<void> apply_rlimits(ChildContext& ctx);
base::Result<void> close_extra_fds(ChildContext& ctx);
base::Result<void> exec_payload(ChildContext& ctx);

// seccomp.cc
base::Result<void> load_seccomp(ChildContext& ctx);
// Parent side: the default profile compiled to BPF, from the cache when present.
base::Result<std::vector<sock_filter>> default_seccomp_bpf(const std::string& cache_dir);

// init.cc — PID 1: forks the payload (which runs the payload steps) and
// reaps until it exits; returns the exit code for _exit.
int run_init(ChildContext& ctx);

}  // namespace locald::ns::internal
