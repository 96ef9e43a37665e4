#include "oci/digest.h"

#include <gtest/gtest.h>

#include "oci/media_types.h"

namespace locald::oci {
namespace {

TEST(Digest, KnownVectors) {
    EXPECT_EQ(Digest::sha256_of("").str(),
              "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(Digest::sha256_of("abc").hex(),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(Digest::of(DigestAlgorithm::Sha512, "abc").hex().substr(0, 16), "ddaf35a193617aba");
}

TEST(Digest, StreamingEqualsOneShot) {
    Digester digester;
    digester.update("hello ");
    digester.update(std::string_view("world"));
    EXPECT_EQ(digester.digest(), Digest::sha256_of("hello world"));
}

TEST(Digest, ParseValidatesEveryPart) {
    std::string hex(64, 'a');
    EXPECT_TRUE(Digest::parse("sha256:" + hex).has_value());
    EXPECT_TRUE(Digest::parse("sha512:" + std::string(128, '0')).has_value());
    for (std::string bad :
         {std::string("sha256"), "sha256:" + std::string(63, 'a'), "sha256:" + std::string(64, 'A'),
          "sha256:" + std::string(63, 'a') + "g", "md5:" + hex,
          "sha256:../../../../etc/passwd" + std::string(36, 'a'), "SHA256:" + hex,
          "sha512:" + hex}) {
        SCOPED_TRACE(bad);
        auto digest = Digest::parse(bad);
        ASSERT_FALSE(digest.has_value());
        EXPECT_EQ(digest.error().kind(), base::ErrorKind::InvalidArgument);
    }
}

TEST(Digest, LayoutPathAndShortForm) {
    auto digest = Digest::sha256_of("x");
    EXPECT_EQ(digest.layout_path(), "blobs/sha256/" + digest.hex());
    EXPECT_EQ(digest.short_str(), "sha256:" + digest.hex().substr(0, 12));
    EXPECT_EQ(fmt::format("{}", digest), digest.str());
}

TEST(MediaTypes, Predicates) {
    using namespace media_types;
    EXPECT_TRUE(is_index(kOciIndex));
    EXPECT_TRUE(
        is_index(" application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"));
    EXPECT_TRUE(is_manifest(kDockerManifest));
    EXPECT_FALSE(is_manifest(kOciIndex));
    EXPECT_TRUE(is_schema1(kDockerSchema1SignedManifest));
    EXPECT_TRUE(is_layer(kDockerLayerGzip));
    EXPECT_TRUE(is_nondistributable(kDockerForeignLayerGzip));
    EXPECT_EQ(layer_compression(kOciLayerZstd), Compression::Zstd);
    EXPECT_EQ(layer_compression(kDockerLayerGzip), Compression::Gzip);
    EXPECT_EQ(layer_compression(kOciLayer), Compression::None);
    EXPECT_EQ(layer_compression("application/octet-stream"), Compression::Unknown);
}

}  // namespace
}  // namespace locald::oci
