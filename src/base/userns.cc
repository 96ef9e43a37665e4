// base/userns.cc — see userns.h. Raw syscalls only (no other base .cc), so the
// layer unpacker and the launcher can use this before the rest of base lands.
#include "base/userns.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstring>

#include "base/unique_fd.h"

extern char** environ;

namespace locald::base {

namespace {

// /etc/subuid is a handful of lines; 1 MiB is far beyond any real file and
// keeps a hostile or corrupt file from exhausting memory.
constexpr size_t kMaxSubidFileBytes = 1 << 20;
// newuidmap's stderr is a line or two; more is cut.
constexpr size_t kMaxHelperOutput = 4096;

bool parse_u32(std::string_view text, uint32_t* out) {
    if (text.empty()) {
        return false;
    }
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, 10);
    return ec == std::errc() && ptr == text.data() + text.size();
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

Result<std::string> read_capped(const std::string& path, size_t cap) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        return errno_error("opening `{}`", path);
    }
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_error("reading `{}`", path);
        }
        if (n == 0) {
            break;
        }
        if (out.size() + static_cast<size_t>(n) > cap) {
            return invalid_argument("`{}` exceeds the {}-byte limit", path, cap);
        }
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

Result<void> write_whole(int fd, std::string_view data, std::string_view what) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_error("writing {}", what);
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return ok();
}

// Writes the whole of `data` to a /proc file in a single write(2): the kernel
// requires id maps to be written at once.
Result<void> write_proc_file(pid_t pid, std::string_view file, std::string_view data) {
    std::string path = fmt::format("/proc/{}/{}", pid, file);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
        return errno_error("opening `{}`", path);
    }
    ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0) {
        return errno_error("writing `{}` ({})", path, trim(std::string(data)));
    }
    if (static_cast<size_t>(n) != data.size()) {
        return internal_error("short write to `{}`", path);
    }
    return ok();
}

std::vector<IdMap> build_map(uint32_t own_id, bool is_root, const std::vector<SubIdRange>& ranges) {
    std::vector<IdMap> map;
    uint32_t next = 0;
    if (!is_root) {
        // 1. The user itself is container root: files the user owns on the host
        //    (a bind-mounted project dir) are owned by root inside.
        map.push_back({0, own_id, 1});
        next = 1;
    }
    for (const auto& range : ranges) {
        if (map.size() >= kMaxIdMapLines) {
            break;
        }
        // A range containing the user's own id (or host root) would map the
        // same host id twice or hand out host root; the kernel rejects the
        // former and we refuse the latter.
        uint64_t end = static_cast<uint64_t>(range.start) + range.count;
        if ((own_id >= range.start && own_id < end) || range.start == 0) {
            continue;
        }
        uint64_t container_end = static_cast<uint64_t>(next) + range.count;
        if (container_end > UINT32_MAX) {
            break;
        }
        map.push_back({next, range.start, range.count});
        next = static_cast<uint32_t>(container_end);
    }
    if (is_root && map.empty()) {
        // 2. Root without a range: container root is host `nobody`, never
        //    host root (a payload escaping the mount namespace owns nothing).
        map.push_back({0, kNobodyId, 1});
    }
    return map;
}

uint32_t map_count(const std::vector<IdMap>& map) {
    uint32_t top = 0;
    for (const auto& entry : map) {
        top = std::max(top, entry.container_id + entry.count);
    }
    return top;
}

// A setuid id-map helper (`helper pid c h n [c h n …]`) once started: its
// command line, pid and the read end of its stdout+stderr.
struct IdMapHelper {
    std::vector<std::string> args;
    pid_t pid = -1;
    UniqueFd output;
};

Result<void> start_helper(IdMapHelper& helper, std::string_view name, pid_t pid,
                          const std::vector<IdMap>& map) {
    std::string path = TRY(find_id_map_helper(name));
    helper.args = {path, std::to_string(pid)};
    for (const auto& entry : map) {
        helper.args.push_back(std::to_string(entry.container_id));
        helper.args.push_back(std::to_string(entry.host_id));
        helper.args.push_back(std::to_string(entry.count));
    }
    std::vector<char*> argv;
    for (auto& arg : helper.args) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);

    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        return errno_error("creating a pipe for `{}`", path);
    }
    helper.output = UniqueFd(err_pipe[0]);
    UniqueFd err_write(err_pipe[1]);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
    int rc = ::posix_spawn(&helper.pid, path.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        helper.pid = -1;
        return Error::from_errno(rc, fmt::format("running `{}`", path));
    }
    return ok();
}

