// run_build's sequencing and environment with an injected runner: each
// "buildpack" is a function writing into the host layers dir the way a
// bin/build would, so what the next one sees is checked exactly.
#include "cnb/build.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>

#include "cnb_test_util.h"

namespace locald::cnb {
namespace {

using testing::read_text;
using testing::ScratchDir;
using testing::write_text;
namespace fs = std::filesystem;

class CnbBuild : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_FALSE(m_dir.path().empty());
        for (const char* sub : {"layers", "platform/env", "build-config/env", "scratch"}) {
            fs::create_directories(m_dir / sub);
        }
        m_request.layers_dir = m_dir / "layers";
        m_request.platform_dir = m_dir / "platform";
        m_request.build_config_dir = m_dir / "build-config";
        m_request.scratch_dir = m_dir / "scratch";
        m_request.base_env = {"PATH=/usr/bin:/bin", "HOME=/home/cnb", "SECRET=drop-me",
                              "CNB_USER_ID=1000"};
        m_request.target = {"linux", "amd64", "", "ubuntu", "22.04"};
        m_request.warn = [this](const std::string& w) { m_warnings.push_back(w); };
    }

    std::string layers(const std::string& rel) const { return m_dir / ("layers/" + rel); }

    base::Result<BuildResult> build() {
        return run_build(m_request, [this](const BuildpackInvocation& inv) -> base::Result<int> {
            m_invocations.push_back(inv);
            // The plan file exists only during the run.
            std::string plan_rel = inv.argv[3].substr(inv.plan_container_dir.size());
            m_plans[inv.buildpack] = read_text(inv.plan_host_dir + plan_rel);
            auto it = m_buildpacks.find(inv.buildpack);
            return it == m_buildpacks.end() ? 0 : it->second(inv);
        });
    }

    EnvMap env_of(size_t i) const { return env_from_list(m_invocations.at(i).env); }

    ScratchDir m_dir;
    BuildRequest m_request;
    std::map<std::string, std::function<int(const BuildpackInvocation&)>> m_buildpacks;
    std::vector<BuildpackInvocation> m_invocations;
    std::map<std::string, std::string> m_plans;
    std::vector<std::string> m_warnings;
};

TEST_F(CnbBuild, ArgvCwdAndCnbVariablesFollowEachBuildpacksApi) {
    m_request.group = {{"old/bp", "1", "0.7", "", false, ""},
                       {"mid", "2", "0.8", "", false, ""},
                       {"targets", "3", "0.10", "", false, ""},
                       {"new", "4", "0.12", "", false, "/custom/dir"}};
    auto result = build();
    ASSERT_TRUE(result) << result.error().to_string();
    ASSERT_EQ(m_invocations.size(), 4u);
    const auto& first = m_invocations[0];
    EXPECT_EQ(first.buildpack, "old/bp@1");
    ASSERT_EQ(first.argv.size(), 4u);
    EXPECT_EQ(first.argv[0], "/cnb/buildpacks/old_bp/1/bin/build");
    EXPECT_EQ(first.argv[1], "/layers/old_bp");
    EXPECT_EQ(first.argv[2], "/platform");
    EXPECT_TRUE(first.argv[3].starts_with("/tmp/old_bp-")) << first.argv[3];
    EXPECT_TRUE(first.argv[3].ends_with("/old_bp/plan.toml")) << first.argv[3];
    EXPECT_EQ(first.cwd, "/workspace");
    EXPECT_EQ(m_invocations[3].argv[0], "/custom/dir/bin/build");

    // 0.7: only CNB_BUILDPACK_DIR; the base env is filtered.
    EXPECT_EQ(env_of(0), (EnvMap{{"CNB_BUILDPACK_DIR", "/cnb/buildpacks/old_bp/1"},
                                 {"HOME", "/home/cnb"},
                                 {"PATH", "/usr/bin:/bin"}}));
    // 0.8: the dir variables.
    EnvMap mid = env_of(1);
    EXPECT_EQ(mid["CNB_LAYERS_DIR"], "/layers/mid");
    EXPECT_EQ(mid["CNB_PLATFORM_DIR"], "/platform");
    EXPECT_EQ(mid["CNB_BP_PLAN_PATH"], m_invocations[1].argv[3]);
    EXPECT_EQ(mid.count("CNB_TARGET_OS"), 0u);
    // 0.10: targets (os/arch always, the rest when known).
    EnvMap targets = env_of(2);
    EXPECT_EQ(targets["CNB_TARGET_OS"], "linux");
    EXPECT_EQ(targets["CNB_TARGET_ARCH"], "amd64");
    EXPECT_EQ(targets.count("CNB_TARGET_ARCH_VARIANT"), 0u);
    EXPECT_EQ(targets["CNB_TARGET_DISTRO_NAME"], "ubuntu");
    EXPECT_EQ(targets["CNB_TARGET_DISTRO_VERSION"], "22.04");
    EXPECT_EQ(targets.count("CNB_EXEC_ENV"), 0u);
    // 0.12: exec env.
    EXPECT_EQ(env_of(3)["CNB_EXEC_ENV"], "production");
    // Each buildpack got its layers dir, 0777.
    struct stat st;
    ASSERT_EQ(::stat(layers("old_bp").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0777u);
    EXPECT_FALSE(result->failed);
}

TEST_F(CnbBuild, UnsupportedApiIsAnUnsupportedError) {
    m_request.group = {{"x", "1", "0.6", "", false, ""}};
    auto result = build();
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind(), base::ErrorKind::Unsupported);
    EXPECT_NE(result.error().message().find("`x@1`"), std::string::npos);
    EXPECT_TRUE(m_invocations.empty());
}

