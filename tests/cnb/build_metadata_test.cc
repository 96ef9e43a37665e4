// Layer tomls, launch.toml, build.toml, store.toml and metadata.toml: what
// is accepted per Buildpack API, and errors that name the file, the line and
// what was expected.
#include "cnb/build_metadata.h"

#include <gtest/gtest.h>

namespace locald::cnb {
namespace {

void expect_error(const base::Error& error, const std::vector<std::string_view>& parts) {
    for (auto part : parts) {
        EXPECT_NE(error.message().find(part), std::string::npos)
            << "missing `" << part << "` in: " << error.message();
    }
    EXPECT_EQ(error.kind(), base::ErrorKind::InvalidArgument) << error.message();
}

TEST(CnbLayerToml, ReadsTypesAndMetadata) {
    auto layer = parse_layer_toml(
        "[types]\nlaunch = true\ncache = true\n[metadata]\nversion = \"1.2\"\n", "jdk.toml");
    ASSERT_TRUE(layer) << layer.error().to_string();
    EXPECT_EQ(layer->types, (LayerTypes{true, false, true}));
    EXPECT_NE(layer->metadata_toml.find("version = '1.2'"), std::string::npos)
        << layer->metadata_toml;
    auto empty = parse_layer_toml("", "x.toml");
    ASSERT_TRUE(empty);
    EXPECT_FALSE(empty->types.any());
    EXPECT_EQ(empty->metadata_toml, "");
}

TEST(CnbLayerToml, TopLevelFlagsAreAnError) {
    auto layer = parse_layer_toml("\nlaunch = true\n", "/layers/bp/jdk.toml");
    ASSERT_FALSE(layer);
    expect_error(layer.error(), {"/layers/bp/jdk.toml:2", "`launch`", "under [types]"});
}

TEST(CnbLayerToml, WrongTypesAreErrorsNamingFileAndLine) {
    auto flag = parse_layer_toml("[types]\nbuild = \"yes\"\n", "l.toml");
    ASSERT_FALSE(flag);
    expect_error(flag.error(), {"l.toml:2", "`build`", "true or false"});
    auto table = parse_layer_toml("types = 1\n", "l.toml");
    ASSERT_FALSE(table);
    expect_error(table.error(), {"l.toml:1", "`types`", "expected a table"});
    auto metadata = parse_layer_toml("metadata = [1]\n", "l.toml");
    ASSERT_FALSE(metadata);
    expect_error(metadata.error(), {"l.toml:1", "`metadata`", "expected a table"});
    auto syntax = parse_layer_toml("[types\n", "l.toml");
    ASSERT_FALSE(syntax);
    expect_error(syntax.error(), {"l.toml:1:", "invalid TOML"});
}

constexpr ApiVersion k07{0, 7}, k08{0, 8}, k09{0, 9}, k12{0, 12};

// toml++ recurses once per component of a dotted key: 200 KB of
// `.b` (well under the 1 MiB a buildpack file may have) overflowed the
// stack while parsing. Dots inside strings and comments still parse.
TEST(CnbLayerToml, DottedKeysNestingTooDeepAreAnErrorNotACrash) {
    std::string deep = "[types]\nlaunch = true\n[metadata";
    for (int i = 0; i < 100000; ++i) {
        deep += ".b";
    }
    deep += "]\nx = 1\n";
    auto layer = parse_layer_toml(deep, "deep.toml");
    ASSERT_FALSE(layer);
    expect_error(layer.error(), {"deep.toml:3", "dotted"});

    std::string dotted_key = "metadata";
    for (int i = 0; i < 100000; ++i) {
        dotted_key += ".b";
    }
    layer = parse_layer_toml("[types]\nlaunch = true\n" + dotted_key + " = 1\n", "key.toml");
    ASSERT_FALSE(layer);
    expect_error(layer.error(), {"key.toml:3"});

    std::string dots(5000, '.');
    std::string text = "[types] # " + dots + "\nlaunch = true\n[metadata]\n";
    text += "basic = \"" + dots + "\\\"" + dots + "\"\n";
    text += "literal = '" + dots + "'\n";
    text += "multi = \"\"\"\n" + dots + "\n\"\"\"\n";
    text += "ml = '''" + dots + "\n'''\n";
    text += "version.major = 1\n";
    layer = parse_layer_toml(text, "ok.toml");
    ASSERT_TRUE(layer) << layer.error().to_string();
    EXPECT_TRUE(layer->types.launch);
    EXPECT_NE(layer->metadata_toml.find("major = 1"), std::string::npos) << layer->metadata_toml;
}

TEST(CnbLaunchToml, ModernProcessesLabelsAndSlices) {
    auto launch = parse_launch_toml(R"(
[[processes]]
type = "web"
command = ["bin/server", "--port"]
args = ["8080"]
default = true
working-dir = "/workspace/sub"
exec-env = ["production"]

[[processes]]
type = "worker.v2"
command = ["worker"]

[[labels]]
key = "k"
value = "v"

[[slices]]
paths = ["static/**"]
)",
                                    "launch.toml", k12, "bp/a");
    ASSERT_TRUE(launch) << launch.error().to_string();
    ASSERT_EQ(launch->processes.size(), 2u);
    const Process& web = launch->processes[0];
    EXPECT_EQ(web.type, "web");
    EXPECT_EQ(web.command, (std::vector<std::string>{"bin/server", "--port"}));
    EXPECT_EQ(web.args, (std::vector<std::string>{"8080"}));
    EXPECT_TRUE(web.direct);
    EXPECT_TRUE(web.is_default);
    EXPECT_EQ(web.working_dir, "/workspace/sub");
    EXPECT_EQ(web.buildpack_id, "bp/a");
    EXPECT_EQ(web.exec_env, (std::vector<std::string>{"production"}));
    EXPECT_FALSE(launch->processes[1].is_default);
    EXPECT_EQ(launch->labels, (std::vector<Label>{{"k", "v"}}));
    EXPECT_EQ(launch->slices, (std::vector<Slice>{{{"static/**"}}}));
}

TEST(CnbLaunchToml, BeforeApi09CommandIsAStringAndDirectIsAllowed) {
    auto launch = parse_launch_toml(
        "[[processes]]\ntype = \"web\"\ncommand = \"rackup\"\nargs = [\"-p\"]\n"
        "[[processes]]\ntype = \"d\"\ncommand = \"x\"\ndirect = true\n",
        "launch.toml", k08, "bp");
    ASSERT_TRUE(launch) << launch.error().to_string();
    EXPECT_EQ(launch->processes[0].command, (std::vector<std::string>{"rackup"}));
    EXPECT_FALSE(launch->processes[0].direct);  // shell by default
    EXPECT_TRUE(launch->processes[1].direct);
}

TEST(CnbLaunchToml, ApiRulesAreErrorsNamingFileLineAndExpectation) {
    struct Case {
        std::string text;
        ApiVersion api;
        std::vector<std::string_view> parts;
    };
    std::vector<Case> cases = {
        {"[[processes]]\ntype = \"web\"\ncommand = \"x\"\n",
         k09,
         {"launch.toml:3", "processes[0].command", "expected an array of strings", "0.9"}},
        {"[[processes]]\ntype = \"web\"\ncommand = [\"x\"]\n",
         k08,
         {"launch.toml:3", "processes[0].command", "expected a string"}},
        {"[[processes]]\ntype = \"web\"\ncommand = [\"x\"]\ndirect = true\n",
         k09,
         {"launch.toml:4", "processes[0].direct", "not allowed"}},
        {"[[processes]]\ntype = \"web\"\ncommand = []\n",
         k09,
         {"launch.toml:3", "at least one element"}},
        {"[[processes]]\ntype = \"web\"\n", k09, {"processes[0].command: missing"}},
        {"[[processes]]\ncommand = [\"x\"]\n", k09, {"missing `type`"}},
        {"[[processes]]\ntype = \"a/b\"\ncommand = [\"x\"]\n",
         k09,
         {"processes[0].type", "letters, digits"}},
        {"[[processes]]\ntype = \"web\"\ncommand = [\"x\", 1]\n",
         k09,
         {"launch.toml:3", "processes[0].`command`", "array of strings", "integer"}},
        {"[[processes]]\ntype = \"a\"\ncommand = [\"x\"]\ndefault = true\n"
         "[[processes]]\ntype = \"b\"\ncommand = [\"y\"]\ndefault = true\n",
         k09,
         {"launch.toml", "more than one process has `default = true`"}},
        {"processes = 1\n", k09, {"launch.toml:1", "array of tables"}},
        {"[[labels]]\nkey = \"k\"\n", k09, {"missing `value`"}},
    };
    for (const auto& c : cases) {
        auto launch = parse_launch_toml(c.text, "launch.toml", c.api, "bp");
        ASSERT_FALSE(launch) << c.text;
        expect_error(launch.error(), c.parts);
    }
}

TEST(CnbLaunchToml, WorkingDirBeforeApi08IsIgnoredWithAWarning) {
    auto launch =
        parse_launch_toml("[[processes]]\ntype = \"web\"\ncommand = \"x\"\nworking-dir = \"/w\"\n",
                          "launch.toml", k07, "bp");
    ASSERT_TRUE(launch) << launch.error().to_string();
    EXPECT_EQ(launch->processes[0].working_dir, "");
    ASSERT_EQ(launch->warnings.size(), 1u);
    EXPECT_NE(launch->warnings[0].find("working-dir is ignored"), std::string::npos);
}

TEST(CnbBuildToml, UnmetNamesMustBeNonEmpty) {
    auto build = parse_build_toml("[[unmet]]\nname = \"a\"\n[[unmet]]\nname = \"b\"\n", "b.toml");
    ASSERT_TRUE(build);
    EXPECT_EQ(build->unmet, (std::vector<std::string>{"a", "b"}));
    auto empty = parse_build_toml("[[unmet]]\nname = \"\"\n", "/layers/bp/build.toml");
    ASSERT_FALSE(empty);
    expect_error(empty.error(), {"/layers/bp/build.toml:1", "must not be empty"});
}

TEST(CnbStoreToml, KeepsTheMetadataTable) {
    auto store = parse_store_toml("[metadata]\nlast = 3\n", "store.toml");
    ASSERT_TRUE(store);
    EXPECT_NE(store->find("last = 3"), std::string::npos);
    EXPECT_FALSE(parse_store_toml("metadata = 3\n", "store.toml"));
}

TEST(CnbProcesses, LaterBuildpackWinsAndTheLastDefaultSetsTheDefault) {
    Process web_a{"web", {"a"}, {}, true, true, "", "a", {}};
    Process worker_a{"worker", {"w"}, {}, true, false, "", "a", {}};
    Process web_b{"web", {"b"}, {}, true, false, "", "b", {}};
    Process cli_b{"cli", {"c"}, {}, true, true, "", "b", {}};
    std::vector<std::string> warnings;
    auto warn = [&](const std::string& w) { warnings.push_back(w); };

    auto merged = merge_processes({{web_a, worker_a}, {cli_b}}, warn);
    EXPECT_EQ(merged.default_process, "cli");
    ASSERT_EQ(merged.processes.size(), 3u);
    EXPECT_EQ(merged.processes[0].type, "cli");  // sorted by type
    EXPECT_EQ(merged.processes[1].type, "web");
    EXPECT_FALSE(merged.processes[0].is_default);  // stripped
    EXPECT_TRUE(warnings.empty());

    // A later non-default `web` replaces the default one and clears it.
    merged = merge_processes({{web_a}, {web_b}}, warn);
    EXPECT_EQ(merged.default_process, "");
    ASSERT_EQ(merged.processes.size(), 1u);
    EXPECT_EQ(merged.processes[0].buildpack_id, "b");
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("default process type `web`"), std::string::npos);
}

