// compute_launch on hand-made finished layers dirs: process selection, the
// args rules per Platform/Buildpack API, the exact launch environment
// (§4.4), exec.d/profile.d order, shell processes run by a real bash, and
// the Dump Layer host rewrite (§7).
#include "cnb/launch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cnb_test_util.h"

namespace locald::cnb {
namespace {

using testing::read_text;
using testing::ScratchDir;
using testing::write_text;
namespace fs = std::filesystem;

class CnbLaunch : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_FALSE(m_dir.path().empty());
        fs::create_directories(m_dir / "layers/config");
        m_metadata.buildpacks = {{"bp/one", "1", "0.10", ""}, {"two", "1", "0.8", ""}};
        m_metadata.processes = {
            {"web", {"server"}, {"--port", "80"}, true, false, "", "bp/one", {}},
            {"fixed", {"java", "-jar", "app.jar"}, {"default-arg"}, true, false, "", "bp/one", {}},
            {"old", {"rackup"}, {"-p", "1"}, true, false, "", "two", {}},
            {"sub", {"./bin/run"}, {}, true, false, "/workspace/sub", "bp/one", {}},
        };
        m_metadata.default_process = "web";
        m_request.layers_dir = m_dir / "layers";
        m_request.base_env = {"PATH=/cnb/process:/usr/bin:/cnb/lifecycle:/bin",
                              "CNB_LAYERS_DIR=/layers",
                              "CNB_APP_DIR=/workspace",
                              "CNB_PROCESS_TYPE=web",
                              "CNB_PLATFORM_API=0.12",
                              "CNB_DEPRECATION_MODE=quiet",
                              "USER_SET=mine",
                              "TOOLS=user"};
    }
    std::string layers(const std::string& rel) const { return m_dir / ("layers/" + rel); }
    void write_metadata(ApiVersion platform = {0, 12}) {
        write_text(layers("config/metadata.toml"), render_metadata_toml(m_metadata, platform));
    }
    base::Result<LaunchPlan> launch() {
        write_metadata();
        return compute_launch(m_request);
    }

    ScratchDir m_dir;
    BuildMetadata m_metadata;
    LaunchRequest m_request;
};

TEST_F(CnbLaunch, TheDefaultProcessRunsWithItsArgs) {
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->process_type, "web");
    EXPECT_EQ(plan->buildpack_id, "bp/one");
    EXPECT_TRUE(plan->direct);
    EXPECT_EQ(plan->argv, (std::vector<std::string>{"server", "--port", "80"}));
    EXPECT_EQ(plan->executable, "");  // searched in PATH by the container launcher
    EXPECT_EQ(plan->working_dir, "/workspace");
}

TEST_F(CnbLaunch, ArgsFollowThePlatformAndBuildpackApis) {
    struct Case {
        std::string type;
        std::vector<std::string> user;
        ApiVersion platform;
        std::vector<std::string> argv;
    };
    std::vector<Case> cases = {
        // command has fixed args: command[1:] + (user args, else process args)
        {"fixed", {}, {0, 12}, {"java", "-jar", "app.jar", "default-arg"}},
        {"fixed", {"u"}, {0, 12}, {"java", "-jar", "app.jar", "u"}},
        // one-element command, no user args: args unchanged
        {"web", {}, {0, 12}, {"server", "--port", "80"}},
        // Buildpack API ≥0.9 (bp/one is 0.10): user args replace
        {"web", {"--port", "81"}, {0, 12}, {"server", "--port", "81"}},
        // Buildpack API <0.9 (two is 0.8): user args are appended
        {"old", {"-q"}, {0, 12}, {"rackup", "-p", "1", "-q"}},
        // Platform API <0.10: always appended (command[1:] moved into args)
        {"fixed", {"u"}, {0, 9}, {"java", "-jar", "app.jar", "default-arg", "u"}},
        {"web", {"x"}, {0, 9}, {"server", "--port", "80", "x"}},
    };
    for (const auto& c : cases) {
        write_metadata(c.platform);
        m_request.process_type = c.type;
        m_request.user_args = c.user;
        m_request.platform_api = fmt::format("{}.{}", c.platform.major, c.platform.minor);
        auto plan = compute_launch(m_request);
        ASSERT_TRUE(plan) << plan.error().to_string();
        EXPECT_EQ(plan->argv, c.argv) << c.type << " platform " << m_request.platform_api;
    }
}

