// Hardlinks whose target is in a lower layer. Each case is applied two ways
// — Flatten mode onto one tree, and per-layer snapshots (SnapshotStore, the
// container path) flattened by copy — and both must agree: the same tree
// (link counts aside: a copy-up is a new inode), the same expected entries,
// or both an error; and nothing outside the root may change. Hostile
// variants: a link to a lower symlink, through `..`, through a symlinked
// parent inside and pointing outside, to whited-out and opaque-hidden files.
// Run as root (real owners) and, in the Rootless suite, in the container
// user namespace (subordinate owners), which is how locald applies layers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "base/sys.h"
#include "fs_snapshot.h"
#include "layers/rootfs.h"
#include "layers/snapshot_store.h"
#include "layers/unpack.h"
#include "tar_builder.h"
#include "test_util.h"

namespace locald::layers {
namespace {

using namespace testing;
using Layers = std::vector<std::vector<TarEntry>>;

struct LinkCase {
    std::string name;
    Layers (*layers)(const std::string& outside);
    bool ok;
    // path → "f:<content>" (a regular file), "l:<target>" (a symlink),
    // "-" (absent).
    std::map<std::string, std::string> expect;
};

TarEntry owned(TarEntry e, unsigned uid, mode_t mode) {
    e.uid = uid;
    e.gid = uid;
    e.mode = mode;
    return e;
}

std::vector<LinkCase> cases() {
    return {
        {"LowerFile",
         [](auto&) {
             return Layers{{dir("bin/"), owned(file("bin/tool", "T"), 100, 04755)},
                           {hardlink("bin/tool2", "bin/tool")}};
         },
         true,
         {{"bin/tool2", "f:T"}, {"bin/tool", "f:T"}}},
        {"TwoLinksShareOneCopy",
         [](auto&) {
             return Layers{{file("a", "A")}, {hardlink("b", "a"), hardlink("c", "a")}};
         },
         true,
         {{"b", "f:A"}, {"c", "f:A"}}},
        {"ChainAcrossThreeLayers",
         [](auto&) {
             return Layers{{file("a", "A")}, {hardlink("b", "a")}, {hardlink("c", "b")}};
         },
         true,
         {{"c", "f:A"}}},
        {"LowerSymlinkIsLinkedNotFollowed",
         [](auto& outside) {
             return Layers{{symlink("l", outside + "/unbroken")}, {hardlink("h", "l")}};
         },
         true,
         {{"h", "l:"}}},  // target filled in by the test (the outside path)
        {"LowerSymlinkThenWriteThroughTheLink",
         [](auto& outside) {
             return Layers{{symlink("l", outside + "/unbroken")},
                           {hardlink("h", "l")},
                           {file("h", "replaced")}};
         },
         true,
         {{"h", "f:replaced"}}},
        {"DotDotStaysInside",
         [](auto&) {
             return Layers{{dir("etc/"), file("etc/x", "X")}, {hardlink("h", "../../../../etc/x")}};
         },
         true,
         {{"h", "f:X"}}},
        {"SymlinkedParentInLowerResolvesInside",
         [](auto&) {
             return Layers{{dir("real/"), file("real/f", "F"), symlink("d", "/real")},
                           {hardlink("h", "d/f")}};
         },
         true,
         {{"h", "f:F"}}},
        {"SymlinkedParentInSameLayerToLower",
         [](auto&) {
             return Layers{{dir("real/"), file("real/f", "F")},
                           {symlink("s", "real"), hardlink("h", "s/f")}};
         },
         true,
         {{"h", "f:F"}}},
        {"SymlinkedParentDotDotChain",
         [](auto&) {
             return Layers{
                 {dir("a/"), dir("a/b/"), file("top", "T"), symlink("a/b/up", "../../..")},
                 {hardlink("h", "a/b/up/top")}};
         },
         true,
         {{"h", "f:T"}}},
        {"SymlinkedParentPointingOutsideAbsolute",
         [](auto& outside) {
             return Layers{{symlink("d", outside)}, {hardlink("h", "d/unbroken")}};
         },
         false,
         {}},
        {"SymlinkedParentPointingOutsideRelative",
         [](auto&) {
             return Layers{{symlink("d", "../outside")}, {hardlink("h", "d/unbroken")}};
         },
         false,
         {}},
        {"WhitedOutTarget",
         [](auto&) {
             return Layers{{file("f", "F")}, {file(".wh.f", "")}, {hardlink("h", "f")}};
         },
         false,
         {}},
        {"OpaqueHidesTarget",
         [](auto&) {
             return Layers{{dir("d/"), file("d/f", "F")},
                           {dir("d/"), file("d/.wh..wh..opq", ""), file("d/g", "G")},
                           {hardlink("h", "d/f")}};
         },
         false,
         {}},
        {"BelowOpaqueSameLayerVisible",
         [](auto&) {
             return Layers{{dir("d/"), file("d/f", "F")},
                           {dir("d/"), file("d/.wh..wh..opq", ""), file("d/g", "G")},
                           {hardlink("h", "d/g")}};
         },
         true,
         {{"h", "f:G"}, {"d/f", "-"}}},
        {"FileHidesLowerDirectory",
         [](auto&) {
             return Layers{
                 {dir("d/"), file("d/f", "F")}, {file("d", "now a file")}, {hardlink("h", "d/f")}};
         },
         false,
         {}},
        {"LowerDirectory",
         [](auto&) {
             return Layers{{dir("d/")}, {hardlink("h", "d")}};
         },
         false,
         {}},
        {"LinkReplacedLaterInTheLayer",
         [](auto&) {
             return Layers{{file("f", "1")}, {hardlink("h", "f"), file("h", "2")}};
         },
         true,
         {{"h", "f:2"}, {"f", "f:1"}}},
        {"IntoReadOnlyDirectory",
         [](auto&) {
             return Layers{{file("f", "F")}, {dir("ro/", 0555), hardlink("ro/h", "f")}};
         },
         true,
         {{"ro/h", "f:F"}}},
        {"LowerFifo",
         [](auto&) {
             return Layers{{fifo("p")}, {hardlink("q", "p")}};
         },
         true,
         {}},
    };
}

// "" when `root` has what `c` expects.
std::string check_expect(const LinkCase& c, const std::string& root, const std::string& outside) {
    std::string out;
    for (const auto& [path, want] : c.expect) {
        std::string full = root + "/" + path;
        struct stat st;
        bool exists = lstat(full.c_str(), &st) == 0;
        if (want == "-") {
            if (exists) {
                out += path + " should not exist; ";
            }
            continue;
        }
        if (!exists) {
            out += path + " missing; ";
        } else if (want.starts_with("f:")) {
            if (!S_ISREG(st.st_mode) || read_file_or_empty(full) != want.substr(2)) {
                out += path + " is not the file `" + want.substr(2) + "`; ";
            }
        } else if (want.starts_with("l:")) {
            std::string target = want.size() > 2 ? want.substr(2) : outside + "/unbroken";
            auto link = base::read_link(full);
            if (!S_ISLNK(st.st_mode) || !link || *link != target) {
                out += path + " is not a symlink to " + target + "; ";
            }
        }
    }
    return out;
}

base::Result<void> run_case(const LinkCase& c, const std::string& tmp, const OwnershipPlan& plan) {
    std::string outside = tmp + "/outside";
    auto layers = c.layers(outside);
    // (1) Flatten mode.
    std::string flat = tmp + "/flat";
    TRY(base::mkdir_p(flat, 0755));
    bool flat_ok = true;
    std::string flat_error;
    for (size_t i = 0; i < layers.size(); i++) {
        ApplyOptions options;
        options.layer_digest = "sha256:layer" + std::to_string(i);
        options.ownership = plan.mode;
        options.create_devices = plan.privileged;
        auto r = apply_bytes(flat, build_tar(layers[i]), options);
        if (!r) {
            flat_ok = false;
            flat_error = r.error().to_string();
            break;
        }
    }
    // (2) Snapshots, flattened by copy.
    std::vector<LayerSource> sources;
    for (size_t i = 0; i < layers.size(); i++) {
        std::string raw = build_tar(layers[i]);
        std::string blob = tmp + "/blob" + std::to_string(i);
        TRY(base::write_file(blob, raw, 0644));
        sources.push_back(LayerSource{"sha256:" + std::string(64, 'a' + static_cast<char>(i)),
                                      sha256_digest(raw),
                                      [blob]() { return base::open_file(blob, O_RDONLY); }});
    }
    auto store = TRY(SnapshotStore::open(tmp + "/data"));
    SnapshotApplyOptions options;
    options.ownership = plan.mode;
    options.create_devices = plan.privileged;
    options.trusted_overlay_xattrs = plan.privileged;
    auto paths = store.ensure(sources, options);
    bool snap_ok = paths.has_value();
    std::string copy = tmp + "/copy";
    if (snap_ok) {
        TRY(base::mkdir_p(copy, 0755));
        auto copy_fd = TRY(base::open_file(copy, O_RDONLY | O_DIRECTORY));
        TRY(flatten_snapshots(*paths, copy_fd.get()));
    }
    if (flat_ok != c.ok || snap_ok != c.ok) {
        return base::internal_error("expected {}: flatten {} ({}), snapshots {} ({})",
                                    c.ok ? "success" : "an error", flat_ok, flat_error, snap_ok,
                                    snap_ok ? "" : paths.error().to_string());
    }
    if (!snap_ok && paths.error().message().find("sha256:") == std::string::npos) {
        return base::internal_error("the error names no layer: {}", paths.error().to_string());
    }
    if (c.ok) {
        SnapshotOptions snap;
        snap.include_nlink = false;
        std::string diff = diff_snapshots(snapshot_tree(flat, snap), snapshot_tree(copy, snap));
        if (!diff.empty()) {
            return base::internal_error("flatten vs snapshots differ: {}", diff);
        }
        for (const auto& root : {flat, copy}) {
            std::string wrong = check_expect(c, root, outside);
            if (!wrong.empty()) {
                return base::internal_error("{}: {}", root, wrong);
            }
        }
    }
    return base::ok();
}

void check(const LinkCase& c, const OwnershipPlan& plan) {
    std::string tmp = make_temp_dir("layers-lower-links");
    ASSERT_FALSE(tmp.empty());
    std::string outside = tmp + "/outside";
    ASSERT_EQ(mkdir(outside.c_str(), 0755), 0);
    ASSERT_TRUE(base::write_file(outside + "/unbroken", "unbroken", 0644).has_value());
    SnapshotOptions snap;
    auto before = snapshot_tree(outside, snap);
    // The temp dir itself must be writable by the namespace's root.
    ASSERT_EQ(chmod(tmp.c_str(), 0700), 0);
    auto result = run_as_container_root(plan, [&]() { return run_case(c, tmp, plan); });
    EXPECT_TRUE(result.has_value()) << c.name << ": " << result.error().to_string();
    EXPECT_EQ(diff_snapshots(before, snapshot_tree(outside, snap)), "") << c.name;
    EXPECT_EQ(read_file_or_empty(outside + "/unbroken"), "unbroken");
    (void)remove_tree(plan, tmp);
    remove_tree(tmp);
}

class LowerLinks : public ::testing::TestWithParam<int> {};

TEST_P(LowerLinks, FlattenAndSnapshotsAgree) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass (RootlessLowerLinks runs unprivileged)";
    }
    auto plan = plan_ownership(RootlessMode::Auto);
    ASSERT_TRUE(plan.has_value());
    check(cases()[static_cast<size_t>(GetParam())], *plan);
}