TEST(CnbMetadataToml, RoundTripsAndWritesTheOldCommandFormBeforePlatform010) {
    BuildMetadata metadata;
    metadata.buildpacks = {{"bp/a", "1.0", "0.10", "https://x"}, {"b", "2", "0.8", ""}};
    metadata.processes = {{"web", {"srv", "--fixed"}, {"a1"}, true, false, "/w", "bp/a", {}},
                          {"z", {"sh -c x"}, {}, false, false, "", "b", {"test"}}};
    metadata.default_process = "web";
    metadata.labels = {{"k", "v \"q\""}};
    metadata.slices = {{{"a/*"}}};
    std::string text = render_metadata_toml(metadata, {0, 12});
    auto parsed = parse_metadata_toml(text, "metadata.toml");
    ASSERT_TRUE(parsed) << parsed.error().to_string() << "\n" << text;
    EXPECT_EQ(*parsed, metadata) << text;

    std::string old = render_metadata_toml(metadata, {0, 9});
    EXPECT_NE(old.find("command = 'srv'\nargs = ['--fixed', 'a1']"), std::string::npos) << old;
    auto old_parsed = parse_metadata_toml(old, "metadata.toml");
    ASSERT_TRUE(old_parsed);
    EXPECT_EQ(old_parsed->processes[0].command, (std::vector<std::string>{"srv"}));
}

TEST(CnbMetadataToml, ErrorsNameTheFile) {
    auto parsed = parse_metadata_toml("[[processes]]\ntype = \"web\"\n", "/layers/config/m.toml");
    ASSERT_FALSE(parsed);
    expect_error(parsed.error(), {"/layers/config/m.toml:1", "command"});
    auto bp = parse_metadata_toml("[[buildpacks]]\nid = \"x\"\n", "m.toml");
    ASSERT_FALSE(bp);
    expect_error(bp.error(), {"m.toml:1", "missing `api`"});
}

}  // namespace
}  // namespace locald::cnb