TEST_F(CnbLaunch, SelectionErrorsAndUserCommands) {
    m_request.process_type = "nope";
    auto plan = launch();
    ASSERT_FALSE(plan);
    EXPECT_NE(
        plan.error().message().find("no process type `nope` (processes: web, fixed, old, sub)"),
        std::string::npos)
        << plan.error().message();

    m_metadata.default_process.clear();
    m_request.process_type.clear();
    plan = launch();
    ASSERT_FALSE(plan);
    EXPECT_EQ(plan.error().message(), "when there is no default process a command is required");

    m_request.user_args = {"echo", "hi"};
    plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->process_type, "");
    EXPECT_TRUE(plan->direct);
    EXPECT_EQ(plan->argv, (std::vector<std::string>{"echo", "hi"}));

    m_request.user_command_direct = false;
    plan = launch();
    ASSERT_TRUE(plan);
    EXPECT_FALSE(plan->direct);
    EXPECT_EQ(plan->executable, "/bin/bash");
}

TEST_F(CnbLaunch, WorkingDirAndRelativeCommands) {
    m_request.process_type = "sub";
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->working_dir, "/workspace/sub");
    // LookPath happens in <app>, before the chdir to working-dir.
    EXPECT_EQ(plan->executable, "/workspace/./bin/run");
    EXPECT_EQ(plan->argv[0], "./bin/run");
}

TEST_F(CnbLaunch, ExecEnvMakesAProcessIneligibleFromPlatform015) {
    m_metadata.processes[0].exec_env = {"test"};
    m_request.platform_api = "0.15";
    auto plan = launch();
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message().find("not eligible in exec env `production`"),
              std::string::npos);
    m_request.exec_env = "test";
    EXPECT_TRUE(launch());
    m_request.platform_api = "0.14";
    m_request.exec_env = "production";
    EXPECT_TRUE(launch());
}

TEST_F(CnbLaunch, UnsupportedBuildpackApiInMetadataIsAnError) {
    m_metadata.buildpacks[1].api = "0.6";
    auto plan = launch();
    ASSERT_FALSE(plan);
    EXPECT_EQ(plan.error().kind(), base::ErrorKind::Unsupported);
    EXPECT_NE(plan.error().message().find("/layers/config/metadata.toml"), std::string::npos);
}

TEST_F(CnbLaunch, AnUnusableBuildpackIdInMetadataNamesTheFile) {
    m_metadata.buildpacks[1].id = "../x";
    auto plan = launch();
    ASSERT_FALSE(plan);
    EXPECT_EQ(plan.error().kind(), base::ErrorKind::InvalidArgument);
    EXPECT_NE(plan.error().message().find("/layers/config/metadata.toml: buildpack id `../x`"),
              std::string::npos)
        << plan.error().message();
}

// §4.4 step 4: base env cleaned; per buildpack the root dirs of ALL its
// layers first, then env/, env.launch/, env.launch/<type>/ per layer;
// override files clobber user-set values.
TEST_F(CnbLaunch, TheEnvironmentIsGroupedPerBuildpack) {
    fs::create_directories(layers("bp_one/a/bin"));
    write_text(layers("bp_one/a/env/PATH.prepend"), "/pre");
    write_text(layers("bp_one/a/env/PATH.delim"), ":");
    write_text(layers("bp_one/a/env/TOOLS"), "/layers/bp_one/a");
    write_text(layers("bp_one/a/env.build/BUILD_ONLY"), "x");
    write_text(layers("bp_one/a/env.launch/LAUNCH"), "l");
    write_text(layers("bp_one/a/env.launch/web/WEB_ONLY"), "w");
    write_text(layers("bp_one/a/env.launch/worker/WORKER_ONLY"), "k");
    fs::create_directories(layers("bp_one/b/bin"));
    fs::create_directories(layers("bp_one/b/lib"));
    fs::create_directories(layers("bp_one/b/include"));  // not a launch root dir
    fs::create_directories(layers("bp_one/c.ignore/bin"));
    fs::create_directories(layers("two/z/bin"));
    write_text(layers("two/z/env/USER_SET.default"), "bp");
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->env, (EnvMap{{"PATH",
                                  "/layers/two/z/bin:/pre:/layers/bp_one/b/bin:/layers/bp_one/a/"
                                  "bin:/usr/bin:/bin"},
                                 {"LD_LIBRARY_PATH", "/layers/bp_one/b/lib"},
                                 {"TOOLS", "/layers/bp_one/a"},
                                 {"LAUNCH", "l"},
                                 {"WEB_ONLY", "w"},
                                 {"USER_SET", "mine"}}));
}

