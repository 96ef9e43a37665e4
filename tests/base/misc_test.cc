#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>

#include "base/log.h"
#include "base/paths.h"
#include "base/scope_guard.h"
#include "base/sys.h"
#include "base/temp_dir.h"
#include "base/unique_handle.h"

namespace locald::base {
namespace {

// --- paths ---------------------------------------------------------------

Paths::EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

TEST(PathsTest, LocaldHomeWins) {
    Paths paths = Paths::from(env_of({{"LOCALD_HOME", "/srv/lh"},
                                      {"HOME", "/home/u"},
                                      {"XDG_CONFIG_HOME", "/x/config"},
                                      {"XDG_RUNTIME_DIR", "/run/user/5"}}),
                              5)
                      .value();
    EXPECT_EQ(paths.config, "/srv/lh/config");
    EXPECT_EQ(paths.data, "/srv/lh/data");
    EXPECT_EQ(paths.state, "/srv/lh/state");
    EXPECT_EQ(paths.run, "/srv/lh/run");
    char* cwd = ::getcwd(nullptr, 0);
    Paths relative = Paths::from(env_of({{"LOCALD_HOME", "rel"}}), 5).value();
    EXPECT_EQ(relative.config, std::string(cwd) + "/rel/config");
    std::free(cwd);
}

TEST(PathsTest, XdgAndDefaults) {
    Paths defaults = Paths::from(env_of({{"HOME", "/home/u"}}), 1234).value();
    EXPECT_EQ(defaults.config, "/home/u/.config/locald");
    EXPECT_EQ(defaults.data, "/home/u/.local/share/locald");
    EXPECT_EQ(defaults.state, "/home/u/.local/state/locald");
    EXPECT_EQ(defaults.run, "/tmp/locald-1234");
    Paths xdg = Paths::from(env_of({{"HOME", "/home/u"},
                                    {"XDG_CONFIG_HOME", "/c"},
                                    {"XDG_DATA_HOME", "/d"},
                                    {"XDG_STATE_HOME", "relative/ignored"},
                                    {"XDG_RUNTIME_DIR", "/run/user/1234"}}),
                            1234)
                    .value();
    EXPECT_EQ(xdg.config, "/c/locald");
    EXPECT_EQ(xdg.data, "/d/locald");
    EXPECT_EQ(xdg.state, "/home/u/.local/state/locald");
    EXPECT_EQ(xdg.run, "/run/user/1234/locald");
    // All XDG set: HOME is not needed.
    EXPECT_TRUE(
        Paths::from(
            env_of({{"XDG_CONFIG_HOME", "/c"}, {"XDG_DATA_HOME", "/d"}, {"XDG_STATE_HOME", "/s"}}),
            1)
            .has_value());
    auto no_home = Paths::from(env_of({}), 1);
    ASSERT_FALSE(no_home);
    EXPECT_EQ(no_home.error().kind(), ErrorKind::FailedPrecondition);
    EXPECT_FALSE(Paths::from(env_of({{"HOME", "relative"}}), 1));
}

TEST(PathsTest, FromEnvReadsTheProcessEnvironment) {
    ::setenv("LOCALD_HOME", "/tmp/from-env", 1);
    Paths paths = Paths::from_env().value();
    ::unsetenv("LOCALD_HOME");
    EXPECT_EQ(paths.run, "/tmp/from-env/run");
}

TEST(PathsTest, EnsurePrivateDirCreatesAndVerifies) {
    auto temp = TempDir::create("paths").release_value();
    std::string dir = temp.join("a/b/run");
    ASSERT_TRUE(ensure_private_dir(dir));
    EXPECT_EQ(stat_path(dir).value().st_mode & 07777, 0700u);
    EXPECT_EQ(stat_path(temp.join("a")).value().st_mode & 0777, 0700u);
    ASSERT_TRUE(ensure_private_dir(dir));  // idempotent

    std::string open_dir = temp.join("open");
    ASSERT_EQ(::mkdir(open_dir.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(open_dir.c_str(), 0755), 0);
    auto refused = ensure_private_dir(open_dir);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind(), ErrorKind::PermissionDenied);
    EXPECT_NE(refused.error().message().find("mode 0755"), std::string::npos);

    std::string link = temp.join("link");
    ASSERT_EQ(::symlink(dir.c_str(), link.c_str()), 0);
    EXPECT_NE(ensure_private_dir(link).error().message().find("symlink"), std::string::npos);

    ASSERT_TRUE(write_file(temp.join("file"), "x"));
    EXPECT_EQ(ensure_private_dir(temp.join("file")).error().kind(), ErrorKind::PermissionDenied);
    EXPECT_FALSE(ensure_private_dir(temp.join("file/sub")));
    EXPECT_FALSE(ensure_private_dir(""));
}

// Another user's directory: needs root to create it for them.
TEST(PathsTest, EnsurePrivateDirRefusesForeignOwner) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to chown a directory to another user";
    }
    auto temp = TempDir::create("paths-owner").release_value();
    std::string dir = temp.join("theirs");
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chown(dir.c_str(), 12345, 12345), 0);
    auto refused = ensure_private_dir(dir);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("owned by uid 12345"), std::string::npos);
}