// §3.5: build=true layers of earlier buildpacks feed later ones (root dirs,
// then env/, then env.build/, per layer in <layer>.toml order); launch-only
// layers and the writer itself are unaffected; user and build-config env go
// on a per-invocation copy.
TEST_F(CnbBuild, LayerEnvReachesOnlyLaterBuildpacksAndUserEnvWins) {
    write_text(m_dir / "platform/env/PATH", "/user/bin");
    write_text(m_dir / "platform/env/USER_VAR", "u");
    write_text(m_dir / "platform/env/SHARED", "from-user");
    write_text(m_dir / "build-config/env/OPERATOR", "op");
    write_text(m_dir / "build-config/env/SHARED", "from-operator");  // default: user wins
    write_text(m_dir / "build-config/env/FORCED.override", "forced");
    m_request.group = {{"a", "1", "0.10", "", false, ""},
                       {"b", "1", "0.10", "", false, ""},
                       {"c", "1", "0.10", "", true, ""}};
    m_buildpacks["a@1"] = [this](const BuildpackInvocation&) {
        // "tools" sorts after "a-lib" (a-lib.toml < tools.toml): applied second.
        write_text(layers("a/tools.toml"), "[types]\nbuild = true\n");
        fs::create_directories(layers("a/tools/bin"));
        write_text(layers("a/tools/env/PATH.prepend"), "/pre");
        write_text(layers("a/tools/env/PATH.delim"), ":");
        write_text(layers("a/tools/env/TOOLS"), "t\n");
        write_text(layers("a/tools/env.build/BUILD_ONLY.default"), "b");
        write_text(layers("a/tools/env.launch/LAUNCH_ONLY"), "l");
        write_text(layers("a/a-lib.toml"), "[types]\nbuild = true\n");
        fs::create_directories(layers("a/a-lib/lib"));
        write_text(layers("a/run.toml"), "[types]\nlaunch = true\n");
        write_text(layers("a/run/env/RUN_ONLY"), "r");
        return 0;
    };
    auto result = build();
    ASSERT_TRUE(result) << result.error().to_string();
    ASSERT_EQ(m_invocations.size(), 3u);

    EnvMap a = env_of(0);
    EXPECT_EQ(a["PATH"], "/user/bin:/usr/bin:/bin");
    EXPECT_EQ(a["USER_VAR"], "u");
    EXPECT_EQ(a["SHARED"], "from-user");
    EXPECT_EQ(a["OPERATOR"], "op");
    EXPECT_EQ(a["FORCED"], "forced");
    EXPECT_EQ(a.count("TOOLS"), 0u);
    EXPECT_EQ(a.count("SECRET"), 0u);
    EXPECT_EQ(a.count("CNB_USER_ID"), 0u);

    EnvMap b = env_of(1);
    // Root dirs first, so the layer's own PATH.prepend lands before its bin.
    EXPECT_EQ(b["PATH"], "/user/bin:/pre:/layers/a/tools/bin:/usr/bin:/bin");
    EXPECT_EQ(b["LD_LIBRARY_PATH"], "/layers/a/a-lib/lib");
    EXPECT_EQ(b["LIBRARY_PATH"], "/layers/a/a-lib/lib");
    EXPECT_EQ(b["TOOLS"], "t\n");
    EXPECT_EQ(b["BUILD_ONLY"], "b");
    EXPECT_EQ(b.count("LAUNCH_ONLY"), 0u);
    EXPECT_EQ(b.count("RUN_ONLY"), 0u);

    // clear-env: no <platform>/env, build-config still applies.
    EnvMap c = env_of(2);
    EXPECT_EQ(c["PATH"], "/pre:/layers/a/tools/bin:/usr/bin:/bin");
    EXPECT_EQ(c.count("USER_VAR"), 0u);
    EXPECT_EQ(c["SHARED"], "from-operator");
    EXPECT_EQ(c["TOOLS"], "t\n");

    ASSERT_EQ(result->buildpacks[0].layers.size(), 3u);
    EXPECT_EQ(result->buildpacks[0].layers[0].name, "a-lib");
    EXPECT_EQ(result->buildpacks[0].layers[2].name, "tools");
}