TEST_F(CnbLaunch, LaunchLayersOnlySkipsBuildAndCacheLayersOfABuildsLayersDir) {
    write_text(layers("bp_one/run.toml"), "[types]\nlaunch = true\n");
    write_text(layers("bp_one/run/env/RUN"), "r");
    write_text(layers("bp_one/tools.toml"), "[types]\nbuild = true\ncache = true\n");
    write_text(layers("bp_one/tools/env/TOOLS_LAYER"), "t");
    write_text(layers("bp_one/notoml/env/NOTOML"), "n");
    m_request.layers = LayerSelection::LaunchLayersOnly;
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->env.count("RUN"), 1u);
    EXPECT_EQ(plan->env.count("TOOLS_LAYER"), 0u);
    EXPECT_EQ(plan->env.count("NOTOML"), 0u);
    m_request.layers = LayerSelection::AllDirectories;
    plan = launch();
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->env.count("TOOLS_LAYER"), 1u);
    EXPECT_EQ(plan->env.count("NOTOML"), 1u);
}

TEST_F(CnbLaunch, ExecDProgramsAreListedInLauncherOrderAndTheirOutputOverrides) {
    write_text(layers("bp_one/a/exec.d/2-second"), "", 0755);
    write_text(layers("bp_one/a/exec.d/1-first"), "", 0755);
    write_text(layers("bp_one/a/exec.d/web/typed"), "", 0755);
    write_text(layers("bp_one/a/exec.d/worker/other"), "", 0755);
    write_text(layers("two/b/exec.d/last"), "", 0755);
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->exec_d,
              (std::vector<std::string>{
                  "/layers/bp_one/a/exec.d/1-first", "/layers/bp_one/a/exec.d/2-second",
                  "/layers/bp_one/a/exec.d/web/typed", "/layers/two/b/exec.d/last"}));
    EnvMap env{{"A", "old"}};
    ASSERT_TRUE(apply_exec_d_output(env, "A = \"new\"\nB = \"b\"\n", "x"));
    EXPECT_EQ(env, (EnvMap{{"A", "new"}, {"B", "b"}}));
    auto bad = apply_exec_d_output(env, "A = 1\n", "/layers/x/exec.d/p");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("exec.d program `/layers/x/exec.d/p`"), std::string::npos);
    EXPECT_NE(bad.error().message().find("expected a string"), std::string::npos);
}

