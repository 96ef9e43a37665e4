// Detection logic with an injected runner: order expansion, the group
// verdict, the exact plan resolution (spec notes §2.2–§2.5, the reference
// lifecycle's phase/detector_test.go scenarios) and group.toml/plan.toml.
#include "cnb/detect.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "base/temp_dir.h"
#include "base/unique_fd.h"

namespace locald::cnb {
namespace {

namespace fs = std::filesystem;

// A builder made of data: descriptors by id@version, and each detect's result.
class FakeBuilder {
public:
    BuildpackDescriptor& add(const std::string& id, const std::string& version,
                             const std::string& api = "0.10") {
        BuildpackDescriptor bp;
        bp.api = api;
        bp.api_version = *parse_api_version(api);
        bp.id = id;
        bp.version = version;
        bp.dir = "/cnb/buildpacks/" + escape_id(id) + "/" + version;
        bp.has_bin_build = true;
        return m_buildpacks[id + "@" + version] = bp;
    }
    // Detect of id@version exits `code` after writing `plan`.
    void result(const std::string& key, int code, const std::string& plan = "") {
        m_results[key] = {code, "", plan};
    }
    BuildpackLookup lookup() {
        return [this](std::string_view id,
                      std::string_view version) -> base::Result<BuildpackDescriptor> {
            auto it = m_buildpacks.find(std::string(id) + "@" + std::string(version));
            if (it == m_buildpacks.end()) {
                return base::not_found("no {}@{}", id, version);
            }
            return it->second;
        };
    }
    DetectRunner runner() {
        return [this](const BuildpackDescriptor& bp) -> base::Result<DetectRun> {
            std::string key = bp.id + "@" + bp.version;
            m_ran.push_back(key);
            auto it = m_results.find(key);
            if (it == m_results.end()) {
                return DetectRun{100, "", ""};
            }
            return it->second;
        };
    }
    base::Result<DetectOutcome> detect(const Order& order, const DetectOptions& options = {}) {
        return cnb::detect(order, lookup(), runner(), options);
    }
    std::vector<std::string> m_ran;

private:
    std::map<std::string, BuildpackDescriptor> m_buildpacks;
    std::map<std::string, DetectRun> m_results;
};

std::vector<std::string> group_keys(const Resolution& resolution) {
    std::vector<std::string> out;
    for (const GroupMember& member : resolution.group) {
        out.push_back(member.id + "@" + member.version);
    }
    return out;
}

bool has_line(const std::vector<std::string>& log, const std::string& line) {
    return std::find(log.begin(), log.end(), line) != log.end();
}

std::string joined(const std::vector<std::string>& log) {
    std::string out;
    for (const std::string& line : log) {
        out += line + "\n";
    }
    return out;
}

// lifecycle phase/detector_test.go "expands order-containing buildpack IDs".
TEST(CnbDetectOrder, ExpandsCompositesWithIdDedupeAndOptionalRepeat) {
    FakeBuilder builder;
    for (const char* key : {"A@v1", "B@v1", "C@v1", "D@v1", "A@v2", "B@v2", "C@v2", "D@v2"}) {
        std::string k = key;
        builder.add(k.substr(0, 1), k.substr(2));
    }
    builder.add("E", "v1").order = {{{"A", "v1"}, {"F", "v1"}, {"B", "v1"}}};
    builder.add("F", "v1").order = {{{"C", "v1"}}, {{"G", "v1", true}}, {{"D", "v1"}}};
    builder.add("G", "v1").order = {{{"A", "v2"}, {"B", "v2"}}, {{"C", "v2"}, {"D", "v2"}}};
    auto outcome = builder.detect({{{"E", "v1"}}});
    ASSERT_TRUE(outcome) << outcome.error().to_string();
    EXPECT_EQ(outcome->exit_code, 20);
    std::vector<std::vector<std::string>> expected = {
        {"A@v1", "C@v1", "B@v1"}, {"A@v1", "B@v2"},         {"A@v1", "C@v2", "D@v2", "B@v1"},
        {"A@v1", "B@v1"},         {"A@v1", "D@v1", "B@v1"},
    };
    EXPECT_EQ(outcome->tried, expected);
    // Memoised: every id@version ran once, A@v2 never (A@v1 was done).
    std::set<std::string> unique(builder.m_ran.begin(), builder.m_ran.end());
    EXPECT_EQ(unique.size(), builder.m_ran.size()) << joined(builder.m_ran);
    EXPECT_EQ(unique,
              (std::set<std::string>{"A@v1", "B@v1", "C@v1", "D@v1", "B@v2", "C@v2", "D@v2"}));
}

// A composite whose order reaches itself (the reference recurses until
// its stack overflows — "FIXME: cyclical references"): a builder's
// buildpack.toml must not crash locald; it is an error naming the chain.
TEST(CnbDetectOrder, CompositeCycleIsAnErrorNotARecursion) {
    FakeBuilder builder;
    builder.add("leaf", "1");
    builder.add("A", "1").order = {{{"B", "1"}}};
    builder.add("B", "1").order = {{{"leaf", "1", true}, {"A", "1"}}};
    auto outcome = builder.detect({{{"A", "1"}}});
    ASSERT_FALSE(outcome);
    EXPECT_NE(outcome.error().to_string().find("A@1"), std::string::npos)
        << outcome.error().to_string();
    EXPECT_NE(outcome.error().to_string().find("nest"), std::string::npos)
        << outcome.error().to_string();
}

// Composites whose orders fail fan out exponentially (2 groups per level):
// the number of groups tried is bounded, with an error saying so.
TEST(CnbDetectOrder, ExponentialCompositeExpansionIsBounded) {
    FakeBuilder builder;
    builder.add("leaf", "1");
    for (int i = 0; i < 30; ++i) {
        std::string next = i == 29 ? "leaf" : "C" + std::to_string(i + 1);
        builder.add("C" + std::to_string(i), "1").order = {{{next, "1"}}, {{next, "1"}}};
    }
    auto outcome = builder.detect({{{"C0", "1"}}});
    ASSERT_FALSE(outcome);
    EXPECT_NE(outcome.error().to_string().find("groups"), std::string::npos)
        << outcome.error().to_string();
}

TEST(CnbDetectOrder, FirstPassingGroupWinsAndWritesGroupWithoutOptionalFlags) {
    FakeBuilder builder;
    builder.add("a", "1");
    builder.add("b", "1", "0.12").homepage = "https://b.example";
    builder.add("c", "1");
    builder.result("a@1", 100);
    builder.result("b@1", 0);
    builder.result("c@1", 0);
    auto outcome = builder.detect({{{"a", "1"}}, {{"b", "1", true}, {"c", "1"}}});
    ASSERT_TRUE(outcome) << outcome.error().to_string();
    ASSERT_EQ(outcome->exit_code, 0) << joined(outcome->log);
    EXPECT_EQ(group_keys(outcome->resolution), (std::vector<std::string>{"b@1", "c@1"}));
    EXPECT_EQ(group_toml(outcome->resolution),
              "[[group]]\napi = '0.12'\nhomepage = 'https://b.example'\nid = 'b'\n"
              "version = '1'\n\n[[group]]\napi = '0.10'\nid = 'c'\nversion = '1'\n");
    EXPECT_EQ(plan_toml(outcome->resolution), "entries = []\n");
}

struct VerdictCase {
    const char* name;
    std::vector<std::pair<GroupRef, int>> members;  // each buildpack and its detect exit code
    int exit_code;
    std::vector<std::string> group;
    std::vector<std::string> log;  // lines that must appear
};

TEST(CnbDetectVerdict, Table) {
    const VerdictCase cases[] = {
        {"all pass", {{{"a", "1"}, 0}, {{"b", "1"}, 0}}, 0, {"a@1", "b@1"}, {"pass: a@1"}},
        {"required fails", {{{"a", "1"}, 0}, {{"b", "1"}, 100}}, 20, {}, {"fail: b@1"}},
        {"optional fails: skipped",
         {{{"a", "1"}, 0}, {{"b", "1", true}, 100}},
         0,
         {"a@1"},
         {"skip: b@1"}},
        {"required errs: 21", {{{"a", "1"}, 0}, {{"b", "1"}, 1}}, 21, {}, {"err:  b@1 (1)"}},
        // pack's read-env-buildpack: exit 1 is an error, still only "not detected" when optional.
        {"optional errs: not detected, no 21",
         {{{"a", "1"}, 0}, {{"b", "1", true}, 1}},
         0,
         {"a@1"},
         {"err:  b@1 (1)"}},
        {"no buildpack passed",
         {{{"a", "1", true}, 100}, {{"b", "1", true}, 100}},
         20,
         {},
         {"fail: no viable buildpacks in group"}},
        {"could not execute (-1)", {{{"a", "1"}, -1}}, 21, {}, {"err:  a@1 (-1)"}},
    };
    for (const VerdictCase& c : cases) {
        FakeBuilder builder;
        Group group;
        for (const auto& [ref, code] : c.members) {
            builder.add(ref.id, ref.version);
            builder.result(ref.id + "@" + ref.version, code);
            group.push_back(ref);
        }
        auto outcome = builder.detect({group});
        ASSERT_TRUE(outcome) << c.name << ": " << outcome.error().to_string();
        EXPECT_EQ(outcome->exit_code, c.exit_code) << c.name << "\n" << joined(outcome->log);
        EXPECT_EQ(group_keys(outcome->resolution), c.group) << c.name;
        for (const std::string& line : c.log) {
            EXPECT_TRUE(has_line(outcome->log, line)) << c.name << ": no `" << line << "` in\n"
                                                      << joined(outcome->log);
        }
    }
}

TEST(CnbDetectVerdict, AnErrorInAnyGroupMakesTheFinalCode21) {
    FakeBuilder builder;
    builder.add("a", "1");
    builder.add("b", "1");
    builder.result("a@1", 7);
    builder.result("b@1", 100);
    auto outcome = builder.detect({{{"a", "1"}}, {{"b", "1"}}});
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->exit_code, 21);
    builder.result("a@1", 100);
    outcome = builder.detect({{{"a", "1"}}, {{"b", "1"}}});
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->exit_code, 20);
}