// Drains the helper's output to EOF and reaps it. The output is tiny (an
// error line at most), so draining one helper never blocks on another.
Result<void> finish_helper(IdMapHelper& helper) {
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
            return errno_error("waiting for `{}`", helper.args[0]);
        }
    }
    helper.pid = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return ok();
    }
    std::string detail = std::string(trim(output));
    if (detail.empty()) {
        detail = WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status))
                                   : fmt::format("killed by signal {}", WTERMSIG(status));
    }
    std::string cmdline;
    for (size_t i = 0; i < helper.args.size(); ++i) {
        cmdline += (i ? " " : "") + helper.args[i];
    }
    return permission_denied("`{}` failed: {}", cmdline, detail);
}

// The error channel of run_in_user_namespace: {kind, errno, length, message}.
struct WireError {
    int32_t kind;
    int32_t err;
    uint32_t length;
};

void send_error(int fd, const Error& error) {
    const std::string& message = error.message();
    WireError header{static_cast<int32_t>(error.kind()), error.errno_value(),
                     static_cast<uint32_t>(std::min<size_t>(message.size(), 65536))};
    std::string buf(reinterpret_cast<const char*>(&header), sizeof header);
    buf.append(message.data(), header.length);
    (void)write_whole(fd, buf, "the error pipe");
}

Result<void> read_error(int fd) {
    std::string data;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (data.size() < 70000) {
            data.append(buf, static_cast<size_t>(n));
        }
    }
    if (data.empty()) {
        return ok();
    }
    if (data.size() < sizeof(WireError)) {
        return internal_error("truncated error from the user-namespace child");
    }
    WireError header;
    std::memcpy(&header, data.data(), sizeof header);
    std::string message = data.substr(sizeof header, header.length);
    return Error(static_cast<ErrorKind>(header.kind), std::move(message), header.err);
}

}  // namespace

Result<std::vector<SubIdRange>> parse_subid_ranges(std::string_view text,
                                                   std::string_view user_name, uint32_t id,
                                                   std::string_view source) {
    std::vector<SubIdRange> ranges;
    std::string id_text = std::to_string(id);
    size_t line_no = 0;
    while (!text.empty()) {
        size_t eol = text.find('\n');
        std::string_view line = trim(text.substr(0, eol));
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        ++line_no;
        if (line.empty() || line.front() == '#') {
            continue;
        }
        size_t c1 = line.find(':');
        if (c1 == std::string_view::npos) {
            continue;
        }
        std::string_view owner = line.substr(0, c1);
        if (!((!user_name.empty() && owner == user_name) || owner == id_text)) {
            continue;
        }
        std::string_view rest = line.substr(c1 + 1);
        size_t c2 = rest.find(':');
        SubIdRange range;
        if (c2 == std::string_view::npos || !parse_u32(rest.substr(0, c2), &range.start) ||
            !parse_u32(rest.substr(c2 + 1), &range.count)) {
            return invalid_argument("{}:{}: expected `name:start:count`, got `{}`", source, line_no,
                                    line);
        }
        if (range.count == 0) {
            continue;
        }
        if (static_cast<uint64_t>(range.start) + range.count > UINT32_MAX) {
            return invalid_argument("{}:{}: range {}+{} overflows 32-bit ids", source, line_no,
                                    range.start, range.count);
        }
        ranges.push_back(range);
    }
    return ranges;
}

Result<std::vector<SubIdRange>> read_subid_ranges(const std::string& path,
                                                  std::string_view user_name, uint32_t id) {
    auto text = read_capped(path, kMaxSubidFileBytes);
    if (!text) {
        if (text.error().errno_value() == ENOENT) {
            return std::vector<SubIdRange>{};
        }
        return text.release_error();
    }
    return parse_subid_ranges(*text, user_name, id, path);
}

CurrentUser current_user() {
    CurrentUser user;
    user.uid = ::geteuid();
    user.gid = ::getegid();
    struct passwd pwd;
    struct passwd* found = nullptr;
    std::array<char, 16384> buf;
    if (::getpwuid_r(user.uid, &pwd, buf.data(), buf.size(), &found) == 0 && found) {
        user.name = found->pw_name;
    }
    return user;
}