// --- log -----------------------------------------------------------------

TEST(LogTest, LevelsParse) {
    EXPECT_EQ(parse_log_level("debug").value(), LogLevel::Debug);
    EXPECT_EQ(parse_log_level("INFO").value(), LogLevel::Info);
    EXPECT_EQ(parse_log_level("warning").value(), LogLevel::Warn);
    EXPECT_EQ(parse_log_level("Warn").value(), LogLevel::Warn);
    EXPECT_EQ(parse_log_level("error").value(), LogLevel::Error);
    EXPECT_EQ(parse_log_level("loud").error().kind(), ErrorKind::InvalidArgument);
    EXPECT_FALSE(parse_log_level(""));
    EXPECT_EQ(to_string(LogLevel::Warn), "warn");
}

TEST(LogTest, WritesToAFileFilteredByLevel) {
    auto temp = TempDir::create("log").release_value();
    std::string path = temp.join("locald.log");
    ASSERT_TRUE(set_log_file(path));
    ScopeGuard back_to_stderr([] { set_log_stderr(); });
    EXPECT_EQ(stat_path(path).value().st_mode & 0777, 0600u);
    set_log_level(LogLevel::Info);
    int evaluated = 0;
    auto count = [&] { return ++evaluated; };
    LOG_DEBUG("hidden {}", count());
    LOG_INFO("shown {} `{}`", 1, "x");
    LOG_WARN("warned");
    set_log_level(LogLevel::Error);
    LOG_WARN("hidden too");
    LOG_ERROR("failed: {}", 42);
    log(LogLevel::Error, "direct {}", "call");
    set_log_level(LogLevel::Info);
    EXPECT_EQ(evaluated, 0);  // arguments below the level are not evaluated
    std::string text = read_file(path, 10000).value();
    EXPECT_EQ(text.find("hidden"), std::string::npos) << text;
    // 2026-11-26T07:00:13.123Z info: shown 1 `x`
    EXPECT_NE(text.find("Z info: shown 1 `x`\n"), std::string::npos) << text;
    EXPECT_NE(text.find("Z warn: warned\n"), std::string::npos) << text;
    EXPECT_NE(text.find("Z error: failed: 42\n"), std::string::npos) << text;
    EXPECT_NE(text.find("Z error: direct call\n"), std::string::npos) << text;
    EXPECT_EQ(text[4], '-');
    EXPECT_EQ(text[10], 'T');
    // Appends, never truncates.
    ASSERT_TRUE(set_log_file(path));
    LOG_INFO("second");
    std::string after = read_file(path, 10000).value();
    EXPECT_EQ(after.substr(0, text.size()), text);
    EXPECT_EQ(set_log_file(temp.join("missing/dir/log")).error().kind(), ErrorKind::NotFound);
}

