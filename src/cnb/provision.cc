// cnb/provision.cc — see provision.h.
#include "cnb/provision.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <set>

#include <fmt/format.h>

#include "base/atomic_file.h"
#include "base/confined.h"
#include "base/json.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "base/unique_fd.h"
#include "base/userns.h"
#include "cnb/build.h"
#include "cnb/buildpack.h"
#include "cnb/detect.h"
#include "layers/unpack.h"
#include "oci/image.h"
#include "oci/pull.h"
#include "oci/reference.h"
#include "oci/store.h"

namespace locald::cnb {
namespace {

constexpr int kMaxDepth = 128;
constexpr size_t kTailBytes = 2000;

bool valid_env_name(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_';
    });
}

bool valid_component(std::string_view name) {
    if (name.empty() || name == "." || name == ".." || name[0] == '.') {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '.';
    });
}

// Project names are free text (the dir's name by default): a path
// component from it, with a hash suffix when anything had to change so two
// names never share a dir.
std::string project_component(const std::string& project) {
    std::string out;
    for (char c : project) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        out += ok ? c : '_';
    }
    if (out.empty() || out[0] == '.' || out != project) {
        if (!out.empty() && out[0] == '.') {
            out[0] = '_';
        }
        out += "-" + base::sha256_hex(project).substr(0, 8);
    }
    return out;
}

std::string tail(std::string_view text) {
    if (text.size() > kTailBytes) {
        text = text.substr(text.size() - kTailBytes);
        size_t nl = text.find('\n');
        if (nl != std::string_view::npos && nl + 1 < text.size()) {
            text = text.substr(nl + 1);
        }
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.remove_suffix(1);
    }
    return std::string(text);
}

// The entries of a directory fd (not `.`/`..`), sorted.
base::Result<std::vector<std::string>> list_names(int dir_fd, const std::string& display) {
    std::vector<std::string> names = TRY(base::list_dir_names(dir_fd, display));
    std::sort(names.begin(), names.end());
    return names;
}

struct CopyOptions {
    std::set<std::string> exclude_top;  // names skipped at the top level
    bool chown = false;                 // give every copy to uid:gid
    uid_t uid = 0;
    gid_t gid = 0;
};

base::Result<void> copy_file_contents(int in, int out, const std::string& display) {
    char buffer[1 << 16];
    for (;;) {
        ssize_t n = ::read(in, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return base::errno_error("reading `{}`", display);
        }
        if (n == 0) {
            return base::ok();
        }
        TRY(base::write_all(out, std::string_view(buffer, static_cast<size_t>(n))));
    }
}

