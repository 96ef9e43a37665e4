#include "image/prepare.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/paths.h"
#include "layers/pipelined_apply.h"
#include "ns/doctor.h"
#include "oci/image.h"
#include "oci/pull.h"
#include "oci/reference.h"
#include "oci/store.h"

namespace locald::image {

namespace {

void step(const PrepareOptions& options, std::string_view name, std::string_view message) {
    if (options.on_step) {
        options.on_step(name, message);
    }
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t at = text.find(separator, start);
        out.push_back(text.substr(start, at == std::string::npos ? at : at - start));
        if (at == std::string::npos) {
            return out;
        }
        start = at + 1;
    }
}

// The container dir must be ours and private; an existing one must be empty
// (a leftover is removed by the caller first, through the user namespace).
base::Result<std::string> make_container_dir(const std::string& data_dir,
                                             const std::string& wanted) {
    if (!wanted.empty()) {
        if (::mkdir(wanted.c_str(), 0700) != 0 && errno != EEXIST) {
            return base::errno_error("creating the container directory `{}`", wanted);
        }
        struct stat st;
        if (::lstat(wanted.c_str(), &st) != 0) {
            return base::errno_error("checking `{}`", wanted);
        }
        if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
            return base::failed_precondition("`{}` is not a directory owned by us", wanted);
        }
        ::chmod(wanted.c_str(), 0700);
        return wanted;
    }
    std::string containers = data_dir + "/containers";
    if (::mkdir(containers.c_str(), 0700) != 0 && errno != EEXIST) {
        return base::errno_error("creating `{}`", containers);
    }
    std::string dir = containers + "/run-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) {
        return base::errno_error("creating a container directory under `{}`", containers);
    }
    return dir;
}

}  // namespace

PreparedRootfs::~PreparedRootfs() {
    if (m_owned && !container_dir.empty()) {
        // The writable layer holds files owned by subordinate ids: remove it
        // as the container's root, in the same user namespace.
        auto removed = layers::remove_tree(ownership, container_dir);
        if (!removed) {
            std::fprintf(stderr, "locald: warning: removing `%s`: %s\n", container_dir.c_str(),
                         removed.error().to_string().c_str());
        }
    }
}

base::Result<std::unique_ptr<PreparedRootfs>> prepare_image_rootfs(const PrepareOptions& options) {
    auto ref = TRY(oci::Reference::parse(options.reference));
    auto store = TRY(oci::ContentStore::open_default().context("opening the local image store"));
    step(options, "resolving", fmt::format("resolving {}", ref.str()));
    auto image = oci::resolve_image(store, ref);
    if (!image && image.error().kind() == base::ErrorKind::NotFound && options.pull_if_missing) {
        // Not in the store: pull it, as `docker run` does.
        step(options, "pulling", fmt::format("pulling {}", ref.str()));
        oci::PullOptions pull;
        pull.reference = options.reference;
        // Each layer goes into its snapshot as soon as it lands, while later
        // ones still download. The helper is forked now, before the pull's
        // threads (a rootless apply forks into the user namespace).
        auto plan = TRY(layers::plan_ownership(layers::RootlessMode::Auto));
        auto pipeline = TRY(layers::PipelinedApply::start(store, plan, {}));
        pull.on_blob_committed = [&](const oci::ImageManifest& manifest,
                                     const oci::Descriptor& blob) {
            pipeline.on_blob(manifest, blob);
        };
        auto pulled = oci::pull(store, pull, options.progress);
        auto applied = pipeline.finish();
        if (!pulled) {
            return pulled.release_error();
        }
        if (!applied) {
            return applied.release_error().context(fmt::format("unpacking {}", ref.str()));
        }
        image = oci::resolve_image(store, ref);
    }
    if (!image) {
        return image.release_error();
    }
    auto prepared = std::make_unique<PreparedRootfs>();
    prepared->reference = ref.str();
    prepared->image_digest = image->manifest_descriptor.digest.str();
    const oci::ContainerConfig& config = image->config.config;
    prepared->defaults.entrypoint = config.entrypoint.value_or(std::vector<std::string>{});
    prepared->defaults.cmd = config.cmd.value_or(std::vector<std::string>{});
    prepared->defaults.env = config.env;
    prepared->defaults.working_dir = config.working_dir;
    prepared->defaults.user = config.user;

    prepared->ownership = TRY(layers::plan_ownership(layers::RootlessMode::Auto));
    auto snapshot_store = TRY(layers::SnapshotStore::open(store.data_dir()));
    step(options, "unpacking",
         fmt::format("unpacking {} ({} layers)", ref.str(), image->manifest.layers.size()));
    layers::SnapshotLease lease;
    auto snapshots = TRY(layers::prepare_snapshots(
        store, *image, snapshot_store, prepared->ownership, &prepared->warnings, &lease));
    std::string dir = TRY(make_container_dir(store.data_dir(), options.container_dir));
    prepared->container_dir = dir;
    // `prune` / `rmi` keep the snapshots while the writable layer exists.
    TRY(lease.bind_to(dir));
    // Overlay (no copy) when the kernel mounts it inside our user namespace.
    bool overlay = ns::userns_overlay_works();
    step(options, "rootfs",
         overlay ? std::string("creating the writable layer (overlay)")
                 : std::string("copying the root filesystem (no overlay in a user namespace)"));
    auto plan = TRY(layers::build_rootfs(snapshots, dir, overlay, prepared->ownership));
    if (plan.kind == layers::RootfsPlan::Kind::Overlay) {
        std::string merged = dir + "/merged";
        if (::mkdir(merged.c_str(), 0755) != 0 && errno != EEXIST) {
            return base::errno_error("creating `{}`", merged);
        }
        prepared->rootfs.path = merged;
        ns::RootfsMount mount;
        mount.type = plan.overlay.type;
        mount.source = plan.overlay.source;
        mount.options = split(plan.overlay.options(), ',');
        prepared->rootfs.mounts.push_back(std::move(mount));
    } else {
        prepared->rootfs.path = plan.rootfs;
    }
    return prepared;
}

base::Result<void> remove_container_dir(const std::string& dir) {
    struct stat st;
    if (::lstat(dir.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return base::ok();
        }
        return base::errno_error("checking `{}`", dir);
    }
    auto plan = TRY(layers::plan_ownership(layers::RootlessMode::Auto));
    return layers::remove_tree(plan, dir);
}

PreparedInfo describe(const PreparedRootfs& prepared) {
    PreparedInfo info;
    info.reference = prepared.reference;
    info.image_digest = prepared.image_digest;
    info.defaults = prepared.defaults;
    info.rootfs = prepared.rootfs;
    info.container_dir = prepared.container_dir;
    return info;
}

}  // namespace locald::image
