// buildpack.toml, order.toml and builder-config parsing, and the confined
// lookup of buildpacks in a builder rootfs (spec notes §1, §2.1, §2.6).
#include "cnb/buildpack.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/temp_dir.h"
#include "base/unique_fd.h"

namespace locald::cnb {
namespace {

namespace fs = std::filesystem;

void write_text(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path);
    out << text;
}

std::string error_of(const base::Result<BuildpackDescriptor>& result) {
    return result ? std::string("(no error)") : result.error().message();
}

TEST(CnbBuildpackToml, ParsesEveryField) {
    auto bp = parse_buildpack_toml(R"(api = "0.10"
[buildpack]
id = "samples/hello-world"
version = "0.0.1"
name = "Hello World"
homepage = "https://example.com"
clear-env = true

[[targets]]
os = "linux"
arch = "arm64"
variant = "v8"
[[targets.distros]]
name = "ubuntu"
version = "24.04"

[[stacks]]
id = "*"
)",
                                   "buildpack.toml");
    ASSERT_TRUE(bp) << bp.error().message();
    EXPECT_EQ(bp->api, "0.10");
    EXPECT_EQ(bp->api_version, (ApiVersion{0, 10}));
    EXPECT_EQ(bp->id, "samples/hello-world");
    EXPECT_EQ(bp->version, "0.0.1");
    EXPECT_EQ(bp->name, "Hello World");
    EXPECT_EQ(bp->homepage, "https://example.com");
    EXPECT_TRUE(bp->clear_env);
    ASSERT_EQ(bp->targets.size(), 1u);
    EXPECT_EQ(bp->targets[0], (Target{"linux", "arm64", "v8", {{"ubuntu", "24.04"}}}));
    EXPECT_EQ(bp->stacks, std::vector<std::string>{"*"});
    EXPECT_FALSE(bp->composite());
    // Declared targets win over inference.
    EXPECT_EQ(bp->effective_targets(), bp->targets);
}

TEST(CnbBuildpackToml, CompositeOrder) {
    auto bp = parse_buildpack_toml(R"(api = "0.11"
[buildpack]
id = "samples/hello-universe"
version = "0.0.1"
[[order]]
[[order.group]]
id = "samples/hello-world"
version = "0.0.1"
[[order.group]]
id = "samples/hello-moon"
version = "0.0.1"
optional = true
)",
                                   "buildpack.toml");
    ASSERT_TRUE(bp) << bp.error().message();
    ASSERT_TRUE(bp->composite());
    ASSERT_EQ(bp->order.size(), 1u);
    EXPECT_EQ(bp->order[0], (Group{{"samples/hello-world", "0.0.1", false},
                                   {"samples/hello-moon", "0.0.1", true}}));
}

TEST(CnbBuildpackToml, TargetsInferredAsTheReferenceDoes) {
    BuildpackDescriptor bp;
    bp.api_version = {0, 9};
    bp.stacks = {"io.buildpacks.stacks.bionic"};
    EXPECT_EQ(bp.effective_targets(),
              std::vector<Target>{(Target{"linux", "amd64", "", {{"ubuntu", "18.04"}}})});
    // Before API 0.10 bionic only counts when it is the sole stack.
    bp.stacks = {"io.buildpacks.stacks.bionic", "other"};
    EXPECT_TRUE(bp.effective_targets().empty());
    bp.has_bin_build = true;
    EXPECT_EQ(bp.effective_targets(), std::vector<Target>{(Target{"linux", "", "", {}})});
    bp.stacks = {"*"};
    EXPECT_EQ(bp.effective_targets(), std::vector<Target>{Target{}});
}

struct BadToml {
    const char* text;
    const char* expected;  // a fragment of the message
};

