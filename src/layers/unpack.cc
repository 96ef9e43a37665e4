#include "layers/unpack.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "base/sys.h"
#include "base/temp_dir.h"
#include "layers/internal/fs_util.h"
#include "layers/pipelined_apply.h"
#include "oci/media_types.h"
#include "oci/reference.h"

namespace locald::layers {

using base::Result;

base::Result<OwnershipPlan> plan_ownership(RootlessMode rootless) {
    OwnershipPlan plan;
    if (geteuid() == 0) {
        plan.privileged = true;
        return plan;
    }
    if (rootless != RootlessMode::SingleId) {
        auto mapping = TRY(base::container_mapping());
        if (!mapping.single()) {
            plan.user_namespace = true;
            plan.mapping = std::move(mapping);
            return plan;
        }
        if (rootless == RootlessMode::UserNamespace) {
            return base::failed_precondition(
                "no subordinate uid/gid range for this user in /etc/subuid and /etc/subgid "
                "(needed to keep the image's file owners)");
        }
    }
    plan.mode = OwnershipMode::RootlessXattr;
    plan.warning =
        "no subordinate id range (/etc/subuid, /etc/subgid): every file belongs to you; the "
        "image's owners are kept only in the user.rootlesscontainers xattr";
    return plan;
}

base::Result<void> run_as_container_root(const OwnershipPlan& plan,
                                         const std::function<base::Result<void>()>& fn) {
    if (!plan.user_namespace) {
        return fn();
    }
    // The child dies with the process that waits for it: armed here, after
    // becoming the namespace's root (setresuid clears the setting), then the
    // parent checked (one gone before the arming sent nothing). Otherwise a
    // killed caller left it applying or removing, or blocked for good.
    const pid_t parent = getpid();
    int status = TRY(base::run_in_user_namespace(plan.mapping, [&]() -> Result<int> {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            return base::cancelled("the process that started this user-namespace child exited");
        }
        TRY(fn());
        return 0;
    }));
    if (status != 0) {
        return base::internal_error("the user-namespace helper exited with status {}", status);
    }
    return base::ok();
}

base::Result<void> remove_tree(const OwnershipPlan& plan, const std::string& path) {
    return run_as_container_root(plan, [&]() { return base::remove_all(path); });
}

base::Result<std::vector<LayerSource>> layer_sources(const oci::ContentStore& store,
                                                     const oci::ResolvedImage& image) {
    const auto& layers = image.manifest.layers;
    const auto& diff_ids = image.config.diff_ids;
    if (layers.size() != diff_ids.size()) {
        return base::data_loss("image `{}`: {} layers but {} DiffIDs in the config",
                               image.manifest.digest.str(), layers.size(), diff_ids.size());
    }
    std::vector<LayerSource> out;
    for (size_t i = 0; i < layers.size(); i++) {
        if (!oci::media_types::is_layer(layers[i].media_type)) {
            return base::unsupported("layer {} of `{}` has media type `{}`", i,
                                     image.manifest.digest.str(), layers[i].media_type);
        }
        oci::Digest digest = layers[i].digest;
        const oci::ContentStore* s = &store;
        out.push_back(LayerSource{digest.str(), diff_ids[i].str(),
                                  [s, digest]() { return s->open_blob(digest); }});
    }
    return out;
}

