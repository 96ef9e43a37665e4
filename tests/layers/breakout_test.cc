// The hostile-layer table (containerd TestBreakouts, moby, umoci cases and
// more). Each case is applied layer by layer onto <tmp>/root next to
// <tmp>/outside/unbroken; whatever the applier answers (success or error),
// nothing outside the root may change. Run with openat2 and with the forced
// O_NOFOLLOW walk, as root (Preserve owners) and unprivileged (Rootless*).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/confined.h"
#include "fs_snapshot.h"
#include "tar_builder.h"
#include "test_util.h"

namespace locald::layers {
namespace {

using namespace testing;

struct Breakout {
    std::string name;
    // Layers as functions of the relative (from the root) and absolute paths
    // of the outside directory.
    std::vector<std::vector<TarEntry>> (*layers)(const std::string& rel, const std::string& abs);
    bool overlay = false;
};

TarEntry with_mode(TarEntry e, mode_t mode) {
    e.mode = mode;
    return e;
}

std::vector<Breakout> breakouts() {
    using L = std::vector<std::vector<TarEntry>>;
    return {
        {"DotDotName", [](auto& rel, auto&) { return L{{file(rel + "/unbroken", "broken")}}; }},
        {"DotDotDeep",
         [](auto&, auto&) { return L{{file("../../../../../../../../outside/unbroken", "b")}}; }},
        {"AbsoluteName", [](auto&, auto& abs) { return L{{file(abs + "/unbroken", "broken")}}; }},
        {"SymlinkAbsolute",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs), file("l/unbroken", "broken")}};
         }},
        {"SymlinkUpAndOut",
         [](auto& rel, auto&) {
             return L{{symlink("l", rel), file("l/unbroken", "broken")}};
         }},
        {"SymlinkSlashEnded",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs + "/"), file("l/unbroken", "broken")}};
         }},
        {"SymlinkChainRelative",
         [](auto& rel, auto&) {
             return L{
                 {symlink("a", "b"), symlink("b", "c/../" + rel), file("a/unbroken", "broken")}};
         }},
        {"SymlinkChainAbsolute",
         [](auto&, auto& abs) {
             return L{{symlink("a", "/b"), symlink("b", abs), file("a/unbroken", "broken")}};
         }},
        {"SymlinkDeepRelative",
         [](auto&, auto&) {
             return L{{dir("x/"), dir("x/y/"),
                       symlink("x/y/l", "../../../../../../../../../../outside"),
                       file("x/y/l/unbroken", "broken")}};
         }},
        {"SymlinkParentInLowerLayer",
         [](auto& rel, auto&) {
             return L{{symlink("l", rel)}, {file("l/unbroken", "broken")}};
         }},
        {"SymlinkLeafOverwrite",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs + "/unbroken"), file("l", "broken")}};
         }},
        {"SymlinkLeafOverwriteLowerLayer",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs + "/unbroken")}, {file("l", "broken", 0777)}};
         }},
        {"SymlinkOverrideDirectory",
         [](auto&, auto& abs) {
             return L{{dir("d/"), file("d/f", "x")},
                      {symlink("d", abs), file("d/unbroken", "broken")}};
         }},
        {"DirectoryOverrideSymlink",
         [](auto&, auto& abs) {
             return L{{symlink("d", abs), dir("d/", 0777)}};
         }},
        {"DirectoryOverrideSymlinkLower",
         [](auto& rel, auto&) {
             return L{{symlink("d", rel)}, {dir("d/", 0777)}};
         }},
        {"RootSymlinkEntry",
         [](auto&, auto& abs) {
             return L{{symlink(".", abs)}, {file("unbroken", "broken")}};
         }},
        {"RootSymlinkEntrySlashDot",
         [](auto&, auto& abs) {
             return L{{symlink("/.", abs), file("unbroken", "broken")}};
         }},
        {"HardlinkAbsolute",
         [](auto&, auto& abs) {
             return L{{hardlink("h", abs + "/unbroken"), file("h", "broken")}};
         }},
        {"HardlinkRelativeUpAndOut",
         [](auto& rel, auto&) {
             return L{{hardlink("h", rel + "/unbroken"), with_mode(file("x", "y"), 0777)}};
         }},
        {"HardlinkThroughSymlinkDir",
         [](auto&, auto& abs) {
             return L{{symlink("d", abs), hardlink("h", "d/unbroken")}};
         }},
        {"HardlinkToSymlinkThenWrite",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs + "/unbroken"), hardlink("h", "l"), file("h", "broken")}};
         }},
        {"HardlinkSymlinkChmod",
         [](auto&, auto& abs) {
             return L{
                 {symlink("l", abs + "/unbroken"), hardlink("h", "l"), with_mode(dir("h/"), 0777)}};
         }},
        {"HardlinkToDirectory",
         [](auto&, auto&) {
             return L{{dir("d/"), hardlink("h", "d")}};
         }},
        {"WhiteoutThroughSymlink",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs)}, {file("l/.wh.unbroken", "")}};
         }},
        {"WhiteoutThroughSymlinkSameLayer",
         [](auto& rel, auto&) {
             return L{{symlink("l", rel), file("l/.wh.unbroken", "")}};
         }},
        {"WhiteoutDotDot", [](auto& rel, auto&) { return L{{file(rel + "/.wh.unbroken", "")}}; }},
        {"WhiteoutSymlinkItself",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs)}, {file(".wh.l", "")}};
         }},
        {"WhiteoutParentDotDot", [](auto&, auto&) { return L{{file("../.wh.outside", "")}}; }},
        {"WhiteoutDeadSymlinkParent",
         [](auto&, auto&) {
             return L{{symlink("d", "/nonexistent")}, {file("d/.wh.x", "")}};
         }},
        {"OpaqueThroughSymlink",
         [](auto& rel, auto&) {
             return L{{symlink("l", rel)}, {file("l/.wh..wh..opq", "")}};
         }},
        {"OpaqueDotDot",
         [](auto&, auto&) {
             return L{{file("x", "1")}, {file("../../.wh..wh..opq", "")}};
         }},
        {"FifoThroughSymlink",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs), fifo("l/fifo")}};
         }},
        {"DirThroughSymlinkChmod",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs), with_mode(dir("l/newdir/"), 0777)}};
         }},
        {"DeviceNode",
         [](auto&, auto&) {
             TarEntry dev{TarEntry::CharDev, "dev/null", "", 0666};
             dev.major = 1;
             dev.minor = 3;
             return L{{dev}};
         }},
        {"OverlaySymlinkParent",
         [](auto&, auto& abs) {
             return L{{symlink("l", abs), file("l/unbroken", "broken")}};
         },
         true},
        {"OverlayWhiteoutThroughSymlink",
         [](auto& rel, auto&) {
             return L{{symlink("l", rel), file("l/.wh.unbroken", "")}};
         },
         true},
        {"OverlayOpaqueThroughSymlink",
         [](auto& rel, auto&) {
             return L{{symlink("l", rel), file("l/.wh..wh..opq", "")}};
         },
         true},
    };
}