TEST(CnbBuildpackToml, MalformedFilesNameFileLineAndExpectation) {
    const BadToml cases[] = {
        {"api = \"0.10\"\n[buildpack\nid = \"x\"", "bp.toml:2:"},  // TOML syntax: line and column
        {"[buildpack]\nid = \"x\"\nversion = \"1\"\n", "bp.toml:1: missing `api`"},
        {"api = 10\n[buildpack]\nid = \"x\"\nversion = \"1\"\n",
         "bp.toml:1: `api` must be a string"},
        {"api = \"zero\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\n",
         "bp.toml:1: `api`: `zero` is not an API version"},
        {"api = \"0.10\"\n", "bp.toml: expected a [buildpack] table"},
        {"api = \"0.10\"\n[buildpack]\nversion = \"1\"\n", "missing `id`"},
        {"api = \"0.10\"\n[buildpack]\nid = \"x\"\nversion = 1\n",
         "bp.toml:4: `version` must be a string"},
        {"api = \"0.10\"\n[buildpack]\nid = \"../../etc\"\nversion = \"1\"\n",
         "has an empty, `.` or `..` component"},
        {"api = \"0.10\"\n[buildpack]\nid = \"a//b\"\nversion = \"1\"\n",
         "has an empty, `.` or `..` component"},
        {"api = \"0.10\"\n[buildpack]\nid = \"a b\"\nversion = \"1\"\n", "outside [A-Za-z0-9._/-]"},
        {"api = \"0.10\"\n[buildpack]\nid = \"sbom\"\nversion = \"1\"\n", "is reserved"},
        {"api = \"0.10\"\n[buildpack]\nid = \"x\"\nversion = \"../1\"\n",
         "not usable as a directory name"},
        {"api = \"0.10\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\nclear-env = \"yes\"\n",
         "bp.toml:5: `clear-env` must be true or false"},
        {"api = \"0.10\"\ntargets = \"linux\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\n",
         "bp.toml:2: `targets` must be an array of tables"},
        {"api = \"0.10\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\n[[order]]\n[[order.group]]\n"
         "id = \"y\"\n",
         "bp.toml:6: buildpack `y` has no version"},
        {"api = \"0.10\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\n[[order]]\nfoo = 1\n",
         "needs [[order.group]]"},
    };
    for (const BadToml& c : cases) {
        auto bp = parse_buildpack_toml(c.text, "bp.toml");
        ASSERT_FALSE(bp) << c.text;
        EXPECT_EQ(bp.error().kind(), base::ErrorKind::InvalidArgument) << c.text;
        EXPECT_NE(bp.error().message().find(c.expected), std::string::npos)
            << c.text << "\n→ " << bp.error().message();
    }
}

TEST(CnbOrderToml, ParsesGroupsInOrder) {
    auto order = parse_order_toml(R"([[order]]
[[order.group]]
id = "a"
version = "1"
[[order.group]]
id = "b/c"
version = "2"
optional = true
[[order]]
[[order.group]]
id = "d"
version = "3"
)",
                                  "order.toml");
    ASSERT_TRUE(order) << order.error().message();
    EXPECT_EQ(*order, (Order{{{"a", "1", false}, {"b/c", "2", true}}, {{"d", "3", false}}}));
}

TEST(CnbOrderToml, Errors) {
    const BadToml cases[] = {
        {"", "order.toml: expected [[order]] groups"},
        {"[[order]]\n", "order.toml:1: [[order]] needs [[order.group]]"},
        {"[[order]]\n[[order.group]]\nid = \"a\"\nversion = \"1\"\noptional = 1\n",
         "order.toml:5: `optional` must be true or false"},
        {"[[order]]\n[[order.group]]\nid = \"a\"\n", "has no version"},
        {"order = 3\n", "`order` must be an array of tables"},
    };
    for (const BadToml& c : cases) {
        auto order = parse_order_toml(c.text, "order.toml");
        ASSERT_FALSE(order) << c.text;
        EXPECT_NE(order.error().message().find(c.expected), std::string::npos)
            << c.text << "\n→ " << order.error().message();
    }
    auto extensions = parse_order_toml(
        "[[order-extensions]]\n[[order-extensions.group]]\nid = \"e\"\n"
        "version = \"1\"\n",
        "order.toml");
    ASSERT_FALSE(extensions);
    EXPECT_EQ(extensions.error().kind(), base::ErrorKind::Unsupported);
    EXPECT_NE(extensions.error().message().find("order.toml:1:"), std::string::npos)
        << extensions.error().message();
}