TEST_F(CnbBuild, PlanEntriesGoToProvidersAndUnmetOnesStayForTheNext) {
    m_request.group = {{"a", "1", "0.10", "", false, ""}, {"b", "1", "0.10", "", false, ""}};
    m_request.plan = {
        {{"a", "b"}, {{"node", "version = \"20\"\n"}, {"node", "[inner]\nx = 1\n"}}},
        {{"a"}, {{"npm", ""}}},
        {{"b"}, {{"yarn", ""}}},
    };
    m_buildpacks["a@1"] = [this](const BuildpackInvocation&) {
        write_text(layers("a/build.toml"), "[[unmet]]\nname = \"node\"\n");
        return 0;
    };
    auto result = build();
    ASSERT_TRUE(result) << result.error().to_string();
    const std::string& plan_a = m_plans["a@1"];
    EXPECT_NE(plan_a.find("name = 'node'"), std::string::npos) << plan_a;
    EXPECT_NE(plan_a.find("version = '20'"), std::string::npos) << plan_a;
    EXPECT_NE(plan_a.find("[entries.metadata.inner]"), std::string::npos) << plan_a;
    EXPECT_NE(plan_a.find("name = 'npm'"), std::string::npos) << plan_a;
    EXPECT_EQ(plan_a.find("yarn"), std::string::npos) << plan_a;
    // b gets node (unmet by a) and yarn, not npm (met by a).
    const std::string& plan_b = m_plans["b@1"];
    EXPECT_NE(plan_b.find("name = 'node'"), std::string::npos) << plan_b;
    EXPECT_NE(plan_b.find("name = 'yarn'"), std::string::npos) << plan_b;
    EXPECT_EQ(plan_b.find("npm"), std::string::npos) << plan_b;
    EXPECT_EQ(result->buildpacks[0].unmet, (std::vector<std::string>{"node"}));
    EXPECT_TRUE(result->remaining_plan.empty());
}

