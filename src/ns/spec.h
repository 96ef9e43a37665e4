// ns/spec.h — ContainerSpec: everything the launcher needs, as plain data.
//
// Contract: the launcher knows nothing about images, registries or tar. A
// caller (`container run`, the daemon's `image =` services, the future CNB
// phases) resolves an image into a rootfs (a directory, or a list of mounts
// such as an overlay described by the layers module) and fills this struct;
// the struct round-trips through JSON so the daemon can hand it to
// `locald __launch SPEC.json` in a fresh single-threaded process.
//
// Nothing is implied beyond what is written here, except: HOME is added when
// `env` lacks it (from the user's passwd entry, else `/`), and PATH when
// `env` lacks it — both skipped with `exact_env` (CNB phases want exactly the
// environment they computed). Paths inside the container (`cwd`, mount
// destinations) are absolute container paths and are resolved inside the
// rootfs without ever leaving it. Host paths (rootfs, mount sources, volumes)
// are trusted: the caller chose them.
// Depends on base only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/json.h"

namespace locald::ns {

// One mount that builds the rootfs, containerd-style: {type: "overlay",
// source: "overlay", options: ["lowerdir=/a:/b", "upperdir=…", "workdir=…",
// "userxattr"]} or {type: "bind", source: "/dir", options: ["rbind", "ro"]}.
struct RootfsMount {
    std::string type;
    std::string source;
    std::vector<std::string> options;
};

// The container's root: `path` is a host directory. With `mounts` empty it is
// the root itself (bound onto itself); otherwise the mounts are stacked on
// `path` in order inside the container's mount namespace (an overlay with
// `userxattr` is mounted from inside the user namespace, as the kernel
// requires for unprivileged overlay).
struct Rootfs {
    std::string path;
    std::vector<RootfsMount> mounts;
};

enum class MountKind {
    Bind,    // `source` is a host file or directory
    Volume,  // a named volume: `source` is its host directory (created by the caller)
    Tmpfs,   // `source` unused; `options` may hold size=…, mode=…
};

struct Mount {
    MountKind kind = MountKind::Bind;
    std::string source;
    std::string destination;  // absolute, inside the container
    bool read_only = false;
    std::vector<std::string> options;  // tmpfs only: "size=64m", "mode=1777"
};

enum class NetworkMode {
    Host,  // share the host's network namespace (ports bind on the host)
    None,  // a new network namespace with only `lo` (up)
};

struct Resources {
    std::optional<int64_t> memory_bytes;  // memory.max / memory.limit_in_bytes
    std::optional<double> cpus;           // cpu.max quota = cpus × period
    std::optional<int64_t> pids;          // pids.max
    // A cgroup v2 directory the caller was delegated (the daemon's one
    // parent for all its containers): the container's cgroup is created
    // under it, with the controllers enabled in its cgroup.subtree_control.
    // "" → the launcher's own cgroup, when that is delegated.
    std::string cgroup_parent;
    bool any() const { return memory_bytes || cpus || pids; }
};

struct Rlimit {
    std::string name;  // "nofile", "nproc", "core", … (RLIMIT_ without prefix, lower case)
    uint64_t soft = 0;
    uint64_t hard = 0;
};

struct ContainerSpec {
    std::string name;  // for messages, the cgroup name and the default hostname
    Rootfs rootfs;
    std::vector<std::string> args;  // argv; args[0] is searched in the container's PATH
    std::vector<std::string> env;   // "KEY=VALUE", in order
    bool exact_env = false;         // do not add HOME/PATH
    std::string cwd = "/";          // created (owned by the user) when missing, as Docker does
    // "" (root), "name", "uid", "name:group", "uid:gid" — resolved inside the
    // rootfs from /etc/passwd and /etc/group.
    std::string user;
    std::vector<std::string> additional_groups;  // names or gids, resolved like `user`
    std::string hostname;                        // "" → `name`, or "locald" when both empty
    std::vector<Mount> mounts;
    NetworkMode network = NetworkMode::Host;
    bool read_only_rootfs = false;
    Resources resources;
    // The container gets its own terminal: a pty on its devpts (also
    // /dev/console), the payload's controlling tty and stdio; the launcher
    // relays its stdin/stdout to it (raw mode when stdin is a terminal) and
    // copies window-size changes.
    bool tty = false;
    // nullopt: containers-common's default set. Names as "CAP_CHOWN" or "chown".
    std::optional<std::vector<std::string>> capabilities;
    bool seccomp = true;
    std::vector<Rlimit> rlimits;
    // Bind generated /etc/hosts, /etc/resolv.conf, /etc/hostname.
    bool provide_etc_files = true;
    // Host scratch directory for generated files; "" → a private dir under
    // $TMPDIR, removed after the run.
    std::string state_dir;
    // Where compiled seccomp BPF is cached; "" → no cache.
    std::string seccomp_cache_dir;
    // Join this user namespace (a path such as /proc/PID/ns/user) instead of
    // creating one, which skips newgidmap/newuidmap (≈1.5 ms and 2 setuid
    // execs per start). It must be owned by the calling user, a child of the
    // caller's namespace, and mapped as base::container_mapping() maps (the
    // ids images are unpacked with) — what a long-lived holder made with that
    // mapping provides. "" → a new user namespace per container.
    std::string user_namespace;
};

base::Json to_json(const ContainerSpec& spec);
base::Result<ContainerSpec> spec_from_json(const base::Json& json);

// Parses "512M", "1g", "1048576" (bytes; k/m/g/t suffixes, binary units).
base::Result<int64_t> parse_memory_size(std::string_view text);

}  // namespace locald::ns