namespace {

// Where a flattened unpack goes: a temporary sibling of the target, renamed
// over it (or over an empty directory) only when complete.
struct UnpackTarget {
    std::string clean;  // target without trailing slashes
    std::string parent;
    std::string name;
    bool replace_empty = false;
};

base::Result<UnpackTarget> check_unpack_target(const std::string& target) {
    UnpackTarget out;
    out.clean = target;
    while (out.clean.size() > 1 && out.clean.back() == '/') {
        out.clean.pop_back();
    }
    auto slash = out.clean.rfind('/');
    out.parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : out.clean.substr(0, slash));
    out.name = slash == std::string::npos ? out.clean : out.clean.substr(slash + 1);
    if (out.name.empty() || out.name == "." || out.name == "..") {
        return base::invalid_argument("`{}` is not a usable target directory", target);
    }
    struct stat st;
    if (lstat(out.clean.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            return base::already_exists("`{}` exists and is not a directory", target);
        }
        auto fd = TRY(base::open_file(out.clean, O_RDONLY | O_DIRECTORY));
        if (!TRY(internal::list_dir(fd.get())).empty()) {
            return base::already_exists("`{}` is not empty", target);
        }
        out.replace_empty = true;
    }
    return out;
}

base::Result<void> commit_unpack_target(const UnpackTarget& target, base::TempDir& temp) {
    // Traversable like any root filesystem: containers' non-root users need it.
    if (chmod(temp.path().c_str(), 0755) != 0) {
        return base::errno_error("chmod `{}`", temp.path());
    }
    if (target.replace_empty && rmdir(target.clean.c_str()) != 0) {
        return base::errno_error("replacing the empty directory `{}`", target.clean);
    }
    TRY(base::rename_at(AT_FDCWD, temp.path(), AT_FDCWD, target.clean, RENAME_NOREPLACE));
    (void)temp.release();
    return base::ok();
}

}  // namespace

ApplyOptions flatten_apply_options(const LayerSource& source, const OwnershipPlan& plan,
                                   const ApplyLimits& limits) {
    ApplyOptions apply;
    apply.layer_digest = source.blob_digest;
    apply.expected_diff_id = source.diff_id;
    apply.whiteouts = WhiteoutMode::Flatten;
    apply.ownership = plan.mode;
    apply.create_devices = plan.privileged;
    apply.limits = limits;
    apply.hash_compressed = false;  // verified by the store on ingest
    return apply;
}

base::Result<UnpackReport> unpack_image(const oci::ContentStore& store,
                                        const oci::ResolvedImage& image, const std::string& target,
                                        const UnpackOptions& options) {
    auto sources = TRY(layer_sources(store, image));
    OwnershipPlan plan = TRY(plan_ownership(options.rootless));
    UnpackReport report;
    report.user_namespace = plan.user_namespace;
    if (!plan.warning.empty()) {
        report.warnings.push_back(plan.warning);
    }
    auto where = TRY(check_unpack_target(target));
    const std::string& parent = where.parent;
    const std::string& name = where.name;
    auto temp = TRY(base::TempDir::create_in(parent, "." + name + ".unpack"));
    std::string rootfs = temp.path();
    std::vector<ApplyStats> all_stats;
    // Stats travel back from the namespace child through a small file.
    std::string stats_file = rootfs + ".stats";
    auto applied = run_as_container_root(plan, [&]() -> Result<void> {
        auto root = TRY(base::open_file(rootfs, O_RDONLY | O_DIRECTORY));
        auto run = [&]() -> Result<void> {
            std::string summary;
            for (const auto& source : sources) {
                auto blob = TRY(source.open());
                auto stats = TRY(apply_layer(root.get(), blob.get(),
                                             flatten_apply_options(source, plan, options.limits)));
                summary += fmt::format("{} {}\n", stats.compressed_bytes, stats.uncompressed_bytes);
                for (const auto& w : stats.warnings) {
                    summary += "W " + w + "\n";
                }
            }
            return base::write_file(stats_file, summary, 0600);
        };
        auto result = run();
        if (!result) {
            // Inside the namespace: the only place these files can be removed.
            for (const auto& child : internal::list_dir(root.get()).value_or({})) {
                (void)base::remove_all_at(root.get(), child);
            }
        }
        return result;
    });
    std::string summary = base::read_file(stats_file, 1 << 20).value_or("");
    (void)base::unlink_path(stats_file);
    if (!applied) {
        return applied.release_error().context(
            fmt::format("unpacking `{}`", image.manifest_descriptor.digest.str()));
    }
    size_t pos = 0;
    while (pos < summary.size()) {
        size_t end = summary.find('\n', pos);
        std::string line = summary.substr(pos, end - pos);
        pos = end == std::string::npos ? summary.size() : end + 1;
        if (line.starts_with("W ")) {
            report.warnings.push_back(line.substr(2));
        } else if (!line.empty()) {
            unsigned long long c = 0;
            unsigned long long u = 0;
            if (std::sscanf(line.c_str(), "%llu %llu", &c, &u) == 2) {
                report.compressed_bytes += c;
                report.uncompressed_bytes += u;
                report.layers++;
            }
        }
    }
    TRY(commit_unpack_target(where, temp));
    return report;
}