TEST(CnbDetectVerdict, InvalidPlansMakeTheBuildpackErr) {
    const char* plans[] = {
        // samples ruby-bundler (PR #167): a top-level version in requires.
        "[[requires]]\nname = \"ruby\"\nversion = \"3.2\"\n",
        "[[requires]]\nname = \"ruby\"\nversion = \"3.2\"\n[requires.metadata]\nversion = \"3\"\n",
        "[[provides]]\nname = 3\n",
        "not toml at all ===",
    };
    for (const char* plan : plans) {
        FakeBuilder builder;
        builder.add("a", "1");
        builder.result("a@1", 0, plan);
        auto outcome = builder.detect({{{"a", "1"}}});
        ASSERT_TRUE(outcome);
        EXPECT_EQ(outcome->exit_code, 21) << plan;
        EXPECT_EQ(outcome->runs["a@1"].code, -1) << plan;
        EXPECT_NE(outcome->runs["a@1"].output.find("the plan of a@1"), std::string::npos)
            << outcome->runs["a@1"].output;
    }
}

TEST(CnbDetectVerdict, MissingBuildpackIsFatal) {
    FakeBuilder builder;
    auto outcome = builder.detect({{{"nope", "1"}}});
    ASSERT_FALSE(outcome);
    EXPECT_NE(outcome.error().message().find("looking up buildpack `nope@1`"), std::string::npos)
        << outcome.error().message();
}

