// The env-directory rules of spec notes §3.4–3.5, one case per rule, applied
// to real directories read through the confined helpers.
#include "cnb/env_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/confined.h"
#include "base/sys.h"
#include "cnb_test_util.h"

namespace locald::cnb {
namespace {

using testing::ScratchDir;
using testing::write_text;
namespace fs = std::filesystem;

struct EnvCase {
    std::string name;
    std::vector<std::pair<std::string, std::string>> files;  // path under env/ → content
    EnvMap before;
    EnvAction unsuffixed = EnvAction::Override;
    EnvMap after;
};

class EnvDirTable : public ::testing::TestWithParam<EnvCase> {};

TEST_P(EnvDirTable, AppliesTheRule) {
    const EnvCase& c = GetParam();
    ScratchDir dir;
    fs::create_directories(dir / "layer/env");
    for (const auto& [path, content] : c.files) {
        if (content == "<dir>") {
            fs::create_directories(dir / ("layer/env/" + path));
        } else {
            write_text(dir / ("layer/env/" + path), content);
        }
    }
    auto root = base::open_file(dir.path(), O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(root);
    EnvMap env = c.before;
    auto applied = apply_env_dir(env, {root->get(), "/layers", "layer/env"}, c.unsuffixed);
    ASSERT_TRUE(applied) << applied.error().to_string();
    EXPECT_EQ(env, c.after);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, EnvDirTable,
    ::testing::Values(EnvCase{"UnsuffixedOverridesInALayer",
                              {{"JAVA_HOME", "/jdk"}},
                              {{"JAVA_HOME", "/old"}},
                              EnvAction::Override,
                              {{"JAVA_HOME", "/jdk"}}},
                      EnvCase{"UnsuffixedIsDefaultInBuildConfig",
                              {{"JAVA_HOME", "/jdk"}, {"NEW", "n"}},
                              {{"JAVA_HOME", "/old"}},
                              EnvAction::Default,
                              {{"JAVA_HOME", "/old"}, {"NEW", "n"}}},
                      EnvCase{"OverrideSets",
                              {{"A.override", "x"}},
                              {{"A", "old"}},
                              EnvAction::Override,
                              {{"A", "x"}}},
                      EnvCase{"DefaultSetsAnUnsetVariable",
                              {{"A.default", "x"}},
                              {},
                              EnvAction::Override,
                              {{"A", "x"}}},
                      EnvCase{"DefaultSetsAnEmptyVariable",
                              {{"A.default", "x"}},
                              {{"A", ""}},
                              EnvAction::Override,
                              {{"A", "x"}}},
                      EnvCase{"DefaultKeepsASetVariable",
                              {{"A.default", "x"}},
                              {{"A", "kept"}},
                              EnvAction::Override,
                              {{"A", "kept"}}},
                      EnvCase{"AppendWithoutDelimHasNoSeparator",
                              {{"PATH.append", "/x"}},
                              {{"PATH", "/bin"}},
                              EnvAction::Override,
                              {{"PATH", "/bin/x"}}},
                      EnvCase{"AppendUsesTheDelimFile",
                              {{"PATH.append", "/x"}, {"PATH.delim", ":"}},
                              {{"PATH", "/bin"}},
                              EnvAction::Override,
                              {{"PATH", "/bin:/x"}}},
                      EnvCase{"PrependWithoutDelimHasNoSeparator",
                              {{"P.prepend", "a"}},
                              {{"P", "b"}},
                              EnvAction::Override,
                              {{"P", "ab"}}},
                      EnvCase{"PrependUsesTheDelimFile",
                              {{"P.prepend", "a"}, {"P.delim", ";"}},
                              {{"P", "b"}},
                              EnvAction::Override,
                              {{"P", "a;b"}}},
                      EnvCase{"PrependToAnUnsetVariableKeepsTheDelimiter",
                              {{"P.prepend", "a"}, {"P.delim", ":"}},
                              {},
                              EnvAction::Override,
                              {{"P", "a:"}}},
                      EnvCase{
                          "DelimAloneSetsNothing", {{"P.delim", ":"}}, {}, EnvAction::Override, {}},
                      EnvCase{"ContentIsNotTrimmed",
                              {{"JAVA_HOME", "/jdk\n"}},
                              {},
                              EnvAction::Override,
                              {{"JAVA_HOME", "/jdk\n"}}},
                      EnvCase{"FilesApplyInNameOrder",
                              // FOO.append < FOO.default < FOO.override < FOO.prepend
                              {{"FOO.append", "a"},
                               {"FOO.default", "d"},
                               {"FOO.override", "o"},
                               {"FOO.prepend", "p"}},
                              {},
                              EnvAction::Override,
                              {{"FOO", "po"}}},
                      EnvCase{"TheNameEndsAtTheFirstDot",
                              {{"A.b.append", "x"}, {"B.c", "y"}},
                              {},
                              EnvAction::Override,
                              {}},
                      EnvCase{"UnknownSuffixIsIgnored",
                              {{"A.prepend-path", "x"}, {"B.", "y"}},
                              {{"A", "a"}},
                              EnvAction::Override,
                              {{"A", "a"}}},
                      EnvCase{"DirectoriesAreSkipped",
                              {{"web", "<dir>"}, {"web/A", "x"}, {"B", "b"}},
                              {},
                              EnvAction::Override,
                              {{"B", "b"}}}),
    [](const ::testing::TestParamInfo<EnvCase>& info) { return info.param.name; });

class EnvFiles : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_FALSE(m_dir.path().empty());
        m_root = base::open_file(m_dir.path(), O_RDONLY | O_DIRECTORY).release_value();
    }
    base::Result<void> apply(EnvMap& env, const std::string& rel,
                             EnvAction unsuffixed = EnvAction::Override) {
        return apply_env_dir(env, {m_root.get(), "/layers", rel}, unsuffixed);
    }
    ScratchDir m_dir;
    base::UniqueFd m_root;
};

TEST_F(EnvFiles, AMissingDirectoryChangesNothing) {
    EnvMap env{{"A", "a"}};
    ASSERT_TRUE(apply(env, "nope/env"));
    EXPECT_EQ(env, (EnvMap{{"A", "a"}}));
}

TEST_F(EnvFiles, TheDelimiterOfAnotherDirectoryIsNotUsed) {
    write_text(m_dir / "one/env/PATH.delim", ":");
    write_text(m_dir / "two/env/PATH.append", "/x");
    EnvMap env{{"PATH", "/bin"}};
    ASSERT_TRUE(apply(env, "one/env"));
    ASSERT_TRUE(apply(env, "two/env"));
    EXPECT_EQ(env["PATH"], "/bin/x");
}

// Spec §Environment Variable Modification Rules, across buildpacks (dirs
// applied in buildpack order): append earlier first, prepend later first,
// override last wins, default first wins.
TEST_F(EnvFiles, OrderAcrossBuildpacksFollowsSequentialApplication) {
    for (const char* bp : {"first", "second"}) {
        write_text(m_dir / (std::string(bp) + "/env/A.append"), bp);
        write_text(m_dir / (std::string(bp) + "/env/A.delim"), ",");
        write_text(m_dir / (std::string(bp) + "/env/P.prepend"), bp);
        write_text(m_dir / (std::string(bp) + "/env/P.delim"), ",");
        write_text(m_dir / (std::string(bp) + "/env/O.override"), bp);
        write_text(m_dir / (std::string(bp) + "/env/D.default"), bp);
    }
    EnvMap env{{"A", "base"}, {"P", "base"}};
    ASSERT_TRUE(apply(env, "first/env"));
    ASSERT_TRUE(apply(env, "second/env"));
    EXPECT_EQ(env["A"], "base,first,second");
    EXPECT_EQ(env["P"], "second,first,base");
    EXPECT_EQ(env["O"], "second");
    EXPECT_EQ(env["D"], "first");
}

TEST_F(EnvFiles, ASymlinkToAFileIsFollowed) {
    write_text(m_dir / "layer/value", "v");
    fs::create_directories(m_dir / "layer/env");
    fs::create_symlink("../value", m_dir / "layer/env/A");
    EnvMap env;
    ASSERT_TRUE(apply(env, "layer/env"));
    EXPECT_EQ(env["A"], "v");
}

// An absolute symlink resolves inside the layers dir, not on the host: the
// host's /etc/hostname is never read.
TEST_F(EnvFiles, ASymlinkCannotReadOutsideTheRoot) {
    fs::create_directories(m_dir / "layer/env");
    fs::create_symlink("/etc/hostname", m_dir / "layer/env/ABS");
    fs::create_symlink("../../../../../../../../etc/hostname", m_dir / "layer/env/REL");
    write_text(m_dir / "etc/hostname", "inside\n");
    EnvMap env;
    ASSERT_TRUE(apply(env, "layer/env"));
    EXPECT_EQ(env["ABS"], "inside\n");
    EXPECT_EQ(env["REL"], "inside\n");
}

TEST_F(EnvFiles, ADanglingSymlinkIsAnErrorNamingTheFile) {
    fs::create_directories(m_dir / "layer/env");
    fs::create_symlink("/nowhere", m_dir / "layer/env/A");
    EnvMap env;
    auto applied = apply(env, "layer/env");
    ASSERT_FALSE(applied);
    EXPECT_NE(applied.error().message().find("/layers/layer/env/A"), std::string::npos)
        << applied.error().message();
}

TEST_F(EnvFiles, AFifoIsRefusedWithoutBlocking) {
    fs::create_directories(m_dir / "layer/env");
    ASSERT_EQ(::mkfifo((m_dir / "layer/env/A").c_str(), 0644), 0);
    EnvMap env;
    auto applied = apply(env, "layer/env");
    ASSERT_FALSE(applied);
    EXPECT_NE(applied.error().message().find("expected a regular file"), std::string::npos)
        << applied.error().message();
}

TEST_F(EnvFiles, ANameThatCannotBeAVariableIsAnError) {
    write_text(m_dir / "eq/env/A=B", "x");
    write_text(m_dir / "empty/env/.append", "x");
    write_text(m_dir / "nul/env/A", std::string("a\0b", 3));
    for (const char* rel : {"eq/env", "empty/env", "nul/env"}) {
        EnvMap env;
        auto applied = apply(env, rel);
        ASSERT_FALSE(applied) << rel;
        EXPECT_NE(applied.error().message().find(std::string("/layers/") + rel), std::string::npos)
            << applied.error().message();
    }
}

TEST_F(EnvFiles, ATooLargeFileIsAnError) {
    write_text(m_dir / "layer/env/A", std::string((1 << 20) + 1, 'x'));
    EnvMap env;
    auto applied = apply(env, "layer/env");
    ASSERT_FALSE(applied);
    EXPECT_NE(applied.error().message().find("larger than"), std::string::npos);
}

TEST_F(EnvFiles, UnsuffixedIsOverrideForEverySupportedApiAndUnsupportedOtherwise) {
    for (const char* api : {"0.7", "0.8", "0.9", "0.10", "0.11", "0.12"}) {
        auto action = unsuffixed_env_action(api);
        ASSERT_TRUE(action) << api;
        EXPECT_EQ(*action, EnvAction::Override) << api;
    }
    for (const char* api : {"0.4", "0.6", "0.13", "1.0"}) {
        auto action = unsuffixed_env_action(api);
        ASSERT_FALSE(action) << api;
        EXPECT_EQ(action.error().kind(), base::ErrorKind::Unsupported) << api;
    }
    EXPECT_FALSE(unsuffixed_env_action("zero"));
}

// <platform>/env: names verbatim, the five path variables prepended with ':'
// (even when unset), everything else overridden.
TEST_F(EnvFiles, PlatformEnvUsesNamesVerbatimAndPrependsPathVariables) {
    write_text(m_dir / "platform/env/PATH", "/user/bin");
    write_text(m_dir / "platform/env/LD_LIBRARY_PATH", "/user/lib");
    write_text(m_dir / "platform/env/CPATH", "/user/include");
    write_text(m_dir / "platform/env/BP_X", "1\n");
    write_text(m_dir / "platform/env/FOO.append", "verbatim");
    EnvMap env{{"PATH", "/bin"}, {"BP_X", "old"}};
    auto applied = apply_platform_env(env, {m_root.get(), "/platform", "platform/env"});
    ASSERT_TRUE(applied) << applied.error().to_string();
    EXPECT_EQ(env, (EnvMap{{"PATH", "/user/bin:/bin"},
                           {"LD_LIBRARY_PATH", "/user/lib:"},
                           {"CPATH", "/user/include:"},
                           {"BP_X", "1\n"},
                           {"FOO.append", "verbatim"}}));
}

TEST_F(EnvFiles, BuildRootDirsFeedFiveVariablesOnlyWhenTheyExist) {
    for (const char* sub : {"bin", "lib", "include", "pkgconfig"}) {
        fs::create_directories(m_dir / (std::string("bp/full/") + sub));
    }
    fs::create_directories(m_dir / "bp/binonly/bin");
    EnvMap env{{"PATH", "/bin"}};
    ASSERT_TRUE(add_root_dirs(env, {m_root.get(), "/layers", "bp/full"}, "/layers/bp/full",
                              RootDirs::Build));
    ASSERT_TRUE(add_root_dirs(env, {m_root.get(), "/layers", "bp/binonly"}, "/layers/bp/binonly",
                              RootDirs::Build));
    ASSERT_TRUE(add_root_dirs(env, {m_root.get(), "/layers", "bp/missing"}, "/layers/bp/missing",
                              RootDirs::Build));
    EXPECT_EQ(env, (EnvMap{{"PATH", "/layers/bp/binonly/bin:/layers/bp/full/bin:/bin"},
                           {"LD_LIBRARY_PATH", "/layers/bp/full/lib"},
                           {"LIBRARY_PATH", "/layers/bp/full/lib"},
                           {"CPATH", "/layers/bp/full/include"},
                           {"PKG_CONFIG_PATH", "/layers/bp/full/pkgconfig"}}));
}

TEST_F(EnvFiles, LaunchRootDirsAreOnlyBinAndLib) {
    for (const char* sub : {"bin", "lib", "include", "pkgconfig"}) {
        fs::create_directories(m_dir / (std::string("bp/full/") + sub));
    }
    EnvMap env;
    ASSERT_TRUE(add_root_dirs(env, {m_root.get(), "/layers", "bp/full"}, "/layers/bp/full",
                              RootDirs::Launch));
    EXPECT_EQ(
        env, (EnvMap{{"PATH", "/layers/bp/full/bin"}, {"LD_LIBRARY_PATH", "/layers/bp/full/lib"}}));
}

TEST(CnbBuildBaseEnv, KeepsOnlyTheAllowList) {
    EnvMap env = filter_build_base_env(
        {"PATH=/usr/bin", "HOME=/home/cnb", "HOSTNAME=b", "CNB_STACK_ID=s", "http_proxy=h",
         "HTTPS_PROXY=H", "no_proxy=n", "LD_LIBRARY_PATH=/l", "LIBRARY_PATH=/ll", "CPATH=/c",
         "PKG_CONFIG_PATH=/p", "CNB_USER_ID=1000", "SECRET=x", "LANG=C", "PATH=/bin"});
    EXPECT_EQ(env, (EnvMap{{"PATH", "/bin"},
                           {"HOME", "/home/cnb"},
                           {"HOSTNAME", "b"},
                           {"CNB_STACK_ID", "s"},
                           {"http_proxy", "h"},
                           {"HTTPS_PROXY", "H"},
                           {"no_proxy", "n"},
                           {"LD_LIBRARY_PATH", "/l"},
                           {"LIBRARY_PATH", "/ll"},
                           {"CPATH", "/c"},
                           {"PKG_CONFIG_PATH", "/p"}}));
}

}  // namespace
}  // namespace locald::cnb