base::Result<UnpackReport> pull_and_unpack_image(const oci::ContentStore& store,
                                                 const std::string& target,
                                                 const UnpackOptions& options,
                                                 const PullWithCallback& pull) {
    OwnershipPlan plan = TRY(plan_ownership(options.rootless));
    UnpackReport report;
    report.user_namespace = plan.user_namespace;
    if (!plan.warning.empty()) {
        report.warnings.push_back(plan.warning);
    }
    auto where = TRY(check_unpack_target(target));
    auto temp = TRY(base::TempDir::create_in(where.parent, "." + where.name + ".unpack"));
    PipelinedApply::Options apply;
    apply.mode = PipelinedApply::Mode::Flatten;
    apply.flatten_root = temp.path();
    apply.limits = options.limits;
    // Forked before the pull's threads exist.
    auto pipeline = TRY(PipelinedApply::start(store, plan, apply));
    auto pulled = pull([&](const oci::ImageManifest& manifest, const oci::Descriptor& blob) {
        pipeline.on_blob(manifest, blob);
    });
    auto applied = pipeline.finish();
    if (!pulled || !applied) {
        // Files of subordinate owners: removed as the container root.
        (void)remove_tree(plan, temp.path());
        if (!pulled) {
            return pulled.release_error();
        }
        return applied.release_error().context(fmt::format("unpacking into `{}`", target));
    }
    report.layers = pipeline.layers();
    report.uncompressed_bytes = pipeline.uncompressed_bytes();
    for (auto& w : pipeline.warnings()) {
        report.warnings.push_back(std::move(w));
    }
    TRY(commit_unpack_target(where, temp));
    return report;
}

std::vector<std::string> image_chain_ids(const oci::ResolvedImage& image) {
    std::vector<std::string> diff_ids;
    for (const auto& d : image.config.diff_ids) {
        diff_ids.push_back(d.str());
    }
    return chain_ids(diff_ids);
}

base::Result<std::vector<std::string>> prepare_snapshots(
    const oci::ContentStore& store, const oci::ResolvedImage& image, SnapshotStore& snapshots,
    const OwnershipPlan& plan, std::vector<std::string>* warnings, SnapshotLease* lease) {
    auto sources = TRY(layer_sources(store, image));
    std::vector<std::string> diff_ids;
    for (const auto& s : sources) {
        if (!is_valid_sha256_digest(s.diff_id)) {
            return base::data_loss("image `{}`: invalid DiffID `{}`", image.manifest.digest.str(),
                                   s.diff_id);
        }
        diff_ids.push_back(s.diff_id);
    }
    auto chains = chain_ids(diff_ids);
    // Taken here, in this process, so it outlives the namespace child.
    auto claim = TRY(snapshots.lease(chains));
    SnapshotApplyOptions options;
    options.ownership = plan.mode;
    options.create_devices = plan.privileged;
    options.trusted_overlay_xattrs = plan.privileged;
    TRY(run_as_container_root(plan, [&]() -> Result<void> {
        TRY(snapshots.ensure(sources, options, nullptr));
        return base::ok();
    }));
    if (warnings && !plan.warning.empty()) {
        warnings->push_back(plan.warning);
    }
    std::vector<std::string> paths;
    for (const auto& chain : chains) {
        paths.push_back(snapshots.fs_path(chain));
    }
    if (lease) {
        *lease = std::move(claim);
    }
    return paths;
}