TEST(CnbDetectTargets, MismatchErrsWithoutRunningUnlessOptional) {
    FakeBuilder builder;
    builder.add("arm", "1").targets = {{"linux", "arm64", "", {}}};
    builder.add("any", "1").stacks = {"*"};
    builder.add("noble", "1").targets = {{"linux", "amd64", "", {{"ubuntu", "24.04"}}}};
    builder.add("ok", "1");
    for (const char* key : {"arm@1", "any@1", "noble@1", "ok@1"}) {
        builder.result(key, 0);
    }
    DetectOptions options;
    options.run_target = {"linux", "amd64", "", {{"ubuntu", "22.04"}}};
    auto outcome = builder.detect({{{"arm", "1"}, {"ok", "1"}}}, options);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->exit_code, 21);
    EXPECT_TRUE(builder.m_ran == std::vector<std::string>{"ok@1"}) << joined(builder.m_ran);
    EXPECT_NE(outcome->runs["arm@1"].output.find("unable to satisfy target"), std::string::npos);
    // Optional: it still runs (and here passes).
    builder.m_ran.clear();
    outcome = builder.detect({{{"arm", "1", true}, {"ok", "1"}}}, options);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->exit_code, 0);
    EXPECT_EQ(builder.m_ran, (std::vector<std::string>{"arm@1", "ok@1"}));
    // Wildcards and distros.
    outcome = builder.detect({{{"any", "1"}, {"noble", "1"}}}, options);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->exit_code, 21) << "noble needs ubuntu 24.04";
    options.run_target.distros = {{"ubuntu", "24.04"}};
    outcome = builder.detect({{{"any", "1"}, {"noble", "1"}}}, options);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->exit_code, 0) << joined(outcome->log);
    // An unknown run target matches everything; matching can be switched off.
    outcome = builder.detect({{{"arm", "1"}}}, DetectOptions{});
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->exit_code, 0);
}