// Copies the entries of `src_fd` into `dst_fd` without following any
// symlink of the source (they are copied as symlinks): regular files,
// directories and symlinks; devices, FIFOs and sockets are skipped. Modes
// keep the permission bits only (no setuid/setgid/sticky).
base::Result<void> copy_contents(int src_fd, int dst_fd, const std::string& display,
                                 const CopyOptions& options, int depth) {
    if (depth > kMaxDepth) {
        return base::invalid_argument("`{}`: more than {} nested directories", display, kMaxDepth);
    }
    auto names = TRY(list_names(src_fd, display));
    for (const auto& name : names) {
        if (depth == 0 && options.exclude_top.count(name) != 0) {
            continue;
        }
        std::string path = display + "/" + name;
        struct stat st {};
        if (::fstatat(src_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            return base::errno_error("inspecting `{}`", path);
        }
        mode_t mode = st.st_mode & 0777;
        if (S_ISDIR(st.st_mode)) {
            if (::mkdirat(dst_fd, name.c_str(), 0700) != 0) {
                return base::errno_error("creating a copy of `{}`", path);
            }
            int in =
                ::openat(src_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (in < 0) {
                return base::errno_error("opening `{}`", path);
            }
            base::UniqueFd in_fd(in);
            int out =
                ::openat(dst_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (out < 0) {
                return base::errno_error("opening the copy of `{}`", path);
            }
            base::UniqueFd out_fd(out);
            TRY(copy_contents(in_fd.get(), out_fd.get(), path, options, depth + 1));
            if (::fchmod(out_fd.get(), mode) != 0) {
                return base::errno_error("setting the mode of the copy of `{}`", path);
            }
        } else if (S_ISREG(st.st_mode)) {
            int in = ::openat(src_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            if (in < 0) {
                return base::errno_error("opening `{}`", path);
            }
            base::UniqueFd in_fd(in);
            int out = ::openat(dst_fd, name.c_str(),
                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (out < 0) {
                return base::errno_error("creating a copy of `{}`", path);
            }
            base::UniqueFd out_fd(out);
            TRY(copy_file_contents(in_fd.get(), out_fd.get(), path));
            if (::fchmod(out_fd.get(), mode) != 0) {
                return base::errno_error("setting the mode of the copy of `{}`", path);
            }
        } else if (S_ISLNK(st.st_mode)) {
            std::string target(4096, '\0');
            ssize_t n = ::readlinkat(src_fd, name.c_str(), target.data(), target.size());
            if (n < 0) {
                return base::errno_error("reading the link `{}`", path);
            }
            target.resize(static_cast<size_t>(n));
            if (::symlinkat(target.c_str(), dst_fd, name.c_str()) != 0) {
                return base::errno_error("creating a copy of the link `{}`", path);
            }
        } else {
            continue;  // devices, FIFOs, sockets: nothing a process needs from a build
        }
        if (options.chown &&
            ::fchownat(dst_fd, name.c_str(), options.uid, options.gid, AT_SYMLINK_NOFOLLOW) != 0) {
            return base::errno_error("giving the copy of `{}` to {}:{}", path, options.uid,
                                     options.gid);
        }
    }
    return base::ok();
}

base::Result<base::UniqueFd> open_dir(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return base::errno_error("opening `{}`", path);
    }
    return base::UniqueFd(fd);
}

base::Result<void> copy_tree(const std::string& from, const std::string& to, mode_t top_mode,
                             const CopyOptions& options) {
    auto src = TRY(open_dir(from));
    if (::mkdir(to.c_str(), 0700) != 0) {
        return base::errno_error("creating `{}`", to);
    }
    auto dst = TRY(open_dir(to));
    TRY(copy_contents(src.get(), dst.get(), from, options, 0));
    if (options.chown && ::fchown(dst.get(), options.uid, options.gid) != 0) {
        return base::errno_error("giving `{}` to {}:{}", to, options.uid, options.gid);
    }
    if (::fchmod(dst.get(), top_mode) != 0) {
        return base::errno_error("setting the mode of `{}`", to);
    }
    return base::ok();
}

// The app dir's fingerprint: every entry's relative path, type, mode, size
// and mtime (a changed source means a rebuild).
base::Result<void> fingerprint(int dir_fd, const std::string& rel, const std::string& display,
                               base::Sha256& hash, int depth) {
    if (depth > kMaxDepth) {
        return base::invalid_argument("`{}`: more than {} nested directories", display, kMaxDepth);
    }
    auto names = TRY(list_names(dir_fd, display));
    for (const auto& name : names) {
        if (depth == 0 && (name == ".git" || name == ".locald")) {
            continue;
        }
        struct stat st {};
        if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            return base::errno_error("inspecting `{}/{}`", display, name);
        }
        std::string path = rel.empty() ? name : rel + "/" + name;
        hash.update(fmt::format("{}\t{}\t{}\t{}.{}\n", path, static_cast<unsigned>(st.st_mode),
                                static_cast<long long>(st.st_size),
                                static_cast<long long>(st.st_mtim.tv_sec),
                                static_cast<long>(st.st_mtim.tv_nsec)));
        if (S_ISDIR(st.st_mode)) {
            int fd =
                ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                return base::errno_error("opening `{}/{}`", display, name);
            }
            base::UniqueFd sub(fd);
            TRY(fingerprint(sub.get(), path, display + "/" + name, hash, depth + 1));
        }
    }
    return base::ok();
}

// HOME of `uid` in the rootfs's /etc/passwd ("" when absent).
std::string home_of(int rootfs_fd, uint32_t uid) {
    auto passwd = read_file_in_root(rootfs_fd, "/etc/passwd");
    if (!passwd) {
        return "";
    }
    size_t start = 0;
    const std::string& text = *passwd;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) {
            end = text.size();
        }
        std::vector<std::string> fields;
        std::string line = text.substr(start, end - start);
        size_t from = 0;
        for (;;) {
            size_t colon = line.find(':', from);
            fields.push_back(line.substr(from, colon - from));
            if (colon == std::string::npos) {
                break;
            }
            from = colon + 1;
        }
        if (fields.size() >= 6 && fields[2] == std::to_string(uid)) {
            return fields[5];
        }
        start = end + 1;
    }
    return "";
}