int run_bash(const LaunchPlan& plan, const std::string& out) {
    pid_t pid = ::fork();
    if (pid == 0) {
        int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        std::vector<char*> argv;
        for (const auto& arg : plan.argv) {
            argv.push_back(const_cast<char*>(arg.c_str()));
        }
        argv.push_back(nullptr);
        std::vector<std::string> env_list = env_to_list(plan.env);
        std::vector<char*> envp;
        for (auto& entry : env_list) {
            envp.push_back(entry.data());
        }
        envp.push_back(nullptr);
        ::execve(plan.executable.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A shell process (Buildpack API <0.9, direct = false), run by the real
// bash: profile.d scripts in order, then .profile, cd, and `$VAR` in args
// expanded.
TEST_F(CnbLaunch, AShellProcessSourcesProfilesAndExpandsArgs) {
    if (!fs::exists("/bin/bash")) {
        GTEST_SKIP() << "no /bin/bash";
    }
    std::string app = m_dir / "app";
    fs::create_directories(app + "/sub");
    write_text(app + "/.profile", "export ORDER=\"$ORDER app\"\n");
    write_text(layers("two/z/profile.d/b.sh"), "export ORDER=\"$ORDER z-b\"\n");
    write_text(layers("two/z/profile.d/a.sh"), "export ORDER=\"$ORDER z-a\"\nexport GREET=hi\n");
    write_text(layers("two/z/profile.d/shell/t.sh"), "export ORDER=\"$ORDER typed\"\n");
    m_metadata.processes.push_back({"shell",
                                    {"echo"},
                                    {"$GREET", "$ORDER", "$(pwd)"},
                                    false,
                                    false,
                                    m_dir / "app/sub",
                                    "two",
                                    {}});
    m_metadata.processes.push_back(
        {"script", {"echo \"$GREET script\""}, {}, false, false, "", "two", {}});
    m_request.process_type = "shell";
    m_request.app_path = app;
    m_request.layers_path = m_dir / "layers";
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_FALSE(plan->direct);
    EXPECT_EQ(plan->profile_d, (std::vector<std::string>{layers("two/z/profile.d/a.sh"),
                                                         layers("two/z/profile.d/b.sh"),
                                                         layers("two/z/profile.d/shell/t.sh")}));
    std::string out = m_dir / "out";
    ASSERT_EQ(run_bash(*plan, out), 0);
    // ORDER starts empty, so it has a leading space (the arg is quoted).
    EXPECT_EQ(read_text(out), "hi  z-a z-b typed app " + app + "/sub\n");

    m_request.process_type = "script";
    plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    ASSERT_EQ(run_bash(*plan, out), 0);
    EXPECT_EQ(read_text(out), "hi script\n");
}

// §7: the Dump Layer — env-file values, command[0], working-dir and
// absolute args under /layers or /workspace move to the host dirs; root
// dirs are host paths; the command is looked up in the host PATH.
TEST_F(CnbLaunch, HostModeRewritesContainerPathsToTheDump) {
    std::string app = m_dir / "app";
    fs::create_directories(app + "/sub");
    write_text(layers("bp_one/a/bin/server"), "#!/bin/sh\n", 0755);
    write_text(layers("bp_one/a/env/TOOLS"), "/layers/bp_one/a");
    write_text(layers("bp_one/a/env/LIST"), "/layers/bp_one/a/x:/usr/lib:/workspace/y:/layersfoo");
    write_text(layers("bp_one/a/env/OPT"), "-Dx=/layers/bp_one/a");
    m_metadata.processes.push_back({"abs",
                                    {"/layers/bp_one/a/bin/server"},
                                    {"/workspace/conf", "/etc/x", "rel"},
                                    true,
                                    false,
                                    "/workspace/sub",
                                    "bp/one",
                                    {}});
    m_request.host_mode = true;
    m_request.host_app_dir = app;
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    const std::string host = m_dir / "layers";
    EXPECT_EQ(plan->env["PATH"], host + "/bp_one/a/bin:/usr/bin:/bin");
    EXPECT_EQ(plan->env["TOOLS"], host + "/bp_one/a");
    EXPECT_EQ(plan->env["LIST"], host + "/bp_one/a/x:/usr/lib:" + app + "/y:/layersfoo");
    EXPECT_EQ(plan->env["OPT"], "-Dx=/layers/bp_one/a");         // not a path component: as is
    EXPECT_EQ(plan->executable, host + "/bp_one/a/bin/server");  // found in the host PATH
    EXPECT_EQ(plan->argv[0], "server");
    EXPECT_EQ(plan->working_dir, app);

    m_request.process_type = "abs";
    plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->executable, host + "/bp_one/a/bin/server");
    EXPECT_EQ(plan->argv, (std::vector<std::string>{host + "/bp_one/a/bin/server", app + "/conf",
                                                    "/etc/x", "rel"}));
    EXPECT_EQ(plan->working_dir, app + "/sub");

    m_metadata.processes[0].command = {"not-there"};
    m_request.process_type = "web";
    plan = launch();
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message().find("`not-there`: not found in PATH"), std::string::npos);
}

// libpak (Paketo) links each exec.d helper to its multi-call binary by the
// absolute container path (`exec.d/0-name -> /layers/<bp>/helper/helper`)
// and dispatches on argv[0]. Resolved inside the layers dir that target is
// `<layers>/layers/…`, which does not exist: the helpers were silently
// skipped. They run, from the dump on the host (argv[0] stays the link).
TEST_F(CnbLaunch, ExecDAndProfileDLinksToTheLayersPathAreFollowedThere) {
    std::string app = m_dir / "app";
    fs::create_directories(app);
    write_text(layers("bp_one/helper/helper"),
               "#!/bin/sh\nprintf 'HELPER = \"%s\"\\n' \"$(basename \"$0\")\" >&3\n", 0755);
    fs::create_directories(layers("bp_one/helper/exec.d"));
    fs::create_symlink("/layers/bp_one/helper/helper", layers("bp_one/helper/exec.d/0-name"));
    write_text(layers("bp_one/helper/prof.sh"), "export FROM_PROFILE=1\n");
    fs::create_directories(layers("bp_one/helper/profile.d"));
    fs::create_symlink("/layers/bp_one/helper/prof.sh", layers("bp_one/helper/profile.d/p.sh"));
    // Outside the layers path, or dangling: not listed (as before).
    fs::create_symlink("/usr/bin/env", layers("bp_one/helper/exec.d/1-host"));
    fs::create_symlink("/layers/bp_one/helper/missing", layers("bp_one/helper/exec.d/2-dangling"));
    fs::create_symlink("/layers/../bp_one/helper/helper", layers("bp_one/helper/exec.d/3-dotdot"));
    m_metadata.processes[0].command = {"/bin/true"};
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->exec_d, std::vector<std::string>{"/layers/bp_one/helper/exec.d/0-name"});

    m_request.host_mode = true;
    m_request.host_app_dir = app;
    m_request.user_args = {"true"};
    m_request.user_command_direct = false;
    plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    const std::string host = m_dir / "layers";
    EXPECT_EQ(plan->exec_d, std::vector<std::string>{host + "/bp_one/helper/exec.d/0-name"});
    EXPECT_EQ(plan->profile_d, std::vector<std::string>{host + "/bp_one/helper/prof.sh"});
    auto ran = run_exec_d_on_host(*plan, app);
    ASSERT_TRUE(ran) << ran.error().to_string();
    // It ran (through its target: a script's $0 is the file the kernel
    // opened, so argv[0] — still the link — cannot be seen from sh).
    EXPECT_EQ(plan->env["HELPER"], "helper");
}

