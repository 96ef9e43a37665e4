// ns/internal/users.cc — the payload's user, groups, HOME and environment,
// resolved from the rootfs's own /etc/passwd and /etc/group.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "base/confined.h"
#include "ns/internal/context.h"

namespace locald::ns::internal {

namespace {

// Real passwd/group files are kilobytes; the cap keeps a hostile image from
// making the launcher read gigabytes.
constexpr size_t kMaxAccountFileBytes = 1 << 20;
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (;;) {
        size_t pos = text.find(sep, start);
        out.push_back(text.substr(start, pos == std::string_view::npos ? pos : pos - start));
        if (pos == std::string_view::npos) {
            return out;
        }
        start = pos + 1;
    }
}

bool parse_id(std::string_view text, uint32_t* out) {
    if (text.empty()) {
        return false;
    }
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, 10);
    return ec == std::errc() && ptr == text.data() + text.size();
}

base::Result<std::string> read_account_file(int root_fd, std::string_view path) {
    auto fd = base::open_in_root(root_fd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (!fd) {
        if (fd.error().errno_value() == ENOENT || fd.error().errno_value() == ENOTDIR) {
            return std::string();
        }
        return fd.release_error();
    }
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) {
        return base::errno_error("fstat `{}`", path);
    }
    if (!S_ISREG(st.st_mode)) {
        return base::invalid_argument("`{}` in the rootfs is not a regular file", path);
    }
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd->get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return base::errno_error("reading `{}`", path);
        }
        if (n == 0) {
            return out;
        }
        if (out.size() + static_cast<size_t>(n) > kMaxAccountFileBytes) {
            return base::invalid_argument("`{}` exceeds the {}-byte limit", path,
                                          kMaxAccountFileBytes);
        }
        out.append(buf, static_cast<size_t>(n));
    }
}

bool has_key(const std::vector<std::string>& env, std::string_view key) {
    return std::any_of(env.begin(), env.end(), [&](const std::string& entry) {
        return entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 &&
               entry[key.size()] == '=';
    });
}

}  // namespace

std::vector<PasswdEntry> parse_passwd(std::string_view text) {
    std::vector<PasswdEntry> out;
    for (auto line : split(text, '\n')) {
        if (line.empty() || line.front() == '#') {
            continue;
        }
        auto fields = split(line, ':');
        PasswdEntry entry;
        if (fields.size() < 4 || fields[0].empty() || !parse_id(fields[2], &entry.uid) ||
            !parse_id(fields[3], &entry.gid)) {
            continue;  // as glibc: a malformed line is skipped
        }
        entry.name = std::string(fields[0]);
        if (fields.size() >= 6) {
            entry.home = std::string(fields[5]);
        }
        out.push_back(std::move(entry));
    }
    return out;
}

std::vector<GroupEntry> parse_group(std::string_view text) {
    std::vector<GroupEntry> out;
    for (auto line : split(text, '\n')) {
        if (line.empty() || line.front() == '#') {
            continue;
        }
        auto fields = split(line, ':');
        GroupEntry entry;
        if (fields.size() < 3 || fields[0].empty() || !parse_id(fields[2], &entry.gid)) {
            continue;
        }
        entry.name = std::string(fields[0]);
        if (fields.size() >= 4 && !fields[3].empty()) {
            for (auto member : split(fields[3], ',')) {
                if (!member.empty()) {
                    entry.members.emplace_back(member);
                }
            }
        }
        out.push_back(std::move(entry));
    }
    return out;
}