uint32_t IdMapping::uid_count() const {
    return map_count(uid_map);
}

uint32_t IdMapping::gid_count() const {
    return map_count(gid_map);
}

IdMapping make_container_mapping(const CurrentUser& user, const std::vector<SubIdRange>& subuids,
                                 const std::vector<SubIdRange>& subgids) {
    IdMapping mapping;
    bool is_root = user.uid == 0;
    mapping.uid_map = build_map(user.uid, is_root, subuids);
    mapping.gid_map = build_map(user.gid, is_root, subgids);
    std::string who = user.name.empty() ? std::to_string(user.uid) : user.name;
    if (!is_root && (mapping.uid_map.size() == 1 || mapping.gid_map.size() == 1)) {
        // An unprivileged single mapping may only be written with setgroups
        // denied (CVE-2014-8989: otherwise dropping a group could grant access).
        mapping.deny_setgroups = true;
        mapping.warning = fmt::format(
            "no subordinate {} range for `{}` in /etc/sub{}: running with a single id mapping "
            "(only root exists inside; files owned by other ids show as nobody). Fix: add "
            "`{}:100000:65536` to /etc/subuid and /etc/subgid",
            mapping.uid_map.size() == 1 ? "uid" : "gid", who,
            mapping.uid_map.size() == 1 ? "uid" : "gid", who);
        // Keep both maps single so the mapping is consistent.
        mapping.uid_map.resize(1);
        mapping.gid_map.resize(1);
    } else if (is_root && (mapping.uid_map[0].host_id == kNobodyId ||
                           mapping.gid_map[0].host_id == kNobodyId)) {
        mapping.deny_setgroups = true;
        mapping.warning =
            "no subordinate range for root in /etc/subuid: container root is host `nobody` "
            "(65534). Fix: add `root:100000:65536` to /etc/subuid and /etc/subgid";
        mapping.uid_map.assign(1, IdMap{0, kNobodyId, 1});
        mapping.gid_map.assign(1, IdMap{0, kNobodyId, 1});
    }
    return mapping;
}

Result<IdMapping> container_mapping(const std::string& subuid_path,
                                    const std::string& subgid_path) {
    CurrentUser user = current_user();
    auto subuids = TRY(read_subid_ranges(subuid_path, user.name, user.uid));
    auto subgids = TRY(read_subid_ranges(subgid_path, user.name, user.uid));
    return make_container_mapping(user, subuids, subgids);
}

std::string format_id_map(const std::vector<IdMap>& map) {
    std::string out;
    for (const auto& entry : map) {
        out += fmt::format("{} {} {}\n", entry.container_id, entry.host_id, entry.count);
    }
    return out;
}

bool map_to_host(const std::vector<IdMap>& map, uint32_t container_id, uint32_t* host_id) {
    for (const auto& entry : map) {
        if (container_id >= entry.container_id && container_id - entry.container_id < entry.count) {
            *host_id = entry.host_id + (container_id - entry.container_id);
            return true;
        }
    }
    return false;
}

