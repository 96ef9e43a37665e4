#include "oci/manifest.h"

#include <gtest/gtest.h>

#include "oci/media_types.h"

namespace locald::oci {
namespace {

std::string digest_of(std::string_view data) {
    return Digest::sha256_of(data).str();
}

std::string oci_manifest(std::string extra = "") {
    return fmt::format(
        R"({{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
        R"("config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":7}},)"
        R"("layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}},)"
        R"({{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"{}","size":4,)"
        R"("annotations":{{"a":"b"}}}}]{}}})",
        digest_of("config!"), digest_of("abc"), digest_of("abcd"), extra);
}

TEST(Manifest, ParsesOciManifestAndKeepsRawBytes) {
    // Unusual spacing on purpose: the digest must be over these exact bytes.
    std::string raw = " " + oci_manifest() + "\n";
    auto manifest = parse_image_manifest(raw, media_types::kOciManifest);
    ASSERT_TRUE(manifest.has_value()) << manifest.error().message();
    EXPECT_EQ(manifest->raw, raw);
    EXPECT_EQ(manifest->digest, Digest::sha256_of(raw));
    EXPECT_EQ(manifest->config.size, 7);
    ASSERT_EQ(manifest->layers.size(), 2u);
    EXPECT_EQ(manifest->layers[1].annotation("a"), "b");
    EXPECT_EQ(media_types::layer_compression(manifest->layers[1].media_type),
              media_types::Compression::Zstd);
}

TEST(Manifest, DockerSchema2) {
    std::string raw = fmt::format(
        R"({{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
        R"("config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":1}},)"
        R"("layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":2}}]}})",
        digest_of("c"), digest_of("ll"));
    auto document = parse_manifest_document(raw);
    ASSERT_TRUE(document.has_value()) << document.error().message();
    ASSERT_TRUE(std::holds_alternative<ImageManifest>(*document));
    EXPECT_EQ(std::get<ImageManifest>(*document).media_type, media_types::kDockerManifest);
}

TEST(Manifest, Schema1IsRefusedClearly) {
    std::string raw = R"({"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]})";
    for (auto type : {std::string_view(), media_types::kDockerSchema1SignedManifest}) {
        auto document = parse_manifest_document(raw, type);
        ASSERT_FALSE(document.has_value());
        EXPECT_EQ(document.error().kind(), base::ErrorKind::Unsupported);
        EXPECT_NE(document.error().message().find("schema 1"), std::string::npos)
            << document.error().message();
    }
}

TEST(Manifest, InvalidDocuments) {
    struct Case {
        std::string raw;
        std::string_view type;
        const char* fragment;
    };
    std::string good = oci_manifest();
    const Case cases[] = {
        {"not json", media_types::kOciManifest, "not valid JSON"},
        {"[]", media_types::kOciManifest, "JSON object"},
        {R"({"schemaVersion":3})", media_types::kOciManifest, "schemaVersion 3"},
        {R"({"mediaType":"x"})", media_types::kOciManifest, "schemaVersion"},
        {good, media_types::kDockerManifest, "described as"},
        {good, media_types::kOciIndex, "not an image manifest type"},
        {R"({"schemaVersion":2,"layers":[]})", media_types::kOciManifest, "`config` is missing"},
        {fmt::format(
             R"({{"schemaVersion":2,"config":{{"mediaType":"x","digest":"sha256:1","size":1}},"layers":[]}})"),
         media_types::kOciManifest, "needs 64 hex"},
        {fmt::format(
             R"({{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{}","size":-1}},"layers":[]}})",
             digest_of("")),
         media_types::kOciManifest, "non-negative"},
        {oci_manifest(R"(,"manifests":[])"), media_types::kOciManifest, "index and a manifest"},
        {std::string(kMaxManifestBytes + 1, ' '), media_types::kOciManifest, "limit"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.raw.substr(0, 80));
        auto manifest = parse_image_manifest(c.raw, c.type);
        ASSERT_FALSE(manifest.has_value());
        EXPECT_NE(manifest.error().message().find(c.fragment), std::string::npos)
            << manifest.error().message();
    }
}

std::string index_with(std::string entries) {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)" +
           entries + "]}";
}

std::string entry(std::string_view seed, std::string platform, std::string annotations = "") {
    return fmt::format(
        R"({{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":10,"platform":{}{}}})",
        digest_of(seed), platform, annotations.empty() ? "" : ",\"annotations\":" + annotations);
}

TEST(Index, SelectsHostPlatformAndSkipsAttestations) {
    std::string raw =
        index_with(entry("att", R"({"architecture":"unknown","os":"unknown"})",
                         R"({"vnd.docker.reference.type":"attestation-manifest"})") +
                   "," + entry("arm", R"({"architecture":"arm","os":"linux","variant":"v7"})") +
                   "," + entry("amd", R"({"architecture":"amd64","os":"linux"})") + "," +
                   entry("arm64", R"({"architecture":"arm64","os":"linux","variant":"v8"})"));
    auto index = parse_image_index(raw, media_types::kOciIndex);
    ASSERT_TRUE(index.has_value()) << index.error().message();
    ASSERT_EQ(index->manifests.size(), 4u);
    EXPECT_TRUE(index->manifests[0].is_attestation());

    auto amd = select_manifest(*index, PlatformMatcher(*parse_platform("linux/amd64")));
    ASSERT_TRUE(amd.has_value()) << amd.error().message();
    EXPECT_EQ(amd->digest, Digest::sha256_of("amd"));

    auto arm64 = select_manifest(*index, PlatformMatcher(*parse_platform("linux/arm64/v8")));
    ASSERT_TRUE(arm64.has_value());
    EXPECT_EQ(arm64->digest, Digest::sha256_of("arm64"));

    auto armv6 = select_manifest(*index, PlatformMatcher(*parse_platform("linux/arm/v6")));
    ASSERT_FALSE(armv6.has_value());
    EXPECT_EQ(armv6.error().kind(), base::ErrorKind::NotFound);
    EXPECT_NE(armv6.error().message().find("linux/arm/v7"), std::string::npos);
    EXPECT_EQ(armv6.error().message().find("unknown"), std::string::npos)
        << "attestations must not be offered: " << armv6.error().message();
}

