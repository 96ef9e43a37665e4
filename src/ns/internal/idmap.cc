// ns/internal/idmap.cc — writing the container's id maps with both setuid
// helpers running at the same time.
//
// `base::write_id_maps` runs newgidmap, waits, then runs newuidmap: for the
// layer unpacker (once per image) that is fine, but on the launcher's start
// path each helper is a setuid exec with its own dynamic loading (~0.8 ms
// apiece here), the largest fixed cost after our own start. The two writes are
// independent when a privileged helper outside the namespace does them: each
// checks its own capability (CAP_SETGID / CAP_SETUID over the parent
// namespace) and the kernel serialises map writes under one mutex. The
// gid-before-uid order only matters for a process writing its *own* maps from
// inside the namespace, which never happens here. So both are started, then
// both awaited; the start path pays for one helper instead of two.
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/sys.h"

#include "ns/internal/context.h"

extern char** environ;

namespace locald::ns::internal {

namespace {

constexpr size_t kMaxHelperOutput = 4096;

struct Helper {
    std::string name;  // "newgidmap"
    std::string what;  // "the gid map"
    std::vector<std::string> args;
    pid_t pid = -1;
    base::UniqueFd output;  // read end of its stdout+stderr
};

std::vector<std::string> helper_args(const std::string& path, pid_t target,
                                     const std::vector<base::IdMap>& map) {
    std::vector<std::string> args = {path, std::to_string(target)};
    for (const auto& entry : map) {
        args.push_back(std::to_string(entry.container_id));
        args.push_back(std::to_string(entry.host_id));
        args.push_back(std::to_string(entry.count));
    }
    return args;
}

base::Result<void> spawn(Helper& helper) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        return base::errno_error("creating a pipe for `{}`", helper.args[0]);
    }
    helper.output = base::UniqueFd(fds[0]);
    base::UniqueFd write_end(fds[1]);
    std::vector<char*> argv;
    for (auto& arg : helper.args) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
    int rc =
        ::posix_spawn(&helper.pid, helper.args[0].c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        helper.pid = -1;
        return base::Error::from_errno(rc, fmt::format("running `{}`", helper.args[0]));
    }
    return base::ok();
}

// Drains the helper's output to EOF and reaps it. Output is tiny (an error
// line at most), so draining one helper never blocks on the other.
base::Result<void> finish(Helper& helper) {
    std::string output;
    char buf[512];
    for (;;) {
        ssize_t n = ::read(helper.output.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (output.size() < kMaxHelperOutput) {
            output.append(buf, static_cast<size_t>(n));
        }
    }
    helper.output.reset();
    int status = 0;
    while (::waitpid(helper.pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return base::errno_error("waiting for `{}`", helper.args[0]);
        }
    }
    helper.pid = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return base::ok();
    }
    while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) {
        output.pop_back();
    }
    if (output.empty()) {
        output = WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status))
                                   : fmt::format("killed by signal {}", WTERMSIG(status));
    }
    std::string cmdline;
    for (size_t i = 0; i < helper.args.size(); ++i) {
        cmdline += (i ? " " : "") + helper.args[i];
    }
    return base::permission_denied("writing {}: `{}` failed: {}", helper.what, cmdline, output);
}

std::vector<base::IdMap> sorted(std::vector<base::IdMap> map) {
    std::sort(map.begin(), map.end(), [](const base::IdMap& a, const base::IdMap& b) {
        return a.container_id < b.container_id;
    });
    return map;
}

}  // namespace

base::Result<std::vector<base::IdMap>> parse_id_map_file(std::string_view text) {
    std::vector<base::IdMap> map;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string line(text.substr(pos, end - pos));
        pos = end + 1;
        if (line.find_first_not_of(" \t") == std::string::npos) {
            continue;
        }
        unsigned long long fields[3];
        int used = 0;
        if (std::sscanf(line.c_str(), " %llu %llu %llu %n", &fields[0], &fields[1], &fields[2],
                        &used) != 3 ||
            static_cast<size_t>(used) != line.size() || fields[0] > UINT32_MAX ||
            fields[1] > UINT32_MAX || fields[2] > UINT32_MAX) {
            return base::invalid_argument("malformed id map line `{}`", line);
        }
        map.push_back({static_cast<uint32_t>(fields[0]), static_cast<uint32_t>(fields[1]),
                       static_cast<uint32_t>(fields[2])});
    }
    return map;
}