TEST(CnbDetectTargets, MatchTable) {
    Target run{"linux", "amd64", "", {{"ubuntu", "22.04"}}};
    EXPECT_TRUE(targets_match({{"linux", "", "", {}}}, run));
    EXPECT_TRUE(targets_match({{"", "", "", {}}}, run));
    EXPECT_FALSE(targets_match({{"windows", "", "", {}}}, run));
    EXPECT_FALSE(targets_match({}, run));
    EXPECT_TRUE(targets_match({{"linux", "amd64", "", {{"ubuntu", "22.04"}}}}, run));
    EXPECT_FALSE(targets_match({{"linux", "amd64", "", {{"debian", "12"}}}}, run));
    EXPECT_TRUE(targets_match({{"linux", "amd64", "v2", {}}}, run)) << "empty run variant";
    EXPECT_TRUE(
        targets_match({{"linux", "amd64", "", {{"debian", "12"}}}}, {"linux", "amd64", "", {}}))
        << "no run distro: distros ignored";
    EXPECT_TRUE(targets_match({}, Target{})) << "unknown run target";
}

// ---------------------------------------------------------------------------
// Plan resolution (§2.5), the reference's Resolve table.

PlanSection section(std::vector<std::string> provides, std::vector<std::string> requires_names) {
    PlanSection out;
    out.provides = std::move(provides);
    for (std::string& name : requires_names) {
        out.requirements.push_back({std::move(name), ""});
    }
    return out;
}

Detected detected(std::string id, bool optional, PlanSection primary,
                  std::vector<PlanSection> alternatives = {}) {
    return Detected{{std::move(id), "v1", optional}, "0.10", "", {primary, alternatives}};
}