// A relative working-dir is relative to the app dir (the reference's
// launcher chdirs to <app> first); the host runner chdirs to the plan's
// working_dir from wherever it was started, so it must be absolute there.
TEST_F(CnbLaunch, RelativeWorkingDirIsUnderTheAppDir) {
    std::string app = m_dir / "app";
    fs::create_directories(app + "/sub");
    m_metadata.processes[0].working_dir = "sub";
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->working_dir, "/workspace/sub");
    m_request.host_mode = true;
    m_request.host_app_dir = app;
    m_metadata.processes[0].command = {"/bin/true"};
    plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->working_dir, app + "/sub");
}

// exec.d output names become host environment names: a NUL inside one
// would make execve see a different (or `=`-less) entry.
TEST(CnbExecD, KeysWithNulAreRejected) {
    EnvMap env;
    auto applied = apply_exec_d_output(env, "\"PATH\\u0000X\" = \"/evil\"\n", "prog");
    ASSERT_FALSE(applied);
    EXPECT_NE(applied.error().message().find("cannot be an environment variable"),
              std::string::npos)
        << applied.error().message();
    EXPECT_TRUE(env.empty());
}

// exec.d on the host: fd 3 carries TOML, each program sees the env as
// updated by the earlier ones, cwd is the app, a failure names the program.
TEST_F(CnbLaunch, ExecDRunsOnTheHostWithFd3AndTheCurrentEnv) {
    std::string app = m_dir / "app";
    fs::create_directories(app);
    write_text(layers("bp_one/a/env/TOOLS"), "/layers/bp_one/a");
    write_text(layers("bp_one/a/exec.d/1-first"),
               "#!/bin/sh\nprintf 'FIRST = \"%s|%s\"\\n' \"$TOOLS\" \"$(pwd)\" >&3\n", 0755);
    write_text(layers("bp_one/a/exec.d/2-second"),
               "#!/bin/sh\nprintf 'SECOND = \"saw %s\"\\nTOOLS = \"over\"\\n' \"$FIRST\" >&3\n",
               0755);
    m_metadata.processes[0].command = {"/bin/true"};
    m_request.host_mode = true;
    m_request.host_app_dir = app;
    auto plan = launch();
    ASSERT_TRUE(plan) << plan.error().to_string();
    ASSERT_EQ(plan->exec_d.size(), 2u);
    auto ran = run_exec_d_on_host(*plan, app);
    ASSERT_TRUE(ran) << ran.error().to_string();
    const std::string host = m_dir / "layers";
    EXPECT_EQ(plan->env["FIRST"], host + "/bp_one/a|" + app);
    EXPECT_EQ(plan->env["SECOND"], "saw " + host + "/bp_one/a|" + app);
    EXPECT_EQ(plan->env["TOOLS"], "over");

    write_text(layers("bp_one/a/exec.d/3-fails"), "#!/bin/sh\nexit 3\n", 0755);
    plan = launch();
    ASSERT_TRUE(plan);
    ran = run_exec_d_on_host(*plan, app);
    ASSERT_FALSE(ran);
    EXPECT_NE(ran.error().message().find("exec.d/3-fails` failed (exit status 3)"),
              std::string::npos)
        << ran.error().message();
}

TEST(CnbRewrite, OnlyWholeComponentsUnderThePrefixesMove) {
    std::vector<std::pair<std::string, std::string>> p = {{"/layers", "/h/l"},
                                                          {"/workspace", "/h/app"}};
    EXPECT_EQ(rewrite_path_list("/layers", p), "/h/l");
    EXPECT_EQ(rewrite_path_list("/layers/a:/workspace:/x", p), "/h/l/a:/h/app:/x");
    EXPECT_EQ(rewrite_path_list("/layersx:layers/a::", p), "/layersx:layers/a::");
}

}  // namespace
}  // namespace locald::cnb