class RootlessLowerLinks : public LowerLinks {};

TEST_P(RootlessLowerLinks, FlattenAndSnapshotsAgree) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    auto plan = plan_ownership(RootlessMode::Auto);
    ASSERT_TRUE(plan.has_value()) << plan.error().to_string();
    check(cases()[static_cast<size_t>(GetParam())], *plan);
}

// Without the namespace (no subordinate range, or --single-id): owners go
// to user.rootlesscontainers, which a copy-up must carry along.
class RootlessSingleIdLowerLinks : public LowerLinks {};

TEST_P(RootlessSingleIdLowerLinks, FlattenAndSnapshotsAgree) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    auto plan = plan_ownership(RootlessMode::SingleId);
    ASSERT_TRUE(plan.has_value()) << plan.error().to_string();
    check(cases()[static_cast<size_t>(GetParam())], *plan);
}

auto case_name = [](const auto& info) { return cases()[static_cast<size_t>(info.param)].name; };
INSTANTIATE_TEST_SUITE_P(Table, LowerLinks, ::testing::Range(0, int(cases().size())), case_name);
INSTANTIATE_TEST_SUITE_P(Table, RootlessLowerLinks, ::testing::Range(0, int(cases().size())),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Table, RootlessSingleIdLowerLinks,
                         ::testing::Range(0, int(cases().size())), case_name);