struct Mode {
    const char* name;
    base::ResolveMode resolve;
};

void run_breakout(const Breakout& c, base::ResolveMode mode, OwnershipMode ownership) {
    std::string tmp = make_temp_dir("layers-breakout");
    ASSERT_FALSE(tmp.empty());
    std::string root = tmp + "/root";
    std::string outside = tmp + "/outside";
    ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(outside.c_str(), 0755), 0);
    {
        FILE* f = fopen((outside + "/unbroken").c_str(), "w");
        ASSERT_NE(f, nullptr);
        fputs("unbroken", f);
        fclose(f);
    }
    SnapshotOptions snap;
    snap.exclude = "root";
    auto before = snapshot_tree(tmp, snap);
    base::set_resolve_mode_for_testing(mode);
    std::string rel = "../outside";
    std::string abs = outside;
    int index = 0;
    for (const auto& layer : c.layers(rel, abs)) {
        ApplyOptions options;
        options.layer_digest = "sha256:layer" + std::to_string(index++);
        options.ownership = ownership;
        options.create_devices = geteuid() == 0;
        options.whiteouts = c.overlay ? WhiteoutMode::Overlay : WhiteoutMode::Flatten;
        auto result = apply_bytes(root, build_tar(layer, TarCompression::Gzip), options);
        if (!result) {
            // An error is an acceptable answer; the check below is what matters.
            EXPECT_NE(result.error().message().find(options.layer_digest), std::string::npos)
                << c.name << ": " << result.error().to_string();
            break;
        }
    }
    base::set_resolve_mode_for_testing(base::ResolveMode::Auto);
    auto after = snapshot_tree(tmp, snap);
    EXPECT_EQ(diff_snapshots(before, after), "") << c.name;
    EXPECT_EQ(read_file_or_empty(outside + "/unbroken"), "unbroken") << c.name;
    remove_tree(tmp);
}

class Breakouts : public ::testing::TestWithParam<std::tuple<int, Mode>> {};

TEST_P(Breakouts, NothingOutsideTheRootChanges) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass (the Rootless suite runs the same table unprivileged)";
    }
    auto [index, mode] = GetParam();
    run_breakout(breakouts()[static_cast<size_t>(index)], mode.resolve, OwnershipMode::Preserve);
}

class RootlessBreakouts : public Breakouts {};

TEST_P(RootlessBreakouts, NothingOutsideTheRootChanges) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    auto [index, mode] = GetParam();
    run_breakout(breakouts()[static_cast<size_t>(index)], mode.resolve,
                 OwnershipMode::RootlessXattr);
}

auto kModes = ::testing::Values(Mode{"openat2", base::ResolveMode::Openat2},
                                Mode{"walk", base::ResolveMode::Walk});
auto name_of = [](const auto& info) {
    return breakouts()[static_cast<size_t>(std::get<0>(info.param))].name + "_" +
           std::get<1>(info.param).name;
};

INSTANTIATE_TEST_SUITE_P(Table, Breakouts,
                         ::testing::Combine(::testing::Range(0, int(breakouts().size())), kModes),
                         name_of);
INSTANTIATE_TEST_SUITE_P(Table, RootlessBreakouts,
                         ::testing::Combine(::testing::Range(0, int(breakouts().size())), kModes),
                         name_of);

// Specific answers for a few cases (beyond "nothing escaped").
TEST(BreakoutOutcomes, SymlinkParentWritesStayInside) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass";
    }
    std::string tmp = make_temp_dir("layers-outcome");
    std::string root = tmp + "/root";
    ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
    auto result =
        apply_bytes(root, build_tar({dir("etc/"), symlink("l", "/etc"), file("l/x", "inside")}));
    ASSERT_TRUE(result.has_value()) << result.error().to_string();
    // `l` → /etc resolves to <root>/etc, not the host /etc.
    EXPECT_EQ(read_file_or_empty(root + "/etc/x"), "inside");
    auto hl = apply_bytes(root, build_tar({hardlink("h", "/etc/../../../etc/x")}));
    ASSERT_TRUE(hl.has_value()) << hl.error().to_string();
    struct stat a, b;
    ASSERT_EQ(stat((root + "/h").c_str(), &a), 0);
    ASSERT_EQ(stat((root + "/etc/x").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
    remove_tree(tmp);
}

}  // namespace
}  // namespace locald::layers