TEST(CnbSystemToml, PreAndPostWrapEveryGroupUnlessTheGroupHasTheId) {
    auto system = parse_system_toml(R"([system]
[[system.pre.buildpacks]]
id = "pre"
version = "1"
[[system.post.buildpacks]]
id = "post"
version = "2"
optional = true
)",
                                    "system.toml");
    ASSERT_TRUE(system) << system.error().message();
    EXPECT_EQ(system->pre, (Group{{"pre", "1", false}}));
    EXPECT_EQ(system->post, (Group{{"post", "2", true}}));
    Order merged = merge_system_buildpacks({{{"a", "1"}}, {{"pre", "9"}, {"b", "1"}}}, *system);
    EXPECT_EQ(merged, (Order{{{"pre", "1"}, {"a", "1"}, {"post", "2", true}},
                             {{"pre", "9"}, {"b", "1"}, {"post", "2", true}}}));
    auto empty = parse_system_toml("", "system.toml");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->pre.empty() && empty->post.empty());
    auto bad = parse_system_toml("[system.pre]\nbuildpacks = 1\n", "system.toml");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("system.toml:2: `system.pre.buildpacks` must be an array"),
              std::string::npos)
        << bad.error().message();
    bad = parse_system_toml("[[system.post.buildpacks]]\nid = \"x\"\n", "system.toml");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("has no version"), std::string::npos);
}

TEST(CnbRunImageTarget, LabelsThenOsRelease) {
    std::map<std::string, std::string> labels = {{"io.buildpacks.base.distro.name", "ubuntu"},
                                                 {"io.buildpacks.base.distro.version", "24.04"}};
    const char* os_release = "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n";
    EXPECT_EQ(run_image_target("linux", "amd64", "", labels, os_release),
              (Target{"linux", "amd64", "", {{"ubuntu", "24.04"}}}));
    EXPECT_EQ(run_image_target("linux", "arm64", "v8", {}, os_release),
              (Target{"linux", "arm64", "v8", {{"debian", "12"}}}));
    EXPECT_EQ(run_image_target("linux", "amd64", "", {}, ""), (Target{"linux", "amd64", "", {}}));
    EXPECT_EQ(run_image_target("linux", "amd64", "", {}, "IDX=1\nVERSION_ID='3.19'\n"),
              (Target{"linux", "amd64", "", {{"", "3.19"}}}));
}

TEST(CnbIds, EscapeAndValidate) {
    EXPECT_EQ(escape_id("samples/hello-world"), "samples_hello-world");
    EXPECT_EQ(escape_id("0.8/buildpack"), "0.8_buildpack");
    EXPECT_TRUE(validate_id("paketo-buildpacks/procfile"));
    EXPECT_FALSE(validate_id(""));
    EXPECT_FALSE(validate_id("/abs"));
    EXPECT_FALSE(validate_id("a/"));
    EXPECT_FALSE(validate_id(".."));
    EXPECT_FALSE(validate_id("app"));
    EXPECT_FALSE(validate_id(std::string("a\0b", 3)));
    EXPECT_TRUE(validate_version("1.2.3"));
    EXPECT_FALSE(validate_version(".."));
    EXPECT_FALSE(validate_version("1/2"));
    EXPECT_FALSE(validate_version(""));
}

TEST(CnbApi, SupportedRange) {
    EXPECT_FALSE(buildpack_api_supported({0, 6}));
    EXPECT_TRUE(buildpack_api_supported({0, 7}));
    EXPECT_TRUE(buildpack_api_supported({0, 12}));
    EXPECT_FALSE(buildpack_api_supported({0, 13}));
    EXPECT_FALSE(buildpack_api_supported({1, 0}));
    EXPECT_FALSE(parse_api_version("0.1x"));
    EXPECT_FALSE(parse_api_version("1"));
    EXPECT_FALSE(parse_api_version(".1"));
}