TEST_F(CnbBuild, AnUnmetNameNotInThePlanIsAnError) {
    m_request.group = {{"a", "1", "0.10", "", false, ""}};
    m_request.plan = {{{"a"}, {{"node", ""}}}};
    m_buildpacks["a@1"] = [this](const BuildpackInvocation&) {
        write_text(layers("a/build.toml"), "[[unmet]]\nname = \"python\"\n");
        return 0;
    };
    auto result = build();
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message().find("/layers/a/build.toml"), std::string::npos);
    EXPECT_NE(result.error().message().find("unmet `python`"), std::string::npos);
}

TEST_F(CnbBuild, ANonZeroExitStopsTheBuildWithoutMetadata) {
    m_request.group = {{"a", "1", "0.10", "", false, ""}, {"b", "1", "0.10", "", false, ""}};
    m_buildpacks["a@1"] = [](const BuildpackInvocation&) { return 3; };
    auto result = build();
    ASSERT_TRUE(result) << result.error().to_string();
    EXPECT_TRUE(result->failed);
    EXPECT_EQ(result->failed_buildpack, "a@1");
    EXPECT_EQ(result->failed_status, 3);
    EXPECT_EQ(m_invocations.size(), 1u);
    EXPECT_FALSE(fs::exists(layers("config/metadata.toml")));
}

TEST_F(CnbBuild, ARunnerErrorIsAnErrorNamingTheBuildpack) {
    m_request.group = {{"a", "1", "0.10", "", false, ""}};
    auto result = run_build(m_request, [](const BuildpackInvocation&) -> base::Result<int> {
        return base::not_found("no such file");
    });
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message().find("running buildpack `a@1`"), std::string::npos);
}

TEST_F(CnbBuild, LayersWithoutTypesAreRenamedAsideAndNeverFeedTheEnv) {
    m_request.group = {{"a", "1", "0.10", "", false, ""}, {"b", "1", "0.10", "", false, ""}};
    m_buildpacks["a@1"] = [this](const BuildpackInvocation&) {
        write_text(layers("a/tmp.toml"), "[types]\nbuild = false\n");
        write_text(layers("a/tmp/env/LEAK"), "x");
        write_text(layers("a/notoml/env/LEAK2"), "x");
        return 0;
    };
    auto result = build();
    ASSERT_TRUE(result) << result.error().to_string();
    EXPECT_FALSE(fs::exists(layers("a/tmp")));
    EXPECT_TRUE(fs::exists(layers("a/tmp.ignore/env/LEAK")));
    EXPECT_TRUE(fs::exists(layers("a/notoml")));  // a dir without toml is just a dir
    EnvMap b = env_of(1);
    EXPECT_EQ(b.count("LEAK"), 0u);
    EXPECT_EQ(b.count("LEAK2"), 0u);
    EXPECT_TRUE(result->buildpacks[0].layers.empty());
}

TEST_F(CnbBuild, MalformedLayerAndLaunchTomlsAreErrorsNamingTheFile) {
    m_request.group = {{"a", "1", "0.10", "", false, ""}};
    m_buildpacks["a@1"] = [this](const BuildpackInvocation&) {
        write_text(layers("a/jdk.toml"), "launch = true\n");
        return 0;
    };
    auto result = build();
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message().find("/layers/a/jdk.toml:1"), std::string::npos)
        << result.error().message();
    EXPECT_NE(result.error().message().find("under [types]"), std::string::npos);

    m_invocations.clear();
    m_buildpacks["a@1"] = [this](const BuildpackInvocation&) {
        fs::remove(layers("a/jdk.toml"));
        write_text(layers("a/launch.toml"), "[[processes]]\ntype = \"web\"\ncommand = \"x\"\n");
        return 0;
    };
    result = build();
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message().find("/layers/a/launch.toml:3"), std::string::npos)
        << result.error().message();
    EXPECT_NE(result.error().message().find("expected an array of strings"), std::string::npos);
}