// Points fds 1 and 2 at a file while a bin/build runs (the runner must be
// single-threaded anyway), so the output can be relayed and its tail quoted.
class CaptureOutput {
public:
    static base::Result<CaptureOutput> start(const std::string& path) {
        std::fflush(stdout);
        std::fflush(stderr);
        for (int fd : {1, 2}) {
            if (::fcntl(fd, F_GETFD) < 0) {
                int null_fd = ::open("/dev/null", O_RDWR);
                if (null_fd >= 0 && null_fd != fd) {
                    ::dup2(null_fd, fd);
                    ::close(null_fd);
                }
            }
        }
        CaptureOutput capture;
        capture.m_saved1 = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
        capture.m_saved2 = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
        int out = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0 || capture.m_saved1 < 0 || capture.m_saved2 < 0) {
            return base::errno_error("capturing the build output in `{}`", path);
        }
        ::dup2(out, 1);
        ::dup2(out, 2);
        ::close(out);
        capture.m_active = true;
        return capture;
    }
    CaptureOutput() = default;
    CaptureOutput(CaptureOutput&& other) noexcept { *this = std::move(other); }
    CaptureOutput& operator=(CaptureOutput&& other) noexcept {
        std::swap(m_saved1, other.m_saved1);
        std::swap(m_saved2, other.m_saved2);
        std::swap(m_active, other.m_active);
        return *this;
    }
    ~CaptureOutput() { stop(); }
    void stop() {
        if (!m_active) {
            return;
        }
        std::fflush(stdout);
        std::fflush(stderr);
        ::dup2(m_saved1, 1);
        ::dup2(m_saved2, 2);
        ::close(m_saved1);
        ::close(m_saved2);
        m_active = false;
    }

private:
    int m_saved1 = -1;
    int m_saved2 = -1;
    bool m_active = false;
};

void progress(const ProvisionRequest& request, std::string_view phase, std::string_view message) {
    if (request.on_progress) {
        request.on_progress(phase, message);
    }
}

void relay_lines(const ProvisionRequest& request, std::string_view phase, std::string_view text) {
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        progress(request, phase, text.substr(start, end - start));
        start = end + 1;
    }
}

base::Json to_json(const ProvisionResult& result, const ProvisionRequest& request) {
    base::Json group = base::Json::array();
    for (const auto& member : result.group) {
        group.push_back(member);
    }
    base::Json out = base::Json::object();
    out.set("format", kProvisionFormat);
    out.set("project", request.project);
    out.set("service", request.service);
    out.set("builder", request.builder);
    out.set("builder_digest", result.builder_digest);
    out.set("key", result.key);
    out.set("group", std::move(group));
    return out;
}

// The builder: resolved in the store (pulled when missing) and flattened
// once per manifest digest.
struct Builder {
    oci::ResolvedImage image;
    std::string rootfs;
};