TEST(LogTest, LevelFromEnvironment) {
    ::setenv("LOCALD_LOG", "debug", 1);
    init_log_level_from_env();
    EXPECT_EQ(log_level(), LogLevel::Debug);
    EXPECT_TRUE(log_enabled(LogLevel::Debug));
    ::setenv("LOCALD_LOG", "error", 1);
    init_log_level_from_env();
    EXPECT_FALSE(log_enabled(LogLevel::Warn));
    ::setenv("LOCALD_LOG", "bogus", 1);
    init_log_level_from_env();  // warns, falls back to info
    EXPECT_EQ(log_level(), LogLevel::Info);
    ::unsetenv("LOCALD_LOG");
    set_log_level(LogLevel::Info);
}

// --- temp_dir, scope_guard, unique_handle ----------------------------------

TEST(TempDirTest, CreatedPrivateAndRemovedWithoutFollowingSymlinks) {
    auto victim = TempDir::create("victim").release_value();
    ASSERT_TRUE(write_file(victim.join("keep"), "x"));
    std::string path;
    {
        TempDir temp = TempDir::create("tdtest").release_value();
        path = temp.path();
        EXPECT_NE(path.find("/tdtest-"), std::string::npos);
        EXPECT_EQ(stat_path(path).value().st_mode & 0777, 0700u);
        ASSERT_TRUE(mkdir_p(temp.join("d/e"), 0755));
        ASSERT_EQ(::symlink(victim.path().c_str(), temp.join("d/link").c_str()), 0);
        TempDir moved = std::move(temp);
        EXPECT_EQ(moved.path(), path);
        EXPECT_TRUE(temp.path().empty());
    }
    EXPECT_FALSE(path_exists(path).value());
    EXPECT_TRUE(path_exists(victim.join("keep")).value());

    TempDir kept = TempDir::create_in(victim.path(), "kept").release_value();
    std::string kept_path = kept.release();
    EXPECT_TRUE(kept.path().empty());
    EXPECT_TRUE(path_exists(kept_path).value());
    TempDir removed = TempDir::create_in(victim.path(), "removed").release_value();
    std::string removed_path = removed.path();
    ASSERT_TRUE(removed.remove());
    EXPECT_FALSE(path_exists(removed_path).value());
    EXPECT_FALSE(TempDir::create("a/b"));
    EXPECT_EQ(TempDir::create_in("/nonexistent", "x").error().kind(), ErrorKind::NotFound);
}

TEST(ScopeGuardTest, RunsUnlessDismissed) {
    int runs = 0;
    {
        ScopeGuard guard([&] { ++runs; });
    }
    EXPECT_EQ(runs, 1);
    {
        ScopeGuard guard([&] { ++runs; });
        guard.dismiss();
    }
    EXPECT_EQ(runs, 1);
    {
        ScopeGuard guard([&] { ++runs; });
        ScopeGuard moved = std::move(guard);
    }
    EXPECT_EQ(runs, 2);  // once, by the moved-to guard
}

int g_freed = 0;
void free_int(int* value) {
    ++g_freed;
    delete value;
}
void free_void(void* value) {
    ++g_freed;
    std::free(value);
}

TEST(UniqueHandleTest, FreesOnceAndSupportsBothSpellings) {
    g_freed = 0;
    {
        UniqueHandle<int, free_int> pointee_form(new int(3));
        EXPECT_EQ(*pointee_form.get(), 3);
        UniqueHandle<int*, free_int> pointer_form(new int(4));
        UniqueHandle<int*, free_int> moved = std::move(pointer_form);
        EXPECT_FALSE(pointer_form);
        EXPECT_TRUE(moved);
        UniqueHandle<void, free_void> opaque(std::malloc(8));  // like CURL (typedef void)
        UniqueHandle<int, free_int> empty;
        EXPECT_FALSE(empty);
    }
    EXPECT_EQ(g_freed, 3);
    UniqueHandle<int, free_int> released(new int(5));
    int* raw = released.release();
    EXPECT_FALSE(released);
    delete raw;
    UniqueHandle<int, free_int> reset(new int(6));
    reset.reset(new int(7));
    EXPECT_EQ(g_freed, 4);
    EXPECT_EQ(*reset.get(), 7);
}

}  // namespace
}  // namespace locald::base