TEST(CnbResolvePlan, ProvidersAndRequiresAccumulate) {
    auto outcome = resolve_plan({
        detected("A", false, section({"dep1", "dep2"}, {"dep2"})),
        detected("C", false, section({"dep1", "dep2"}, {})),
        detected("D", false, section({"dep2"}, {"dep1", "dep2"})),
        detected("B", false, section({}, {"dep1", "dep2"})),
    });
    ASSERT_TRUE(outcome.resolved) << joined(outcome.log);
    ASSERT_EQ(outcome.resolution.plan.size(), 2u);
    const PlanEntry& dep1 = outcome.resolution.plan[0];
    const PlanEntry& dep2 = outcome.resolution.plan[1];
    EXPECT_EQ(dep1.name, "dep1");
    EXPECT_EQ(dep1.providers, (std::vector<PlanProvider>{{"A", "v1"}, {"C", "v1"}}));
    EXPECT_EQ(dep1.requirements.size(), 2u);
    EXPECT_EQ(dep2.name, "dep2");
    EXPECT_EQ(dep2.providers, (std::vector<PlanProvider>{{"A", "v1"}, {"C", "v1"}, {"D", "v1"}}));
    EXPECT_EQ(dep2.requirements.size(), 3u);
    EXPECT_EQ(outcome.resolution.trial, 1);
}

TEST(CnbResolvePlan, UnmetRequireFails) {
    // A (optional) failed detect, so only B and C reach resolution.
    auto outcome = resolve_plan({
        detected("B", false, section({}, {"dep1"})),
        detected("C", false, section({"dep1"}, {"dep1"})),
    });
    EXPECT_FALSE(outcome.resolved);
    EXPECT_TRUE(has_line(outcome.log, "fail: B@v1 requires dep1")) << joined(outcome.log);
}

TEST(CnbResolvePlan, UnusedProvideFails) {
    auto outcome = resolve_plan({
        detected("A", false, section({"dep1"}, {"dep1"})),
        detected("B", false, section({"dep1"}, {})),
    });
    EXPECT_FALSE(outcome.resolved);
    EXPECT_TRUE(has_line(outcome.log, "fail: B@v1 provides unused dep1")) << joined(outcome.log);
}

TEST(CnbResolvePlan, OptionalBuildpacksWithUnmetPlansAreDropped) {
    auto outcome = resolve_plan({
        detected("A", true, section({}, {"dep-missing"})),
        detected("B", false, section({"dep-present"}, {"dep-present"})),
        detected("C", true, section({"dep-missing"}, {})),
    });
    ASSERT_TRUE(outcome.resolved) << joined(outcome.log);
    EXPECT_EQ(group_keys(outcome.resolution), std::vector<std::string>{"B@v1"});
    EXPECT_TRUE(has_line(outcome.log, "skip: A@v1 requires dep-missing")) << joined(outcome.log);
    EXPECT_TRUE(has_line(outcome.log, "skip: C@v1 provides unused dep-missing"));
    ASSERT_EQ(outcome.resolution.plan.size(), 1u);
    EXPECT_EQ(outcome.resolution.plan[0].name, "dep-present");
}

TEST(CnbResolvePlan, OrAlternativesTriedDepthFirstUntilTry16) {
    // Four buildpacks, one [[or]] each: 2^4 trials. Every primary section
    // needs something nobody provides, so only the all-alternatives trial
    // can resolve; there D's alternative (its last option: D is optional)
    // provides something unused, so D is dropped.
    auto outcome = resolve_plan({
        detected("A", false, section({}, {"never"}), {section({"dep-a"}, {})}),
        detected("B", false, section({}, {"never"}), {section({}, {"dep-a"})}),
        detected("C", false, section({}, {"never"}), {section({"dep-c"}, {"dep-c"})}),
        detected("D", true, section({}, {"never"}), {section({"unused"}, {})}),
    });
    ASSERT_TRUE(outcome.resolved) << joined(outcome.log);
    EXPECT_EQ(outcome.resolution.trial, 16);
    EXPECT_TRUE(has_line(outcome.log, "Resolving plan... (try #16)"));
    EXPECT_EQ(group_keys(outcome.resolution), (std::vector<std::string>{"A@v1", "B@v1", "C@v1"}));
    // In the primary options D counts as required ("fail", not "skip").
    EXPECT_TRUE(has_line(outcome.log, "fail: A@v1 requires never")) << joined(outcome.log);
    EXPECT_TRUE(has_line(outcome.log, "skip: D@v1 provides unused unused")) << joined(outcome.log);
}