TEST(LowerLinks, TwoLinksInOneLayerShareTheirCopy) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass";
    }
    std::string tmp = make_temp_dir("layers-lower-links-share");
    Layers layers = {{file("a", "A")}, {hardlink("b", "a"), hardlink("c", "a")}};
    std::vector<LayerSource> sources;
    for (size_t i = 0; i < layers.size(); i++) {
        std::string raw = build_tar(layers[i]);
        std::string blob = tmp + "/blob" + std::to_string(i);
        ASSERT_TRUE(base::write_file(blob, raw, 0644).has_value());
        sources.push_back(LayerSource{sha256_digest(raw), sha256_digest(raw),
                                      [blob]() { return base::open_file(blob, O_RDONLY); }});
    }
    auto store = SnapshotStore::open(tmp + "/data");
    ASSERT_TRUE(store.has_value());
    auto paths = store->ensure(sources, {});
    ASSERT_TRUE(paths.has_value()) << paths.error().to_string();
    struct stat b, c, a;
    ASSERT_EQ(lstat(((*paths)[1] + "/b").c_str(), &b), 0);
    ASSERT_EQ(lstat(((*paths)[1] + "/c").c_str(), &c), 0);
    ASSERT_EQ(lstat(((*paths)[0] + "/a").c_str(), &a), 0);
    EXPECT_EQ(b.st_ino, c.st_ino) << "links of one layer share the copied-up inode";
    EXPECT_NE(b.st_ino, a.st_ino) << "the lower snapshot is never linked into (read-only)";
    EXPECT_EQ(b.st_nlink, 2u);
    remove_tree(tmp);
}

}  // namespace
}  // namespace locald::layers