TEST_F(CnbBuild, WritesMetadataTomlWithMergedProcessesLabelsAndBuildpacks) {
    m_request.group = {{"a", "1", "0.8", "https://a", false, ""},
                       {"b", "2", "0.10", "", false, ""}};
    m_buildpacks["a@1"] = [this](const BuildpackInvocation&) {
        write_text(layers("a/launch.toml"),
                   "[[processes]]\ntype = \"web\"\ncommand = \"old\"\ndefault = true\n"
                   "[[labels]]\nkey = \"k\"\nvalue = \"a\"\n");
        write_text(layers("a/store.toml"), "[metadata]\nrun = 1\n");
        return 0;
    };
    m_buildpacks["b@2"] = [this](const BuildpackInvocation&) {
        write_text(layers("b/launch.toml"),
                   "[[processes]]\ntype = \"worker\"\ncommand = [\"w\", \"--x\"]\nargs = [\"y\"]\n"
                   "[[labels]]\nkey = \"k\"\nvalue = \"b\"\n[[slices]]\npaths = [\"s/*\"]\n");
        return 0;
    };
    auto result = build();
    ASSERT_TRUE(result) << result.error().to_string();
    auto text = read_text(layers("config/metadata.toml"));
    auto parsed = parse_metadata_toml(text, "metadata.toml");
    ASSERT_TRUE(parsed) << parsed.error().to_string();
    EXPECT_EQ(*parsed, result->metadata);
    EXPECT_EQ(parsed->default_process, "web");
    ASSERT_EQ(parsed->processes.size(), 2u);
    EXPECT_EQ(parsed->processes[0].type, "web");
    EXPECT_FALSE(parsed->processes[0].direct);
    EXPECT_EQ(parsed->processes[0].buildpack_id, "a");
    EXPECT_EQ(parsed->processes[1].command, (std::vector<std::string>{"w", "--x"}));
    EXPECT_EQ(parsed->buildpacks, (std::vector<MetadataBuildpack>{{"a", "1", "0.8", "https://a"},
                                                                  {"b", "2", "0.10", ""}}));
    EXPECT_EQ(parsed->labels, (std::vector<Label>{{"k", "a"}, {"k", "b"}}));
    EXPECT_EQ(parsed->slices, (std::vector<Slice>{{{"s/*"}}}));
    EXPECT_NE(result->buildpacks[0].store_metadata_toml.find("run = 1"), std::string::npos);
}

TEST_F(CnbBuild, SbomFilesAreCheckedAgainstTheDeclaredFormatsAndCopiedByLayerKind) {
    BuildGroupEntry bp{"bp/a", "1", "0.10", "", false, ""};
    bp.sbom_formats = {"application/vnd.cyclonedx+json", "application/spdx+json"};
    m_request.group = {bp};
    m_buildpacks["bp/a@1"] = [this](const BuildpackInvocation&) {
        write_text(layers("bp_a/launch.sbom.cdx.json"), "{\"l\":1}");
        write_text(layers("bp_a/build.sbom.spdx.json"), "{\"b\":1}");
        write_text(layers("bp_a/run.toml"), "[types]\nlaunch = true\ncache = true\n");
        write_text(layers("bp_a/run.sbom.cdx.json"), "{\"run\":1}");
        write_text(layers("bp_a/tools.toml"), "[types]\nbuild = true\n");
        write_text(layers("bp_a/tools.sbom.cdx.json"), "{\"tools\":1}");
        write_text(layers("bp_a/gone.toml"), "[types]\n");
        write_text(layers("bp_a/gone.sbom.cdx.json"), "{}");
        return 0;
    };
    auto result = build();
    ASSERT_TRUE(result) << result.error().to_string();
    EXPECT_EQ(read_text(layers("sbom/launch/bp_a/sbom.cdx.json")), "{\"l\":1}");
    EXPECT_EQ(read_text(layers("sbom/build/bp_a/sbom.spdx.json")), "{\"b\":1}");
    EXPECT_EQ(read_text(layers("sbom/launch/bp_a/run/sbom.cdx.json")), "{\"run\":1}");
    EXPECT_EQ(read_text(layers("sbom/cache/bp_a/run/sbom.cdx.json")), "{\"run\":1}");
    EXPECT_EQ(read_text(layers("sbom/build/bp_a/tools/sbom.cdx.json")), "{\"tools\":1}");
    EXPECT_FALSE(fs::exists(layers("sbom/launch/bp_a/tools")));
    EXPECT_FALSE(fs::exists(layers("sbom/launch/bp_a/gone")));
    EXPECT_FALSE(fs::exists(layers("sbom/build/bp_a/gone")));

    // An undeclared media type, then an unknown extension, fail the build.
    m_buildpacks["bp/a@1"] = [this](const BuildpackInvocation&) {
        write_text(layers("bp_a/launch.sbom.syft.json"), "{}");
        return 0;
    };
    result = build();
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message().find("/layers/bp_a/launch.sbom.syft.json`: undeclared SBOM "
                                            "media type `application/vnd.syft+json`"),
              std::string::npos)
        << result.error().message();
    // Formats not known (nullopt): the declaration is not checked.
    m_request.group[0].sbom_formats.reset();
    result = build();
    ASSERT_TRUE(result) << result.error().to_string();
    EXPECT_EQ(read_text(layers("sbom/launch/bp_a/sbom.syft.json")), "{}");
    m_buildpacks["bp/a@1"] = [this](const BuildpackInvocation&) {
        fs::remove(layers("bp_a/launch.sbom.syft.json"));
        write_text(layers("bp_a/launch.sbom.xml.json"), "{}");
        return 0;
    };
    result = build();
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message().find("unknown SBOM extension `xml`"), std::string::npos)
        << result.error().message();
}