TEST(CnbBuilderConfig, LabelsAndEnv) {
    std::map<std::string, std::string> labels = {
        {"io.buildpacks.builder.metadata",
         R"({"description":"sample","buildpacks":[{"id":"samples/hello-world","version":"0.0.1"}],
             "stack":{"runImage":{"image":"old/run","mirrors":[]}},
             "images":[{"image":"cnbs/sample-base-run:noble","mirrors":["m.example/run"]}],
             "lifecycle":{"version":"0.21.0"}})"},
        {"io.buildpacks.stack.id", "io.buildpacks.stacks.noble"}};
    auto info =
        parse_builder_config(labels, {"PATH=/bin", "CNB_USER_ID=1002", "CNB_GROUP_ID=1003"});
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->uid, 1002u);
    EXPECT_EQ(info->gid, 1003u);
    EXPECT_EQ(info->stack_id, "io.buildpacks.stacks.noble");
    EXPECT_EQ(info->description, "sample");
    EXPECT_EQ(info->lifecycle_version, "0.21.0");
    ASSERT_EQ(info->run_images.size(), 1u);  // images[] wins over stack.runImage
    EXPECT_EQ(info->run_images[0].image, "cnbs/sample-base-run:noble");
    EXPECT_EQ(info->run_images[0].mirrors, std::vector<std::string>{"m.example/run"});
    ASSERT_EQ(info->buildpacks.size(), 1u);
    EXPECT_EQ(info->buildpacks[0].first, "samples/hello-world");

    labels["io.buildpacks.builder.metadata"] = R"({"stack":{"runImage":{"image":"old/run"}}})";
    info =
        parse_builder_config(labels, {"CNB_USER_ID=1000", "CNB_GROUP_ID=1000", "CNB_STACK_ID=s"});
    ASSERT_TRUE(info) << info.error().message();
    ASSERT_EQ(info->run_images.size(), 1u);
    EXPECT_EQ(info->run_images[0].image, "old/run");
    EXPECT_EQ(info->stack_id, "s");
}

TEST(CnbBuilderConfig, Errors) {
    std::map<std::string, std::string> labels = {{"io.buildpacks.builder.metadata", "{}"}};
    struct Case {
        std::map<std::string, std::string> labels;
        std::vector<std::string> env;
        const char* expected;
    } cases[] = {
        {labels, {"CNB_GROUP_ID=1"}, "CNB_USER_ID and CNB_GROUP_ID must both be set"},
        {labels, {"CNB_USER_ID=0", "CNB_GROUP_ID=0"}, "must not run as root"},
        {labels, {"CNB_USER_ID=12a", "CNB_GROUP_ID=1"}, "CNB_USER_ID=`12a`: expected a numeric id"},
        {labels, {"CNB_USER_ID=1", "CNB_GROUP_ID=99999999999"}, "expected a numeric id"},
        {{}, {"CNB_USER_ID=1", "CNB_GROUP_ID=1"}, "no `io.buildpacks.builder.metadata` label"},
        {{{"io.buildpacks.builder.metadata", "{"}},
         {"CNB_USER_ID=1", "CNB_GROUP_ID=1"},
         "label `io.buildpacks.builder.metadata`: "},
        {{{"io.buildpacks.builder.metadata", R"({"images":[{"mirrors":[]}]})"}},
         {"CNB_USER_ID=1", "CNB_GROUP_ID=1"},
         "images[]"},
        {{{"io.buildpacks.builder.metadata", R"({"buildpacks":[{"id":1}]})"}},
         {"CNB_USER_ID=1", "CNB_GROUP_ID=1"},
         "needs string id and version"},
    };
    for (const Case& c : cases) {
        auto info = parse_builder_config(c.labels, c.env);
        ASSERT_FALSE(info) << c.expected;
        EXPECT_NE(info.error().message().find(c.expected), std::string::npos)
            << info.error().message();
    }
}