// 1 MiB of [[or]] per plan makes the cartesian product astronomic: the
// trials are bounded and the group fails saying why.
TEST(CnbResolvePlan, TrialsAreBounded) {
    std::vector<Detected> passing;
    for (int i = 0; i < 8; ++i) {
        std::vector<PlanSection> alternatives(9, section({}, {"never"}));
        passing.push_back(detected("B" + std::to_string(i), false, section({}, {"never"}),
                                   std::move(alternatives)));
    }
    auto outcome = resolve_plan(passing);  // 10^8 trials unbounded
    EXPECT_FALSE(outcome.resolved);
    EXPECT_LE(outcome.log.size(), 300000u);
    EXPECT_NE(joined(outcome.log).find("trials"), std::string::npos);
}

TEST(CnbResolvePlan, EmptyTrialFails) {
    auto outcome = resolve_plan({detected("A", true, section({"x"}, {}))});
    EXPECT_FALSE(outcome.resolved);
    EXPECT_TRUE(has_line(outcome.log, "fail: no viable buildpacks in group"));
}

TEST(CnbDetectPlan, ParsesSectionsAlternativesAndMetadata) {
    auto plan = parse_detect_plan(R"([[provides]]
name = "some-world"
[[requires]]
name = "some-world"
[requires.metadata]
world = "Earth-616"
[[or]]
[[or.requires]]
name = "other"
)",
                                  "plan.toml");
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->primary.provides, std::vector<std::string>{"some-world"});
    ASSERT_EQ(plan->primary.requirements.size(), 1u);
    EXPECT_EQ(plan->primary.requirements[0].name, "some-world");
    EXPECT_EQ(plan->primary.requirements[0].metadata_toml, "world = 'Earth-616'");
    ASSERT_EQ(plan->alternatives.size(), 1u);
    EXPECT_TRUE(plan->alternatives[0].provides.empty());
    EXPECT_EQ(plan->alternatives[0].requirements[0].name, "other");
    auto empty = parse_detect_plan("", "plan.toml");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->primary.provides.empty() && empty->alternatives.empty());
}

TEST(CnbDetectPlan, Errors) {
    const std::pair<const char*, const char*> cases[] = {
        {"[[requires]]\nname = \"x\"\nversion = \"1\"\n",
         "plan.toml:3: requires `x` has a \"version\" key which is not supported; use "
         "metadata.version"},
        {"[[requires]]\nname = \"x\"\nversion = \"1\"\n[requires.metadata]\nversion = \"1\"\n",
         "has both `version` and `metadata.version`"},
        {"[[requires]]\nversion = \"1\"\n", "plan.toml:1: missing `name`"},
        {"provides = \"x\"\n", "`provides` must be an array of tables"},
        {"[[requires]]\nname = \"x\"\nmetadata = 1\n", "plan.toml:3: `metadata` of requires `x`"},
        {"or = 1\n", "`or` must be an array of tables"},
    };
    for (const auto& [text, expected] : cases) {
        auto plan = parse_detect_plan(text, "plan.toml");
        ASSERT_FALSE(plan) << text;
        EXPECT_NE(plan.error().message().find(expected), std::string::npos)
            << text << "\n→ " << plan.error().message();
    }
}