// Everything under <layers> is buildpack-written: a planted `config`
// symlink and an env file linking out of the layers dir stay inside it.
TEST_F(CnbBuild, PlantedSymlinksNeverReachOutsideTheLayersDir) {
    std::string outside = m_dir / "outside";
    fs::create_directories(outside);
    m_request.group = {{"a", "1", "0.10", "", false, ""}, {"b", "1", "0.10", "", false, ""}};
    m_buildpacks["a@1"] = [&](const BuildpackInvocation&) {
        fs::create_symlink(outside, layers("config"));
        write_text(layers("a/l.toml"), "[types]\nbuild = true\n");
        fs::create_directories(layers("a/l/env"));
        fs::create_symlink("/etc/hostname", layers("a/l/env/HOST"));
        return 0;
    };
    auto result = build();
    // The absolute link resolves to <layers>/etc/hostname, which is missing.
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message().find("/layers/a/l/env/HOST"), std::string::npos)
        << result.error().message();
    EXPECT_TRUE(fs::is_empty(outside));

    // Without the env link, the dangling `config` (its target resolves to
    // <layers>/<outside>, missing) fails the build naming the file; nothing
    // is written outside.
    m_invocations.clear();
    fs::remove_all(layers("a"));
    fs::remove(layers("config"));
    m_buildpacks["a@1"] = [&](const BuildpackInvocation&) {
        fs::create_symlink(outside, layers("config"));
        return 0;
    };
    result = build();
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message().find("writing `/layers/config/metadata.toml`"),
              std::string::npos)
        << result.error().message();
    EXPECT_TRUE(fs::is_empty(outside));
    EXPECT_FALSE(fs::exists(m_dir / ("layers" + outside + "/metadata.toml")));

    // A `config` link to a directory inside the layers dir is followed there.
    m_invocations.clear();
    fs::remove(layers("config"));
    fs::create_directories(layers("elsewhere"));
    m_buildpacks["a@1"] = [&](const BuildpackInvocation&) {
        fs::create_symlink("/elsewhere", layers("config"));
        return 0;
    };
    result = build();
    ASSERT_TRUE(result) << result.error().to_string();
    EXPECT_TRUE(fs::exists(layers("elsewhere/metadata.toml")));
    EXPECT_TRUE(fs::is_empty(outside));
}

}  // namespace
}  // namespace locald::cnb