base::Result<void> check_joined_map(const std::string& file, std::string_view what,
                                    const std::vector<base::IdMap>& expected,
                                    const std::string& ns_path) {
    auto text = TRY(base::read_file(file, 64 * 1024)
                        .context(fmt::format("reading the {} map of `{}`", what, ns_path)));
    auto actual = TRY(parse_id_map_file(text).context(file));
    if (sorted(actual) != sorted(expected)) {
        std::string shown = base::format_id_map(actual);
        std::string wanted = base::format_id_map(expected);
        for (std::string* s : {&shown, &wanted}) {
            while (!s->empty() && s->back() == '\n') {
                s->pop_back();
            }
            for (char& c : *s) {
                c = c == '\n' ? ';' : c;
            }
        }
        return base::failed_precondition(
            "the user namespace `{}` maps {}s as `{}`, not as the containers' mapping `{}` "
            "(/etc/sub{} changed since it was made?); refusing to run with other ids",
            ns_path, what, shown, wanted, what);
    }
    return base::ok();
}

base::Result<void> write_container_id_maps(pid_t pid, const base::IdMapping& mapping) {
    if (::geteuid() == 0 || mapping.single() || mapping.uid_map.empty() ||
        mapping.gid_map.empty()) {
        // Root or a single self mapping: plain /proc writes, no helper.
        return base::write_id_maps(pid, mapping);
    }
    Helper helpers[2];
    helpers[0].name = "newgidmap";
    helpers[0].what = "the gid map";
    helpers[1].name = "newuidmap";
    helpers[1].what = "the uid map";
    const std::vector<base::IdMap>* maps[2] = {&mapping.gid_map, &mapping.uid_map};
    for (int i = 0; i < 2; ++i) {
        auto path = TRY(base::find_id_map_helper(helpers[i].name)
                            .context(fmt::format("writing {}", helpers[i].what)));
        helpers[i].args = helper_args(path, pid, *maps[i]);
    }
    TRY(spawn(helpers[0]));
    if (auto started = spawn(helpers[1]); !started) {
        (void)finish(helpers[0]);
        return started.release_error();
    }
    auto gid = finish(helpers[0]);
    auto uid = finish(helpers[1]);
    if (!gid) {
        return gid.release_error();
    }
    return uid;
}

base::Result<void> join_user_namespace(const std::string& path, const base::IdMapping& mapping) {
    // A joined namespace replaces the id-map helpers, so it must be exactly
    // what they would have produced: a user namespace, ours, one level below
    // the one we run in (not a grandchild, not someone else's).
    base::UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) {
        return base::errno_error("opening the user namespace `{}`", path);
    }
    int type = ::ioctl(ns.get(), NS_GET_NSTYPE);
    if (type != CLONE_NEWUSER) {
        return base::invalid_argument("`{}` is not a user namespace", path);
    }
    uid_t owner = 0;
    if (::ioctl(ns.get(), NS_GET_OWNER_UID, &owner) != 0) {
        return base::errno_error("reading the owner of the user namespace `{}`", path);
    }
    if (owner != ::geteuid()) {
        return base::permission_denied("the user namespace `{}` belongs to uid {}, not to uid {}",
                                       path, owner, ::geteuid());
    }
    base::UniqueFd parent(::ioctl(ns.get(), NS_GET_PARENT));
    struct stat parent_st, self_st;
    if (!parent || ::fstat(parent.get(), &parent_st) != 0 ||
        ::stat("/proc/self/ns/user", &self_st) != 0 || parent_st.st_ino != self_st.st_ino ||
        parent_st.st_dev != self_st.st_dev) {
        return base::invalid_argument(
            "the user namespace `{}` is not a child of the launcher's own user namespace", path);
    }
    if (::setns(ns.get(), CLONE_NEWUSER) != 0) {
        return base::errno_error("joining the user namespace `{}`", path);
    }
    // Owned by us and one level down is not enough: a namespace mapped any
    // other way (a single id, another range) would run the payload, and
    // write the writable layer, with ids the image was not unpacked with.
    // Now inside it, /proc/self/*_map shows its maps relative to our former
    // namespace; they must be exactly the container mapping. On a mismatch
    // the launcher stops here, before any child exists.
    TRY(check_joined_map("/proc/self/uid_map", "uid", mapping.uid_map, path));
    TRY(check_joined_map("/proc/self/gid_map", "gid", mapping.gid_map, path));
    return base::ok();
}

}  // namespace locald::ns::internal