// buildpacks/samples: hello-universe = [hello-world, hello-moon]; hello-moon
// requires some-world (with metadata) provided and required by hello-world.
TEST(CnbDetectSamples, HelloUniverseWritesTheSpecsPlan) {
    FakeBuilder builder;
    builder.add("samples/hello-world", "0.0.1", "0.11");
    builder.add("samples/hello-moon", "0.0.1", "0.11");
    builder.add("samples/hello-universe", "0.0.1", "0.11").order = {
        {{"samples/hello-world", "0.0.1"}, {"samples/hello-moon", "0.0.1"}}};
    builder.result("samples/hello-world@0.0.1", 0,
                   "[[provides]]\nname = \"some-world\"\n[[requires]]\nname = \"some-world\"\n");
    builder.result("samples/hello-moon@0.0.1", 0,
                   "[[requires]]\nname = \"some-world\"\n[requires.metadata]\n"
                   "world = \"Earth-616\"\n");
    auto outcome = builder.detect({{{"samples/hello-universe", "0.0.1"}}});
    ASSERT_TRUE(outcome) << outcome.error().to_string();
    ASSERT_EQ(outcome->exit_code, 0) << joined(outcome->log);
    auto dir = base::TempDir::create("cnb-detect-test");
    ASSERT_TRUE(dir);
    ASSERT_TRUE(
        write_detect_outputs(outcome->resolution, dir->join("group.toml"), dir->join("plan.toml")));
    std::ifstream group(dir->join("group.toml")), plan(dir->join("plan.toml"));
    std::stringstream group_text, plan_text;
    group_text << group.rdbuf();
    plan_text << plan.rdbuf();
    EXPECT_EQ(group_text.str(),
              "[[group]]\napi = '0.11'\nid = 'samples/hello-world'\nversion = '0.0.1'\n\n"
              "[[group]]\napi = '0.11'\nid = 'samples/hello-moon'\nversion = '0.0.1'\n");
    EXPECT_EQ(plan_text.str(),
              "[[entries]]\n\n    [[entries.providers]]\n    id = 'samples/hello-world'\n"
              "    version = '0.0.1'\n\n    [[entries.requires]]\n    name = 'some-world'\n\n"
              "    [[entries.requires]]\n    name = 'some-world'\n\n"
              "        [entries.requires.metadata]\n        world = 'Earth-616'\n");
}

TEST(CnbLauncherRunner, RefusesAnIncompleteSetupBeforeLaunching) {
    BuildpackDescriptor bp;
    bp.id = "a";
    bp.version = "1";
    LauncherDetectConfig config;
    config.rootfs = "/nonexistent";
    config.app_dir = "/nonexistent";
    config.layers_dir = "/nonexistent";
    config.uid = 1000;
    auto run = launcher_detect_runner(config)(bp);
    ASSERT_FALSE(run);
    EXPECT_EQ(run.error().kind(), base::ErrorKind::InvalidArgument);
    EXPECT_NE(run.error().message().find("platform"), std::string::npos);
    config.platform_dir = "/nonexistent";
    config.uid = 0;
    run = launcher_detect_runner(config)(bp);
    ASSERT_FALSE(run);
    EXPECT_NE(run.error().message().find("non-root CNB_USER_ID"), std::string::npos);
}

// ---------------------------------------------------------------------------
// The detect environment (§2.3, §3.5 steps 1 and 3).