base::Result<ResolvedUser> resolve_user_spec(std::string_view user_spec,
                                             const std::vector<std::string>& extra_groups,
                                             const std::vector<PasswdEntry>& passwd,
                                             const std::vector<GroupEntry>& groups) {
    std::string_view user_part = user_spec;
    std::string_view group_part;
    bool has_group = false;
    if (size_t colon = user_spec.find(':'); colon != std::string_view::npos) {
        user_part = user_spec.substr(0, colon);
        group_part = user_spec.substr(colon + 1);
        has_group = true;
    }
    ResolvedUser user;
    const PasswdEntry* entry = nullptr;
    uint32_t id = 0;
    if (user_part.empty()) {
        user.uid = 0;
    } else if (parse_id(user_part, &id)) {
        user.uid = id;
    } else {
        auto it = std::find_if(passwd.begin(), passwd.end(),
                               [&](const PasswdEntry& e) { return e.name == user_part; });
        if (it == passwd.end()) {
            return base::not_found("user `{}`: no matching entry in the image's /etc/passwd",
                                   user_part);
        }
        entry = &*it;
    }
    if (entry == nullptr) {
        auto it = std::find_if(passwd.begin(), passwd.end(),
                               [&](const PasswdEntry& e) { return e.uid == user.uid; });
        if (it != passwd.end()) {
            entry = &*it;
        }
    }
    if (entry != nullptr) {
        user.uid = entry->uid;
        user.gid = entry->gid;
        user.home = entry->home;
    }
    auto resolve_group = [&](std::string_view text) -> base::Result<gid_t> {
        uint32_t gid = 0;
        if (parse_id(text, &gid)) {
            return static_cast<gid_t>(gid);
        }
        auto it = std::find_if(groups.begin(), groups.end(),
                               [&](const GroupEntry& g) { return g.name == text; });
        if (it == groups.end()) {
            return base::not_found("group `{}`: no matching entry in the image's /etc/group", text);
        }
        return it->gid;
    };
    if (has_group) {
        if (group_part.empty()) {
            return base::invalid_argument("user `{}`: empty group", user_spec);
        }
        user.gid = TRY(resolve_group(group_part));
    }
    // Supplementary groups: the image's memberships of the named user (as
    // Docker's getent-style lookup), then the spec's extra groups.
    if (entry != nullptr) {
        for (const auto& group : groups) {
            if (group.gid != user.gid && std::find(group.members.begin(), group.members.end(),
                                                   entry->name) != group.members.end()) {
                user.groups.push_back(group.gid);
            }
        }
    }
    for (const auto& extra : extra_groups) {
        gid_t gid = TRY(resolve_group(extra));
        if (std::find(user.groups.begin(), user.groups.end(), gid) == user.groups.end()) {
            user.groups.push_back(gid);
        }
    }
    return user;
}

std::vector<std::string> build_environment(const ContainerSpec& spec, const ResolvedUser& user) {
    std::vector<std::string> env = spec.env;
    if (spec.exact_env) {
        return env;
    }
    if (!has_key(env, "PATH")) {
        env.push_back(fmt::format("PATH={}", kDefaultPath));
    }
    if (!has_key(env, "HOME")) {
        env.push_back(fmt::format("HOME={}", user.home.empty() ? "/" : user.home));
    }
    if (spec.tty && !has_key(env, "TERM")) {
        env.push_back("TERM=xterm");
    }
    return env;
}

base::Result<void> resolve_user(ChildContext& ctx) {
    // 16. The user is looked up in the image's own account files (size-capped,
    //     opened inside the rootfs), never the host's.
    auto passwd = parse_passwd(TRY(read_account_file(ctx.rootfs_fd.get(), "/etc/passwd")));
    auto groups = parse_group(TRY(read_account_file(ctx.rootfs_fd.get(), "/etc/group")));
    ctx.user = TRY(resolve_user_spec(ctx.spec->user, ctx.spec->additional_groups, passwd, groups));
    ctx.env = build_environment(*ctx.spec, ctx.user);
    return base::ok();
}

base::Result<void> prepare_cwd(ChildContext& ctx) {
    const std::string& cwd = ctx.spec->cwd;
    if (cwd.empty() || cwd.front() != '/') {
        return base::invalid_argument("working directory `{}` is not absolute", cwd);
    }
    // 17. A missing working directory is created inside the rootfs and given
    //     to the user (as Docker does for WORKDIR).
    auto existing = base::open_in_root(ctx.rootfs_fd.get(), cwd, O_PATH | O_DIRECTORY);
    if (existing) {
        return base::ok();
    }
    if (existing.error().errno_value() != ENOENT) {
        return existing.release_error();
    }
    auto dir = TRY(base::mkdir_all_in_root(ctx.rootfs_fd.get(), cwd, 0755));
    if (::fchownat(dir.get(), "", ctx.user.uid, ctx.user.gid, AT_EMPTY_PATH) != 0) {
        return base::errno_error("chown of the working directory `{}`", cwd);
    }
    return base::ok();
}

}  // namespace locald::ns::internal