base::Result<RootfsPlan> build_rootfs(const std::vector<std::string>& snapshots,
                                      const std::string& container_dir, bool overlay,
                                      const OwnershipPlan& plan) {
    RootfsPlan out;
    if (overlay) {
        out.kind = RootfsPlan::Kind::Overlay;
        std::string upper = container_dir + "/upper";
        std::string work = container_dir + "/work";
        // Created by the container root so the mount inside the namespace
        // can use them.
        TRY(run_as_container_root(plan, [&]() -> Result<void> {
            for (const auto& dir : {upper, work}) {
                if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
                    return base::errno_error("creating `{}`", dir);
                }
            }
            return base::ok();
        }));
        out.overlay = TRY(describe_overlay(snapshots, upper, work, !plan.privileged));
        return out;
    }
    out.kind = RootfsPlan::Kind::Flattened;
    out.rootfs = container_dir + "/rootfs";
    TRY(run_as_container_root(plan, [&]() -> Result<void> {
        if (mkdir(out.rootfs.c_str(), 0755) != 0) {
            return base::errno_error("creating `{}`", out.rootfs);
        }
        auto fd = TRY(base::open_file(out.rootfs, O_RDONLY | O_DIRECTORY));
        TRY(flatten_snapshots(snapshots, fd.get()));
        return base::ok();
    }));
    return out;
}

base::Result<SnapshotPruneResult> prune_snapshots(const oci::ContentStore& store,
                                                  SnapshotStore& snapshots,
                                                  const OwnershipPlan& plan,
                                                  const std::set<std::string>* only) {
    // Held until the removals are done: no lease can be taken meanwhile, so
    // nothing starts using a snapshot we decided to remove.
    auto lock = TRY(snapshots.lock_exclusive());
    std::set<std::string> keep;
    for (const auto& record : TRY(store.list_refs())) {
        auto ref = oci::Reference::parse(record.name);
        if (!ref) {
            continue;  // not a name locald could run
        }
        auto image = oci::resolve_image(store, *ref);
        if (!image) {
            auto kind = image.error().kind();
            if (kind == base::ErrorKind::NotFound || kind == base::ErrorKind::Unsupported) {
                continue;  // incomplete or foreign-platform image: nothing to keep
            }
            return image.release_error().context(
                fmt::format("deciding which snapshots `{}` needs", record.name));
        }
        for (const auto& chain : image_chain_ids(*image)) {
            keep.insert(chain);
        }
    }
    auto leases = TRY(snapshots.scan_leases());
    SnapshotPruneResult result;
    result.stale_leases = leases.stale_removed;
    for (const auto& chain : TRY(snapshots.list())) {
        if (keep.contains(chain) || leases.chain_ids.contains(chain)) {
            continue;
        }
        if (only && !only->contains(chain)) {
            continue;
        }
        result.removed.push_back(chain);
    }
    std::vector<std::string> leftovers;
    if (!only && !leases.holder_active) {
        leftovers = TRY(snapshots.leftovers());
    }
    if (result.removed.empty() && leftovers.empty()) {
        return result;
    }
    // Decided here, removed in the namespace (the child's results do not
    // travel back, its errors do).
    TRY(run_as_container_root(plan, [&]() -> Result<void> {
        for (const auto& chain : result.removed) {
            TRY(snapshots.remove(chain));
        }
        for (const auto& dir : leftovers) {
            TRY(base::remove_all(dir));  // makes read-only directories writable itself
        }
        return base::ok();
    }));
    result.leftovers_removed = leftovers.size();
    return result;
}

}  // namespace locald::layers