class CnbDetectEnv : public ::testing::Test {
protected:
    void SetUp() override {
        auto dir = base::TempDir::create("cnb-detect-env");
        ASSERT_TRUE(dir);
        m_dir = std::move(*dir);
        fs::create_directories(m_dir.join("rootfs/etc"));
        fs::create_directories(m_dir.join("rootfs/cnb/build-config/env"));
        fs::create_directories(m_dir.join("platform/env"));
        write(m_dir.join("rootfs/etc/passwd"),
              "root:x:0:0::/root:/bin/sh\ncnb:x:1002:1003::/home/cnb:/bin/sh\n");
        write(m_dir.join("rootfs/cnb/build-config/env/OPERATOR"), "op");
        write(m_dir.join("rootfs/cnb/build-config/env/USERVAR"), "from-build-config");
        write(m_dir.join("platform/env/USERVAR"), "from-platform");
        write(m_dir.join("platform/env/PATH"), "/user/bin");
        m_rootfs =
            base::UniqueFd(::open(m_dir.join("rootfs").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(m_rootfs);
        m_inputs.rootfs_fd = m_rootfs.get();
        m_inputs.platform_dir = m_dir.join("platform");
        m_inputs.image_env = {"PATH=/cnb/process:/bin", "SECRET=leak", "CNB_USER_ID=1002",
                              "HTTP_PROXY=http://proxy", "HOME=/wrong"};
        m_inputs.uid = 1002;
        m_inputs.run_target = {"linux", "amd64", "", {{"ubuntu", "24.04"}}};
        m_bp.id = "samples/hello-world";
        m_bp.dir = "/cnb/buildpacks/samples_hello-world/0.0.1";
    }
    static void write(const std::string& path, const std::string& text) {
        std::ofstream out(path);
        out << text;
    }
    base::TempDir m_dir;
    base::UniqueFd m_rootfs;
    DetectEnvInputs m_inputs;
    BuildpackDescriptor m_bp;
};

TEST_F(CnbDetectEnv, Api07GetsOnlyTheBuildpackDir) {
    m_bp.api_version = {0, 7};
    auto env = detect_environment(m_bp, m_inputs, "/tmp/plan.toml");
    ASSERT_TRUE(env) << env.error().to_string();
    EXPECT_EQ(*env, (std::vector<std::string>{
                        "CNB_BUILDPACK_DIR=/cnb/buildpacks/samples_hello-world/0.0.1",
                        "HOME=/home/cnb", "HTTP_PROXY=http://proxy", "OPERATOR=op",
                        "PATH=/user/bin:/cnb/process:/bin", "USERVAR=from-platform"}));
}

TEST_F(CnbDetectEnv, Api12GetsPlatformPlanTargetAndExecEnv) {
    m_bp.api_version = {0, 12};
    auto env = detect_environment(m_bp, m_inputs, "/tmp/plan.toml");
    ASSERT_TRUE(env) << env.error().to_string();
    EXPECT_EQ(*env,
              (std::vector<std::string>{
                  "CNB_BUILDPACK_DIR=/cnb/buildpacks/samples_hello-world/0.0.1",
                  "CNB_BUILD_PLAN_PATH=/tmp/plan.toml", "CNB_EXEC_ENV=production",
                  "CNB_PLATFORM_DIR=/platform", "CNB_TARGET_ARCH=amd64",
                  "CNB_TARGET_DISTRO_NAME=ubuntu", "CNB_TARGET_DISTRO_VERSION=24.04",
                  "CNB_TARGET_OS=linux", "HOME=/home/cnb", "HTTP_PROXY=http://proxy", "OPERATOR=op",
                  "PATH=/user/bin:/cnb/process:/bin", "USERVAR=from-platform"}));
}

TEST_F(CnbDetectEnv, ClearEnvSkipsThePlatformEnvButNotBuildConfig) {
    m_bp.api_version = {0, 8};
    m_bp.clear_env = true;
    auto env = detect_environment(m_bp, m_inputs, "/tmp/plan.toml");
    ASSERT_TRUE(env) << env.error().to_string();
    EXPECT_EQ(*env, (std::vector<std::string>{
                        "CNB_BUILDPACK_DIR=/cnb/buildpacks/samples_hello-world/0.0.1",
                        "CNB_BUILD_PLAN_PATH=/tmp/plan.toml", "CNB_PLATFORM_DIR=/platform",
                        "HOME=/home/cnb", "HTTP_PROXY=http://proxy", "OPERATOR=op",
                        "PATH=/cnb/process:/bin", "USERVAR=from-build-config"}));
}

}  // namespace
}  // namespace locald::cnb