TEST(Index, PrefersExactVariantOverFallback) {
    std::string raw =
        index_with(entry("v1", R"({"architecture":"amd64","os":"linux"})") + "," +
                   entry("v3", R"({"architecture":"amd64","os":"linux","variant":"v3"})"));
    auto index = parse_image_index(raw).release_value();
    auto chosen = select_manifest(index, PlatformMatcher(*parse_platform("linux/amd64/v3")));
    EXPECT_EQ(chosen->digest, Digest::sha256_of("v3"));
    auto only386 = index_with(entry("386", R"({"architecture":"386","os":"linux"})"));
    auto fallback = select_manifest(parse_image_index(only386).release_value(),
                                    PlatformMatcher(*parse_platform("linux/amd64")));
    EXPECT_EQ(fallback->digest, Digest::sha256_of("386"));
}

TEST(Index, InvalidIndexes) {
    EXPECT_FALSE(parse_image_index(R"({"schemaVersion":2,"manifests":{}})").has_value());
    EXPECT_FALSE(
        parse_image_index(R"({"schemaVersion":2,"manifests":[],"config":{}})").has_value());
    auto no_type =
        parse_image_index(index_with(fmt::format(R"({{"digest":"{}","size":1}})", digest_of("x"))));
    ASSERT_FALSE(no_type.has_value());
    EXPECT_NE(no_type.error().message().find("no mediaType"), std::string::npos);
    auto as_manifest = parse_image_manifest(index_with(""));
    EXPECT_FALSE(as_manifest.has_value());
}

TEST(Config, ParsesRuntimeDefaults) {
    std::string raw = fmt::format(R"({{
      "created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
      "config": {{"User": "1000:1000", "Env": ["PATH=/bin", "A=b=c"], "Entrypoint": ["/init"],
                 "Cmd": null, "WorkingDir": "/app", "ExposedPorts": {{"8080/tcp": {{}}, "53/udp": {{}}}},
                 "Labels": {{"x": "y"}}, "Volumes": {{"/data": {{}}}}, "StopSignal": "SIGINT"}},
      "rootfs": {{"type": "layers", "diff_ids": ["{}", "{}"]}},
      "history": [{{"created_by": "a"}}, {{"created_by": "b", "empty_layer": true}}]}})",
                                  digest_of("1"), digest_of("2"));
    auto config = parse_image_config(raw);
    ASSERT_TRUE(config.has_value()) << config.error().message();
    EXPECT_EQ(config->digest, Digest::sha256_of(raw));
    EXPECT_EQ(config->platform.str(), "linux/amd64");
    EXPECT_EQ(config->config.user, "1000:1000");
    EXPECT_EQ(config->config.env, (std::vector<std::string>{"PATH=/bin", "A=b=c"}));
    ASSERT_TRUE(config->config.entrypoint.has_value());
    EXPECT_EQ(*config->config.entrypoint, std::vector<std::string>{"/init"});
    EXPECT_FALSE(config->config.cmd.has_value());
    EXPECT_EQ(config->config.working_dir, "/app");
    EXPECT_EQ(config->config.exposed_ports, (std::vector<std::string>{"53/udp", "8080/tcp"}));
    EXPECT_EQ(config->config.labels.at("x"), "y");
    EXPECT_EQ(config->config.volumes, std::vector<std::string>{"/data"});
    ASSERT_EQ(config->diff_ids.size(), 2u);
    EXPECT_EQ(config->diff_ids[1], Digest::sha256_of("2"));
    ASSERT_EQ(config->history.size(), 2u);
    EXPECT_TRUE(config->history[1].empty_layer);
}

TEST(Config, Invalid) {
    EXPECT_FALSE(parse_image_config(R"({"os":"linux","rootfs":{"type":"layers","diff_ids":[]}})")
                     .has_value());
    auto bad_diff = parse_image_config(
        R"({"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:zz"]}})");
    ASSERT_FALSE(bad_diff.has_value());
    EXPECT_NE(bad_diff.error().message().find("diff_ids[0]"), std::string::npos);
    EXPECT_FALSE(
        parse_image_config(
            R"({"os":"linux","architecture":"amd64","rootfs":{"type":"tarballs","diff_ids":[]}})")
            .has_value());
    EXPECT_FALSE(
        parse_image_config(
            R"({"os":"linux","architecture":"amd64","config":{"Env":"PATH=/"},"rootfs":{"type":"layers","diff_ids":[]}})")
            .has_value());
    EXPECT_FALSE(parse_image_config(std::string(kMaxConfigBytes + 1, ' ')).has_value());
}

}  // namespace
}  // namespace locald::oci