base::Result<Builder> ensure_builder(const ProvisionRequest& request) {
    auto ref = TRY(
        oci::Reference::parse(request.builder)
            .context(fmt::format("service {}: builder `{}`", request.service, request.builder)));
    auto store = TRY(oci::ContentStore::open_default().context("opening the local image store"));
    auto image = oci::resolve_image(store, ref);
    if (!image && image.error().kind() == base::ErrorKind::NotFound && !request.offline) {
        progress(request, "builder", fmt::format("pulling {}", ref.str()));
        oci::PullOptions pull;
        pull.reference = request.builder;
        TRY(oci::pull(store, pull)
                .context(fmt::format("pulling the builder `{}`", request.builder)));
        image = oci::resolve_image(store, ref);
    }
    if (!image) {
        return base::Error(image.error())
            .context(fmt::format("service {}: builder `{}` is not in the local store{}",
                                 request.service, request.builder,
                                 request.offline ? " (offline: not pulled)" : ""));
    }
    Builder builder;
    builder.image = image.release_value();
    const std::string dir =
        request.data_dir + "/builds/builders/" + builder.image.manifest_descriptor.digest.hex();
    builder.rootfs = dir + "/rootfs";
    struct stat st {};
    if (::stat(builder.rootfs.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        return builder;
    }
    TRY(base::mkdir_p(dir, 0700));
    progress(request, "builder",
             fmt::format("unpacking {} ({})", ref.str(),
                         builder.image.manifest_descriptor.digest.short_str()));
    layers::UnpackOptions options;
    auto report = layers::unpack_image(store, builder.image, builder.rootfs, options);
    if (!report) {
        // Another provision of the same builder may have won the rename.
        if (::stat(builder.rootfs.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
            return builder;
        }
        return base::Error(report.error())
            .context(fmt::format("unpacking the builder `{}`", request.builder));
    }
    for (const auto& warning : report->warnings) {
        if (request.warn) {
            request.warn(warning);
        }
    }
    return builder;
}

// The launcher creates a missing file mount target (/etc/hosts,
// /etc/resolv.conf, /etc/hostname) in the rootfs with O_EXCL: two provisions
// of one builder starting at once (two build services, `up`) raced there —
// the loser failed with "creating the mount target `/etc/hosts`: File
// exists". They are created here, once, under a lock per builder, before any
// phase runs (as the container's root: the rootfs's /etc belongs to it;
// confined to the rootfs — the builder is attacker-controlled).
base::Result<void> prepare_mount_targets(const layers::OwnershipPlan& plan,
                                         const std::string& rootfs) {
    static const char* const kFiles[] = {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"};
    auto present = [&]() -> base::Result<bool> {
        auto root = TRY(open_dir(rootfs));
        for (const char* file : kFiles) {
            auto found = base::open_in_root(root.get(), file, O_PATH);
            if (!found) {
                if (found.error().errno_value() == ENOENT) {
                    return false;
                }
                return base::Error(found.error())
                    .context(fmt::format("builder rootfs `{}`", rootfs));
            }
        }
        return true;
    };
    if (TRY(present())) {
        return base::ok();
    }
    const std::string lock_path = rootfs + ".targets.lock";
    base::UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock) {
        return base::errno_error("opening `{}`", lock_path);
    }
    while (::flock(lock.get(), LOCK_EX) != 0) {
        if (errno != EINTR) {
            return base::errno_error("locking `{}`", lock_path);
        }
    }
    if (TRY(present())) {
        return base::ok();  // another provision made them meanwhile
    }
    return layers::run_as_container_root(plan, [&]() -> base::Result<void> {
        auto root = TRY(open_dir(rootfs));
        TRY(base::mkdir_all_in_root(root.get(), "/etc", 0755));
        for (const char* file : kFiles) {
            auto parent = TRY(base::open_parent_in_root(root.get(), file, O_RDONLY | O_DIRECTORY));
            base::UniqueFd created(::openat(parent.dir.get(), parent.leaf.c_str(),
                                            O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644));
            if (!created) {
                return base::errno_error("creating `{}` in the builder rootfs `{}`", file, rootfs);
            }
        }
        return base::ok();
    });
}

}  // namespace

std::string dump_dir(const std::string& data_dir, const std::string& project,
                     const std::string& service) {
    return data_dir + "/provisioned/" + project_component(project) + "/" + service;
}

base::Result<ProvisionResult> read_provisioned(const std::string& data_dir,
                                               const std::string& project,
                                               const std::string& service) {
    ProvisionResult result;
    result.dump_dir = dump_dir(data_dir, project, service);
    result.layers_dir = result.dump_dir + "/layers";
    result.app_dir = result.dump_dir + "/app";
    const std::string file = result.dump_dir + "/provision.json";
    auto text = base::read_file(file, 1 << 20);
    if (!text) {
        if (text.error().kind() == base::ErrorKind::NotFound) {
            return base::not_found("service {} is not provisioned (no `{}`)", service, file);
        }
        return text.release_error();
    }
    auto json = TRY(base::Json::parse(*text).context(fmt::format("reading `{}`", file)));
    auto format = TRY(json.get_int("format").context(fmt::format("reading `{}`", file)));
    if (format != kProvisionFormat) {
        return base::not_found("`{}` has format {} (this locald writes {}): provision again", file,
                               format, kProvisionFormat);
    }
    result.key = TRY(json.get_string("key").context(fmt::format("reading `{}`", file)));
    result.builder_digest =
        TRY(json.get_string("builder_digest").context(fmt::format("reading `{}`", file)));
    const base::Json* group =
        TRY(json.get_array("group").context(fmt::format("reading `{}`", file)));
    for (const auto& member : group->as_array()) {
        if (!member.is_string()) {
            return base::invalid_argument("`{}`: `group` must hold strings", file);
        }
        result.group.push_back(member.as_string());
    }
    result.reused = true;
    return result;
}

base::Result<ProvisionResult> provision(const ProvisionRequest& request) {
    if (::geteuid() == 0) {
        // As root the launcher maps the container's root to a subordinate id
        // (or nobody), which cannot open the builder rootfs and work dirs under
        // root's private 0700 data dir: refuse plainly instead of EACCES.
        return base::unsupported(
            "service {}: provisioning as root is not supported: run locald as a regular user "
            "(with a subordinate id range in /etc/subuid and /etc/subgid)",
            request.service);
    }
    if (!valid_component(request.service)) {
        return base::invalid_argument("provision: service `{}` must be a plain name",
                                      request.service);
    }
    for (const auto& [name, value] : request.env) {
        if (!valid_env_name(name)) {
            return base::invalid_argument("service {}: build.env key `{}` is not a variable name",
                                          request.service, name);
        }
    }
    // One provision of a service at a time (`locald provision` beside the
    // daemon's run): the second waits, then finds the dump current.
    const std::string build_dir =
        request.data_dir + "/builds/" + project_component(request.project) + "/" + request.service;
    TRY(base::mkdir_p(build_dir, 0700));
    int lock_fd = ::open((build_dir + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0) {
        return base::errno_error("opening `{}.lock`", build_dir);
    }
    base::UniqueFd lock(lock_fd);
    while (::flock(lock.get(), LOCK_EX) != 0) {
        if (errno != EINTR) {
            return base::errno_error("locking `{}.lock`", build_dir);
        }
    }
    auto plan = TRY(layers::plan_ownership(layers::RootlessMode::Auto));
    Builder builder = TRY(ensure_builder(request));
    TRY(prepare_mount_targets(plan, builder.rootfs));
    const auto& config = builder.image.config.config;
    auto info = TRY(
        parse_builder_config(config.labels, config.env)
            .context(fmt::format("service {}: builder `{}`", request.service, request.builder)));

    // The provision key.
    base::Sha256 key_hash;
    key_hash.update(fmt::format("locald-provision {}\n{}\n", kProvisionFormat,
                                builder.image.manifest_descriptor.digest.str()));
    for (const auto& bp : request.buildpacks) {
        key_hash.update("bp " + bp + "\n");
    }
    for (const auto& [name, value] : request.env) {
        key_hash.update(fmt::format("env {}={}\n", name, value));
    }
    {
        auto app = TRY(open_dir(request.app_dir));
        TRY(fingerprint(app.get(), "", request.app_dir, key_hash, 0));
    }
    ProvisionResult result;
    result.builder_digest = builder.image.manifest_descriptor.digest.str();
    result.key = key_hash.hex_digest();
    result.dump_dir = dump_dir(request.data_dir, request.project, request.service);
    result.layers_dir = result.dump_dir + "/layers";
    result.app_dir = result.dump_dir + "/app";
    // Without a subordinate range only the container's root exists: the
    // build then runs as it (still not host root).
    bool single = plan.user_namespace ? plan.mapping.single() : !plan.privileged;
    result.builder_rootfs = builder.rootfs;
    result.builder_env = config.env;
    result.uid = single ? 0 : info.uid;
    result.gid = single ? 0 : info.gid;
    if (!request.force) {
        auto previous = read_provisioned(request.data_dir, request.project, request.service);
        if (previous && previous->key == result.key) {
            progress(request, "reuse",
                     fmt::format("{} is provisioned and unchanged", request.service));
            previous->builder_rootfs = result.builder_rootfs;
            previous->builder_env = result.builder_env;
            previous->uid = result.uid;
            previous->gid = result.gid;
            return previous;
        }
    }

    // The build dirs: fresh workspace and layers; the cache is kept.
    for (const char* name : {"workspace", "layers", "platform", "scratch"}) {
        TRY(layers::remove_tree(plan, build_dir + "/" + name)
                .context(fmt::format("removing the previous build of {}", request.service)));
    }
    const std::string workspace = build_dir + "/workspace";
    const std::string layers_dir = build_dir + "/layers";
    const std::string platform = build_dir + "/platform";
    const std::string cache = build_dir + "/cache";
    const std::string scratch = build_dir + "/scratch";
    uint32_t uid = result.uid;
    uint32_t gid = result.gid;
    if (single && request.warn) {
        request.warn(fmt::format(
            "no subordinate id range: the buildpacks run as the container's root instead of "
            "{}:{}",
            info.uid, info.gid));
    }
    // The layers and cache dirs are written by the host side (group.toml,
    // <layers>/<id>, metadata.toml) and by the build user: 0777 inside the
    // private 0700 build dir.
    for (const auto& dir : {layers_dir, cache, scratch}) {
        if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
            return base::errno_error("creating `{}`", dir);
        }
        ::chmod(dir.c_str(), 0777);
    }
    TRY(base::mkdir_p(platform + "/env", 0755));
    for (const auto& [name, value] : request.env) {
        TRY(base::atomic_write_file(platform + "/env/" + name, value, 0644));
    }
    progress(request, "builder", fmt::format("copying the app to the workspace"));
    TRY(layers::run_as_container_root(plan,
                                      [&]() -> base::Result<void> {
                                          CopyOptions copy;
                                          copy.exclude_top = {".git", ".locald"};
                                          copy.chown = plan.user_namespace || plan.privileged;
                                          copy.uid = uid;
                                          copy.gid = gid;
                                          return copy_tree(request.app_dir, workspace, 0755, copy);
                                      })
            .context(fmt::format("service {}: copying the app dir `{}`", request.service,
                                 request.app_dir)));

    // Detect.
    std::string order_path;
    if (!request.buildpacks.empty()) {
        std::string order = "[[order]]\n";
        for (const auto& spec : request.buildpacks) {
            std::string id = spec;
            std::string version;
            if (size_t at = spec.find('@'); at != std::string::npos) {
                id = spec.substr(0, at);
                version = spec.substr(at + 1);
            }
            if (version.empty()) {
                for (const auto& [bp_id, bp_version] : info.buildpacks) {
                    if (bp_id == id) {
                        version = bp_version;
                        break;
                    }
                }
            }
            if (version.empty()) {
                return base::invalid_argument(
                    "service {}: buildpack `{}` is not in the builder `{}` (give `id@version`)",
                    request.service, spec, request.builder);
            }
            TRY(validate_id(id));
            TRY(validate_version(version));
            order += fmt::format("[[order.group]]\nid = \"{}\"\nversion = \"{}\"\n", id, version);
        }
        order_path = scratch + "/order.toml";
        TRY(base::atomic_write_file(order_path, order, 0644));
    }
    auto rootfs_fd = TRY(open_dir(builder.rootfs));
    std::vector<std::string> image_env = config.env;
    std::string home = home_of(rootfs_fd.get(), uid);
    std::string os_release;
    if (auto text = read_file_in_root(rootfs_fd.get(), "/etc/os-release")) {
        os_release = *text;
    } else if (auto usr = read_file_in_root(rootfs_fd.get(), "/usr/lib/os-release")) {
        os_release = *usr;
    }
    const auto& platform_info = builder.image.config.platform;
    Target target = run_image_target(platform_info.os, platform_info.architecture,
                                     platform_info.variant, config.labels, os_release);
    DetectPhase detect_phase;
    detect_phase.order_path = order_path;
    detect_phase.run.rootfs = builder.rootfs;
    detect_phase.run.image_env = image_env;
    detect_phase.run.uid = uid;
    detect_phase.run.gid = gid;
    detect_phase.run.app_dir = workspace;
    detect_phase.run.layers_dir = layers_dir;
    detect_phase.run.platform_dir = platform;
    detect_phase.run.cache_dir = cache;
    detect_phase.run.run_target = target;
    detect_phase.run.scratch_dir = scratch;
    detect_phase.run.launch.warn = [&](const std::string& message) {
        if (request.warn) {
            request.warn(message);
        }
    };
    progress(request, "detect", "detecting");
    auto detected = TRY(run_detect_phase(detect_phase, {.run_target = target})
                            .context(fmt::format("service {}: detect", request.service)));
    for (const auto& [bp, run] : detected.runs) {
        relay_lines(request, "detect",
                    fmt::format("{}: {}", bp,
                                run.code == 0     ? "pass"
                                : run.code == 100 ? "fail"
                                                  : "error"));
    }
    if (detected.exit_code != 0) {
        std::string why;
        for (const auto& [bp, run] : detected.runs) {
            if (run.code == 0) {
                continue;
            }
            why += fmt::format("\n  {} exited {}{}", bp, run.code,
                               run.output.empty() ? "" : ":\n" + tail(run.output));
        }
        return base::failed_precondition(
            "service {}: detect: no buildpack group passed (exit {}){}", request.service,
            detected.exit_code, why.empty() ? "" : why);
    }
    std::string group_text;
    BuildRequest build;
    for (const auto& member : detected.resolution.group) {
        result.group.push_back(member.id + "@" + member.version);
        group_text += (group_text.empty() ? "" : ", ") + member.id + "@" + member.version;
        auto bp = TRY(load_buildpack(rootfs_fd.get(), member.id, member.version));
        build.group.push_back(
            {member.id, member.version, member.api, member.homepage, bp.clear_env, bp.dir});
    }
    progress(request, "detect", "group: " + group_text);
    for (const auto& entry : detected.resolution.plan) {
        BuildPlanEntry plan_entry;
        for (const auto& provider : entry.providers) {
            plan_entry.providers.push_back(provider.id);
        }
        for (const auto& require : entry.requirements) {
            plan_entry.requirements.push_back({require.name, require.metadata_toml});
        }
        build.plan.push_back(std::move(plan_entry));
    }

    // Build.
    build.layers_dir = layers_dir;
    build.platform_dir = platform;
    struct stat st {};
    if (::fstatat(rootfs_fd.get(), "cnb/build-config", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(st.st_mode)) {
        build.build_config_dir = builder.rootfs + "/cnb/build-config";
    }
    build.scratch_dir = scratch;
    build.base_env = image_env;
    if (!home.empty()) {
        build.base_env.push_back("HOME=" + home);
    }
    build.target = {target.os.empty() ? "linux" : target.os, target.arch, target.variant,
                    target.distros.empty() ? "" : target.distros[0].name,
                    target.distros.empty() ? "" : target.distros[0].version};
    build.warn = [&](const std::string& message) {
        if (request.warn) {
            request.warn(message);
        }
    };
    BuildContainer container;
    container.rootfs.path = builder.rootfs;
    container.user = fmt::format("{}:{}", uid, gid);
    container.app_dir = workspace;
    container.layers_dir = layers_dir;
    container.cache_dir = cache;
    container.platform_dir = platform;
    container.warn = build.warn;
    BuildpackRunner real = launcher_runner(container);
    std::map<std::string, std::string> outputs;
    const std::string output_file = scratch + "/build-output";
    auto built = run_build(build, [&](const BuildpackInvocation& invocation) -> base::Result<int> {
        progress(request, "build", "running " + invocation.buildpack);
        base::Result<int> status = 0;
        {
            auto capture = TRY(CaptureOutput::start(output_file));
            status = real(invocation);
        }
        auto text = base::read_file(output_file, 16 << 20);
        if (text) {
            relay_lines(request, "build", *text);
            outputs[invocation.buildpack] = *text;
        }
        return status;
    });
    if (!built) {
        return base::Error(built.error())
            .context(fmt::format("service {}: build", request.service));
    }
    if (built->failed) {
        std::string out;
        for (const auto& [bp, text] : outputs) {
            if (bp.rfind(built->failed_buildpack, 0) == 0 ||
                built->failed_buildpack.rfind(bp, 0) == 0) {
                out = text;
            }
        }
        return base::failed_precondition(
            "service {}: build: buildpack {} exited {}{}", request.service, built->failed_buildpack,
            built->failed_status, out.empty() ? "" : ":\n" + tail(out));
    }

    // Dump: launch layers, metadata.toml and the app, as the container's
    // root (the build user's files are subordinate ids), into a temp dir
    // renamed over the old dump.
    progress(request, "dump", "copying the launch layers and the app to " + result.dump_dir);
    const std::string parent =
        request.data_dir + "/provisioned/" + project_component(request.project);
    TRY(base::mkdir_p(parent, 0700));
    const std::string temp = fmt::format("{}/.tmp-{}-{}", parent, request.service, ::getpid());
    (void)base::remove_all(temp);
    const std::string json = to_json(result, request).dump(true) + "\n";
    TRY(layers::run_as_container_root(plan, [&]() -> base::Result<void> {
            CopyOptions copy;  // everything becomes the invoking user's
            if (::mkdir(temp.c_str(), 0700) != 0) {
                return base::errno_error("creating `{}`", temp);
            }
            const std::string dump_layers = temp + "/layers";
            TRY(base::mkdir_p(dump_layers + "/config", 0755));
            // Everything under <layers> was writable by the buildpacks (a
            // `<layers>/<id>` may have become a symlink): read it confined
            // to the layers dir, never following a link out of it.
            auto layers_root = TRY(open_dir(layers_dir));
            auto read_in_layers = [&](const std::string& path) -> base::Result<std::string> {
                auto fd = TRY(base::open_in_root(layers_root.get(), path,
                                                 O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
                struct stat file_st {};
                if (::fstat(fd.get(), &file_st) != 0 || !S_ISREG(file_st.st_mode)) {
                    return base::invalid_argument("`{}/{}` is not a regular file", layers_dir,
                                                  path);
                }
                return base::read_all(fd.get(), 16 << 20);
            };
            auto meta = TRY(read_in_layers("config/metadata.toml"));
            TRY(base::write_file(dump_layers + "/config/metadata.toml", meta, 0644));
            for (const auto& bp : built->buildpacks) {
                const std::string esc = escape_id(bp.id);
                bool any = false;
                for (const auto& layer : bp.layers) {
                    if (!layer.types.launch) {
                        continue;
                    }
                    if (!any) {
                        TRY(base::mkdir_p(dump_layers + "/" + esc, 0755));
                        any = true;
                    }
                    const std::string rel = esc + "/" + layer.name;
                    const std::string to = dump_layers + "/" + rel;
                    auto toml = TRY(read_in_layers(rel + ".toml"));
                    TRY(base::write_file(to + ".toml", toml, 0644));
                    auto dir = base::open_in_root(layers_root.get(), rel,
                                                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                    if (!dir) {
                        continue;  // a launch layer without a directory: only its toml
                    }
                    struct stat layer_st {};
                    if (::fstat(dir->get(), &layer_st) != 0) {
                        return base::errno_error("inspecting `{}/{}`", layers_dir, rel);
                    }
                    if (::mkdir(to.c_str(), 0700) != 0) {
                        return base::errno_error("creating `{}`", to);
                    }
                    auto out = TRY(open_dir(to));
                    TRY(copy_contents(dir->get(), out.get(), layers_dir + "/" + rel, copy, 0));
                    if (::fchmod(out.get(), layer_st.st_mode & 0755) != 0) {
                        return base::errno_error("setting the mode of `{}`", to);
                    }
                }
            }
            TRY(copy_tree(workspace, temp + "/app", 0755, copy));
            TRY(base::write_file(temp + "/provision.json", json, 0644));
            // Swap atomically when a dump exists (a reader sees the old or
            // the new one, never none), else a plain rename.
            if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, result.dump_dir.c_str(),
                            RENAME_EXCHANGE) == 0) {
                (void)base::remove_all(temp);
            } else if (errno != ENOENT) {
                return base::errno_error("swapping `{}` with `{}`", temp, result.dump_dir);
            } else if (::rename(temp.c_str(), result.dump_dir.c_str()) != 0) {
                return base::errno_error("renaming `{}` to `{}`", temp, result.dump_dir);
            }
            return base::ok();
        }).context(fmt::format("service {}: dump", request.service)));
    return result;
}

base::Result<LaunchPlan> dump_launch(const ProvisionResult& dump, const std::string& process_type,
                                     const std::vector<std::string>& user_args,
                                     const std::vector<std::string>& base_env) {
    LaunchRequest launch;
    launch.layers_dir = dump.layers_dir;
    launch.layers = LayerSelection::LaunchLayersOnly;
    launch.process_type = process_type;
    launch.user_args = user_args;
    launch.base_env = base_env;
    launch.host_mode = true;
    launch.host_app_dir = dump.app_dir;
    return compute_launch(launch);
}

base::Result<LaunchPlan> container_launch(const ProvisionResult& dump,
                                          const std::string& process_type,
                                          const std::vector<std::string>& user_args) {
    LaunchRequest launch;
    launch.layers_dir = dump.layers_dir;
    launch.layers = LayerSelection::LaunchLayersOnly;
    launch.process_type = process_type;
    launch.user_args = user_args;
    launch.base_env = dump.builder_env;
    launch.layers_path = "/layers";
    launch.app_path = "/workspace";
    return compute_launch(launch);
}

}  // namespace locald::cnb