class CnbBuilderRootfs : public ::testing::Test {
protected:
    void SetUp() override {
        auto dir = base::TempDir::create("cnb-buildpack-test");
        ASSERT_TRUE(dir) << dir.error().to_string();
        m_dir = std::move(*dir);
        m_root = m_dir.join("rootfs");
        fs::create_directories(m_root);
        m_fd = base::UniqueFd(::open(m_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(m_fd);
    }
    void add(const std::string& path, const std::string& text) { write_text(m_root + path, text); }

    base::TempDir m_dir;
    std::string m_root;
    base::UniqueFd m_fd;
};

TEST_F(CnbBuilderRootfs, LoadsAnEscapedIdDirectory) {
    add("/cnb/buildpacks/samples_hello-world/0.0.1/buildpack.toml",
        "api = \"0.10\"\n[buildpack]\nid = \"samples/hello-world\"\nversion = \"0.0.1\"\n");
    add("/cnb/buildpacks/samples_hello-world/0.0.1/bin/build", "#!/bin/sh\n");
    auto bp = load_buildpack(m_fd.get(), "samples/hello-world", "0.0.1");
    ASSERT_TRUE(bp) << bp.error().to_string();
    EXPECT_EQ(bp->dir, "/cnb/buildpacks/samples_hello-world/0.0.1");
    EXPECT_TRUE(bp->has_bin_build);
    EXPECT_EQ(bp->effective_targets(), std::vector<Target>{(Target{"linux", "", "", {}})});
}

TEST_F(CnbBuilderRootfs, MismatchedIdUnsupportedApiAndMissingAreErrors) {
    add("/cnb/buildpacks/a/1/buildpack.toml",
        "api = \"0.10\"\n[buildpack]\nid = \"b\"\nversion = \"1\"\n");
    add("/cnb/buildpacks/old/1/buildpack.toml",
        "api = \"0.6\"\n[buildpack]\nid = \"old\"\nversion = \"1\"\n");
    auto bp = load_buildpack(m_fd.get(), "a", "1");
    EXPECT_NE(
        error_of(bp).find("/cnb/buildpacks/a/1/buildpack.toml: declares `b@1`, expected `a@1`"),
        std::string::npos)
        << error_of(bp);
    bp = load_buildpack(m_fd.get(), "old", "1");
    ASSERT_FALSE(bp);
    EXPECT_EQ(bp.error().kind(), base::ErrorKind::Unsupported);
    EXPECT_NE(error_of(bp).find("Buildpack API 0.6 is not supported"), std::string::npos);
    bp = load_buildpack(m_fd.get(), "missing", "1");
    ASSERT_FALSE(bp);
    EXPECT_EQ(bp.error().kind(), base::ErrorKind::NotFound);
    EXPECT_NE(error_of(bp).find("buildpack `missing@1` is not in the builder"), std::string::npos);
    // Ids and versions are checked before they become paths.
    bp = load_buildpack(m_fd.get(), "../../etc", "1");
    ASSERT_FALSE(bp);
    bp = load_buildpack(m_fd.get(), "a", "..");
    ASSERT_FALSE(bp);
}

TEST_F(CnbBuilderRootfs, SymlinksInTheImageStayInsideTheRootfs) {
    // A buildpack.toml outside the rootfs that a naive open would reach.
    write_text(m_dir.join("outside/buildpack.toml"),
               "api = \"0.10\"\n[buildpack]\nid = \"evil\"\nversion = \"1\"\n");
    fs::create_directories(m_root + "/cnb/buildpacks/evil");
    fs::create_symlink("../../../../outside", m_root + "/cnb/buildpacks/evil/1");
    auto bp = load_buildpack(m_fd.get(), "evil", "1");
    ASSERT_FALSE(bp);
    EXPECT_EQ(bp.error().kind(), base::ErrorKind::NotFound) << bp.error().to_string();
    // An absolute link resolves at the rootfs, not the host root.
    add("/inside/buildpack.toml", "api = \"0.10\"\n[buildpack]\nid = \"evil\"\nversion = \"2\"\n");
    fs::create_symlink("/inside", m_root + "/cnb/buildpacks/evil/2");
    bp = load_buildpack(m_fd.get(), "evil", "2");
    ASSERT_TRUE(bp) << bp.error().to_string();
    // A FIFO or directory is not read as a file.
    fs::create_directories(m_root + "/cnb/order.toml");
    auto order = load_order(m_fd.get());
    ASSERT_FALSE(order);
    EXPECT_NE(order.error().message().find("is not a regular file"), std::string::npos);
}

TEST_F(CnbBuilderRootfs, LoadOrderNamesTheFile) {
    add("/cnb/order.toml", "[[order]]\n[[order.group]]\nid = \"a\"\nversion = 1\n");
    auto order = load_order(m_fd.get());
    ASSERT_FALSE(order);
    EXPECT_NE(order.error().message().find("/cnb/order.toml:4: `version` must be a string"),
              std::string::npos)
        << order.error().message();
}

}  // namespace
}  // namespace locald::cnb