Result<std::string> find_id_map_helper(std::string_view name) {
    for (const char* dir : {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"}) {
        std::string path = fmt::format("{}/{}", dir, name);
        if (::access(path.c_str(), X_OK) == 0) {
            return path;
        }
    }
    return not_found("`{}` is not installed (Debian package `uidmap`)", name);
}

Result<void> write_id_maps(pid_t pid, const IdMapping& mapping) {
    if (mapping.uid_map.empty() || mapping.gid_map.empty()) {
        return invalid_argument("empty id mapping");
    }
    bool use_helpers = ::geteuid() != 0 && !mapping.single();
    if (use_helpers) {
        // Both helpers run side by side: each is a setuid exec (~0.8 ms of
        // loading apiece, the largest fixed cost of a container start), and
        // the writes are independent when privileged helpers outside the
        // namespace do them — each checks its own capability over the parent
        // namespace and the kernel serialises map writes. (gid-before-uid
        // matters only to a process writing its own maps from inside.)
        IdMapHelper gid_helper;
        IdMapHelper uid_helper;
        TRY(start_helper(gid_helper, "newgidmap", pid, mapping.gid_map)
                .context("writing the gid map"));
        if (auto started = start_helper(uid_helper, "newuidmap", pid, mapping.uid_map); !started) {
            (void)finish_helper(gid_helper);
            return started.release_error().context("writing the uid map");
        }
        auto gid = finish_helper(gid_helper).context("writing the gid map");
        auto uid = finish_helper(uid_helper).context("writing the uid map");
        if (!gid) {
            return gid.release_error();
        }
        return uid;
    }
    if (mapping.deny_setgroups) {
        TRY(write_proc_file(pid, "setgroups", "deny"));
    }
    TRY(write_proc_file(pid, "gid_map", format_id_map(mapping.gid_map)));
    TRY(write_proc_file(pid, "uid_map", format_id_map(mapping.uid_map)));
    return ok();
}

Result<int> run_in_user_namespace(const IdMapping& mapping, const std::function<Result<int>()>& fn,
                                  int extra_unshare_flags) {
    int to_child[2];
    int to_parent[2];
    int errors[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0) {
        return errno_error("creating a sync pipe");
    }
    UniqueFd to_child_r(to_child[0]), to_child_w(to_child[1]);
    if (::pipe2(to_parent, O_CLOEXEC) != 0) {
        return errno_error("creating a sync pipe");
    }
    UniqueFd to_parent_r(to_parent[0]), to_parent_w(to_parent[1]);
    if (::pipe2(errors, O_CLOEXEC) != 0) {
        return errno_error("creating an error pipe");
    }
    UniqueFd errors_r(errors[0]), errors_w(errors[1]);

    pid_t pid = ::fork();
    if (pid < 0) {
        return errno_error("fork");
    }
    if (pid == 0) {
        to_child_w.reset();
        to_parent_r.reset();
        errors_r.reset();
        auto child = [&]() -> Result<int> {
            // sync 1: create the user namespace, tell the parent to map it.
            if (::unshare(CLONE_NEWUSER) != 0) {
                return errno_error("unshare(CLONE_NEWUSER)");
            }
            char byte = 'u';
            TRY(write_whole(to_parent_w.get(), {&byte, 1}, "the sync pipe"));
            // sync 2: wait until the maps are written (EOF means the parent
            // failed and will report why).
            ssize_t n;
            do {
                n = ::read(to_child_r.get(), &byte, 1);
            } while (n < 0 && errno == EINTR);
            if (n != 1) {
                ::_exit(127);
            }
            if (extra_unshare_flags != 0 && ::unshare(extra_unshare_flags) != 0) {
                return errno_error("unshare({:#x})", extra_unshare_flags);
            }
            // Become container root: until now our ids are the overflow ids.
            if (::setresgid(0, 0, 0) != 0) {
                return errno_error("setresgid(0)");
            }
            if (!mapping.deny_setgroups && ::setgroups(0, nullptr) != 0) {
                return errno_error("setgroups(0)");
            }
            if (::setresuid(0, 0, 0) != 0) {
                return errno_error("setresuid(0)");
            }
            return fn();
        };
        auto result = child();
        if (!result) {
            send_error(errors_w.get(), result.error());
            ::_exit(125);
        }
        ::_exit(*result & 0xff);
    }

    to_child_r.reset();
    to_parent_w.reset();
    errors_w.reset();
    auto reap = [pid]() -> Result<int> {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                return errno_error("waitpid({})", pid);
            }
        }
        if (WIFSIGNALED(status)) {
            return 128 + WTERMSIG(status);
        }
        return WEXITSTATUS(status);
    };

    char byte = 0;
    ssize_t n;
    do {
        n = ::read(to_parent_r.get(), &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        auto child_error = read_error(errors_r.get());
        (void)reap();
        if (!child_error) {
            return child_error.release_error();
        }
        return internal_error("the user-namespace child exited before creating its namespace");
    }
    auto written = write_id_maps(pid, mapping);
    if (!written) {
        ::kill(pid, SIGKILL);
        (void)reap();
        return written.release_error();
    }
    TRY(write_whole(to_child_w.get(), {&byte, 1}, "the sync pipe"));
    to_child_w.reset();

    auto child_error = read_error(errors_r.get());
    int status = TRY(reap());
    if (!child_error) {
        return child_error.release_error();
    }
    return status;
}

}  // namespace locald::base
