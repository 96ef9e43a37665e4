#include "oci/store.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "base/json.h"
#include "base/sys.h"
#include "base/temp_dir.h"
#include "oci/image.h"
#include "oci/layout.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace locald::oci {
namespace {

class StoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir = base::TempDir::create("oci-store-test").release_value();
        auto store = ContentStore::open(m_dir.path() + "/data");
        ASSERT_TRUE(store.has_value()) << store.error().message();
        m_store.emplace(store.release_value());
    }
    ContentStore& store() { return *m_store; }

    base::TempDir m_dir;
    std::optional<ContentStore> m_store;
};

TEST_F(StoreTest, OpenCreatesAnOciLayout) {
    auto layout = base::read_file(store().root() + "/oci-layout", 1024);
    ASSERT_TRUE(layout.has_value());
    EXPECT_EQ(*layout, R"({"imageLayoutVersion":"1.0.0"})");
    auto index = base::Json::parse(*base::read_file(store().root() + "/index.json", 1 << 20));
    ASSERT_TRUE(index.has_value());
    EXPECT_EQ(index->find("schemaVersion")->as_int(), 2);
    EXPECT_TRUE(index->find("manifests")->is_array());
    struct stat st {};
    ASSERT_EQ(stat((m_dir.path() + "/data/store").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(StoreTest, IngestCommitVerifiesAndPublishesReadOnlyBlob) {
    std::string data = "hello blob";
    Digest digest = Digest::sha256_of(data);
    auto writer = store().begin_ingest(digest.str(), digest, data.size());
    ASSERT_TRUE(writer.has_value()) << writer.error().message();
    ASSERT_TRUE(writer->has_value());
    EXPECT_EQ((*writer)->offset(), 0);
    ASSERT_TRUE((*writer)->write("hello ").has_value());
    EXPECT_FALSE(store().has(digest));
    ASSERT_TRUE((*writer)->write("blob").has_value());
    auto committed = (*writer)->commit(digest, data.size());
    ASSERT_TRUE(committed.has_value()) << committed.error().message();
    EXPECT_TRUE(store().has(digest));
    EXPECT_EQ(*store().read_blob(digest, 1024), data);
    struct stat st {};
    ASSERT_EQ(stat(store().blob_path(digest).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0444u);
    EXPECT_EQ(store().list_ingests()->size(), 0u) << "a committed ingest leaves nothing behind";
    // Already present: begin_ingest says so.
    auto again = store().begin_ingest(digest.str(), digest, data.size());
    ASSERT_TRUE(again.has_value());
    EXPECT_FALSE(again->has_value());
}

TEST_F(StoreTest, DigestMismatchIsDataLossAndKeepsNothing) {
    Digest expected = Digest::sha256_of("the real content");
    auto writer = store().begin_ingest("k", expected, 16).release_value();
    ASSERT_TRUE(writer->write("the fake content").has_value());
    auto committed = writer->commit(expected, 16);
    ASSERT_FALSE(committed.has_value());
    EXPECT_EQ(committed.error().kind(), base::ErrorKind::DataLoss);
    EXPECT_NE(committed.error().message().find(expected.str()), std::string::npos);
    EXPECT_FALSE(store().has(expected));
    EXPECT_EQ(store().ingest_offset("k"), 0);
    EXPECT_EQ(store().list_ingests()->size(), 0u);
}

TEST_F(StoreTest, SizeMismatchAndOverflowAreDataLoss) {
    Digest expected = Digest::sha256_of("12345");
    auto writer = store().begin_ingest("short", expected, 5).release_value();
    ASSERT_TRUE(writer->write("1234").has_value());
    auto committed = writer->commit(expected, 5);
    ASSERT_FALSE(committed.has_value());
    EXPECT_EQ(committed.error().kind(), base::ErrorKind::DataLoss);
    EXPECT_NE(committed.error().message().find("size mismatch"), std::string::npos);

    auto over = store().begin_ingest("long", expected, 5).release_value();
    auto written = over->write("123456");
    ASSERT_FALSE(written.has_value());
    EXPECT_EQ(written.error().kind(), base::ErrorKind::DataLoss);
    EXPECT_EQ(store().ingest_offset("long"), 0);
}

TEST_F(StoreTest, PartialIngestResumesWithHashState) {
    std::string data(3 * 1024 * 1024 + 17, 'x');
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<char>(i * 7 % 251);
    }
    Digest digest = Digest::sha256_of(data);
    {
        auto writer = store().begin_ingest("resume-me", digest, data.size()).release_value();
        ASSERT_TRUE(writer->write(std::string_view(data).substr(0, 2000000)).has_value());
        // Dropped without commit: an interrupted download.
    }
    EXPECT_EQ(store().ingest_offset("resume-me"), 2000000);
    auto ingests = store().list_ingests().release_value();
    ASSERT_EQ(ingests.size(), 1u);
    EXPECT_EQ(ingests[0].key, "resume-me");
    EXPECT_FALSE(ingests[0].locked);

    auto writer = store().begin_ingest("resume-me", digest, data.size()).release_value();
    ASSERT_TRUE(writer.has_value());
    EXPECT_EQ(writer->offset(), 2000000);
    ASSERT_TRUE(writer->write(std::string_view(data).substr(2000000)).has_value());
    auto committed = writer->commit(digest, data.size());
    ASSERT_TRUE(committed.has_value()) << committed.error().message();
    EXPECT_TRUE(store().verify_blob(digest).has_value());
}

TEST_F(StoreTest, ResumeWithDifferentExpectationRestarts) {
    Digest first = Digest::sha256_of("first");
    {
        auto writer = store().begin_ingest("same-key", first, 5).release_value();
        ASSERT_TRUE(writer->write("fir").has_value());
    }
    Digest second = Digest::sha256_of("second!");
    auto writer = store().begin_ingest("same-key", second, 7).release_value();
    EXPECT_EQ(writer->offset(), 0);
    ASSERT_TRUE(writer->write("second!").has_value());
    ASSERT_TRUE(writer->commit(second, 7).has_value());
}

TEST_F(StoreTest, CorruptBlobIsDetectedOnRead) {
    Digest digest = store().write_blob("original").release_value();
    std::string path = store().blob_path(digest);
    chmod(path.c_str(), 0644);
    ASSERT_TRUE(base::write_file(path, "tampered").has_value());
    auto read = store().read_blob(digest, 1024);
    ASSERT_FALSE(read.has_value());
    EXPECT_EQ(read.error().kind(), base::ErrorKind::DataLoss);
    EXPECT_FALSE(store().verify_blob(digest).has_value());
}

// Two processes ingest the same blob at once: one commits, the other waits
// on the flock and then finds the blob present; the blob is intact and
// there is exactly one copy.
TEST_F(StoreTest, ConcurrentWritersFromTwoProcesses) {
    std::string data(8 * 1024 * 1024, '\0');
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<char>((i * 31) >> 3);
    }
    Digest digest = Digest::sha256_of(data);
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    std::vector<pid_t> children;
    for (int child = 0; child < 2; ++child) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            close(ready[1]);
            char go;
            if (read(ready[0], &go, 1) != 1) {
                _exit(10);
            }
            auto store = ContentStore::open(m_dir.path() + "/data");
            if (!store) {
                _exit(11);
            }
            auto writer = store->begin_ingest(digest.str(), digest, data.size());
            if (!writer) {
                _exit(12);
            }
            if (!writer->has_value()) {
                _exit(store->has(digest) ? 3 : 13);  // lost the race, blob is there
            }
            for (size_t offset = (*writer)->offset(); offset < data.size(); offset += 65536) {
                if (!(*writer)->write(std::string_view(data).substr(offset, 65536))) {
                    _exit(14);
                }
            }
            _exit((*writer)->commit(digest, data.size()) ? 0 : 15);
        }
        children.push_back(pid);
    }
    close(ready[0]);
    ASSERT_EQ(write(ready[1], "gg", 2), 2);
    close(ready[1]);
    int committed = 0;
    int lost = 0;
    for (pid_t pid : children) {
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status));
        int code = WEXITSTATUS(status);
        ASSERT_TRUE(code == 0 || code == 3) << "child exit " << code;
        (code == 0 ? committed : lost)++;
    }
    EXPECT_GE(committed, 1);
    EXPECT_EQ(committed + lost, 2);
    EXPECT_TRUE(store().verify_blob(digest).has_value());
    EXPECT_EQ(store().list_blobs()->size(), 1u);
    EXPECT_EQ(store().list_ingests()->size(), 0u);
}

// A write that fails (here EFBIG from RLIMIT_FSIZE, standing in for ENOSPC)
// removes the ingest and leaves the store as it was.
TEST_F(StoreTest, FailedWriteRemovesTheIngest) {
    std::string data(2 * 1024 * 1024, 'f');
    Digest digest = Digest::sha256_of(data);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit {
            1024 * 1024, 1024 * 1024
        };
        if (setrlimit(RLIMIT_FSIZE, &limit) != 0) {
            _exit(10);
        }
        auto writer = store().begin_ingest("full", digest, data.size());
        if (!writer || !writer->has_value()) {
            _exit(11);
        }
        auto written = (*writer)->write(data);
        if (written) {
            _exit(12);
        }
        _exit(written.error().message().find("writing ingest `full`") != std::string::npos ? 0
                                                                                           : 13);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_FALSE(store().has(digest));
    EXPECT_EQ(store().ingest_offset("full"), 0);
    EXPECT_EQ(store().list_ingests()->size(), 0u);
}

// The same with small writes (libcurl's 16 KiB pieces), which the writer
// gathers: the failure surfaces at a later write or at commit, and the
// ingest is removed either way.
TEST_F(StoreTest, FailedGatheredWriteRemovesTheIngest) {
    std::string data(3 * 1024 * 1024, 'g');
    Digest digest = Digest::sha256_of(data);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit {
            1024 * 1024 + 4096, 1024 * 1024 + 4096
        };
        if (setrlimit(RLIMIT_FSIZE, &limit) != 0) {
            _exit(10);
        }
        auto writer = store().begin_ingest("gathered", digest, data.size());
        if (!writer || !writer->has_value()) {
            _exit(11);
        }
        for (size_t at = 0; at < data.size(); at += 16384) {
            auto written = (*writer)->write(std::string_view(data).substr(at, 16384));
            if (!written) {
                _exit(written.error().message().find("writing ingest `gathered`") !=
                              std::string::npos
                          ? 0
                          : 13);
            }
        }
        auto committed = (*writer)->commit(digest, data.size());
        _exit(committed ? 12 : 14);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_FALSE(store().has(digest));
    EXPECT_EQ(store().ingest_offset("gathered"), 0);
    EXPECT_EQ(store().list_ingests()->size(), 0u);
}

// Bytes gathered in memory reach the ingest when the writer is dropped, so
// an interrupted download resumes from everything it received.
TEST_F(StoreTest, DroppedWriterFlushesGatheredBytes) {
    std::string data(600 * 1024 + 5, 'd');
    Digest digest = Digest::sha256_of(data);
    {
        auto writer = store().begin_ingest("drop", digest, data.size()).release_value();
        ASSERT_TRUE(writer.has_value());
        for (size_t at = 0; at < 300 * 1024; at += 16384) {
            ASSERT_TRUE(writer->write(std::string_view(data).substr(at, 16384)));
        }
        EXPECT_EQ(writer->offset(), 300 * 1024 + 4096);  // 19 pieces of 16 KiB
    }
    EXPECT_EQ(store().ingest_offset("drop"), 300 * 1024 + 4096);
    {
        // Replacing a writer by move-assignment drops it the same way.
        std::string other(64 * 1024, 'o');
        Digest other_digest = Digest::sha256_of(other);
        auto replaced =
            store().begin_ingest("replaced", other_digest, other.size()).release_value();
        ASSERT_TRUE(replaced.has_value());
        ASSERT_TRUE(replaced->write(std::string_view(other).substr(0, 16384)));
        replaced = store().begin_ingest("another", other_digest, other.size()).release_value();
        EXPECT_EQ(store().ingest_offset("replaced"), 16384);
    }
    auto writer = store().begin_ingest("drop", digest, data.size()).release_value();
    ASSERT_TRUE(writer.has_value());
    ASSERT_EQ(writer->offset(), 300 * 1024 + 4096);
    ASSERT_TRUE(writer->write(std::string_view(data).substr(writer->offset())));
    auto committed = writer->commit(digest, data.size());
    ASSERT_TRUE(committed) << committed.error().message();
    EXPECT_TRUE(store().verify_blob(digest));
}

TEST_F(StoreTest, ThreadsIngestingTheSameKeySerialise) {
    std::string data(2 * 1024 * 1024, 'q');
    Digest digest = Digest::sha256_of(data);
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&] {
            auto writer = store().begin_ingest(digest.str(), digest, data.size());
            if (!writer) {
                return;
            }
            if (!writer->has_value()) {
                ok += store().has(digest) ? 1 : 0;
                return;
            }
            auto& w = **writer;
            if (w.write(std::string_view(data).substr(w.offset())) &&
                w.commit(digest, data.size())) {
                ++ok;
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(ok.load(), 4);
    EXPECT_TRUE(store().verify_blob(digest).has_value());
}

TEST_F(StoreTest, RefsAreIndexJsonEntriesWithProvenance) {
    Digest manifest =
        store().write_blob(R"({"schemaVersion":2,"config":{},"layers":[]})").release_value();
    RefRecord record;
    record.name = "docker.io/library/alpine:latest";
    record.target = Descriptor{
        .media_type = std::string(media_types::kOciManifest), .digest = manifest, .size = 10};
    record.source = "registry-1.docker.io/library/alpine:latest";
    ASSERT_TRUE(store().set_ref(record).has_value());
    auto got = store().get_ref("docker.io/library/alpine:latest").release_value();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->target.digest, manifest);
    EXPECT_EQ(got->source, record.source);
    EXPECT_EQ(got->pulled_at.size(), 20u) << got->pulled_at;

    // The file is a plain OCI index with the ref annotations other tools read.
    auto index = base::Json::parse(*base::read_file(store().root() + "/index.json", 1 << 20))
                     .release_value();
    const auto& entry = index.find("manifests")->as_array().at(0);
    EXPECT_EQ(entry.find("annotations")->find("org.opencontainers.image.ref.name")->as_string(),
              "docker.io/library/alpine:latest");
    EXPECT_EQ(entry.find("digest")->as_string(), manifest.str());

    record.name = "docker.io/library/alpine:3";
    ASSERT_TRUE(store().set_ref(record).has_value());
    record.target.size = 11;
    record.name = "docker.io/library/alpine:latest";
    ASSERT_TRUE(store().set_ref(record).has_value());  // replaces, no duplicate
    auto refs = store().list_refs().release_value();
    ASSERT_EQ(refs.size(), 2u);
    EXPECT_EQ(refs[0].target.size, 11);
    EXPECT_TRUE(*store().remove_ref("docker.io/library/alpine:3"));
    EXPECT_FALSE(*store().remove_ref("docker.io/library/alpine:3"));
    EXPECT_EQ(store().list_refs()->size(), 1u);
}

TEST_F(StoreTest, ConcurrentSetRefKeepsEveryEntry) {
    Digest digest = store().write_blob("m").release_value();
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([&, i] {
            for (int j = 0; j < 5; ++j) {
                RefRecord record{.name = fmt::format("localhost/t{}:{}", i, j),
                                 .target = {.media_type = std::string(media_types::kOciManifest),
                                            .digest = digest,
                                            .size = 1}};
                EXPECT_TRUE(store().set_ref(record).has_value());
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(store().list_refs()->size(), 40u);
}

// ---- images built in C++ for resolve / gc / layout tests

struct BuiltImage {
    Descriptor manifest;
    Digest config;
    std::vector<Digest> layers;
};

BuiltImage build_image(ContentStore& store, std::string_view seed, std::string arch = "amd64") {
    BuiltImage out;
    std::string layer_data = fmt::format("layer-of-{}", seed);
    std::string shared = "shared-layer";
    Digest layer = store.write_blob(layer_data).release_value();
    Digest shared_digest = store.write_blob(shared).release_value();
    std::string config = fmt::format(
        R"({{"author":"{}","architecture":"{}","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}})",
        seed, arch, Digest::sha256_of("diff1").str(), Digest::sha256_of("diff2").str());
    out.config = store.write_blob(config).release_value();
    std::string manifest = fmt::format(
        R"({{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}})",
        out.config.str(), config.size(), shared_digest.str(), shared.size(), layer.str(),
        layer_data.size());
    out.manifest = Descriptor{.media_type = std::string(media_types::kOciManifest),
                              .digest = store.write_blob(manifest).release_value(),
                              .size = static_cast<int64_t>(manifest.size())};
    out.layers = {shared_digest, layer};
    return out;
}

TEST_F(StoreTest, ResolveTagAndDigestRefsOffline) {
    auto image = build_image(store(), "a");
    auto missing = store().resolve(Reference::parse("alpine").release_value());
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().kind(), base::ErrorKind::NotFound);
    EXPECT_EQ(missing.error().message(),
              "not found: docker.io/library/alpine:latest in the local store");

    // A digest ref resolves from the blob alone, even with no ref recorded.
    auto by_digest = store().resolve(
        Reference::parse("localhost/x@" + image.manifest.digest.str()).release_value());
    ASSERT_TRUE(by_digest.has_value()) << by_digest.error().message();
    EXPECT_EQ(by_digest->media_type, media_types::kOciManifest);
    EXPECT_EQ(by_digest->size, image.manifest.size);

    ASSERT_TRUE(store()
                    .set_ref({.name = "docker.io/library/alpine:latest", .target = image.manifest})
                    .has_value());
    auto by_tag = store().resolve(Reference::parse("alpine").release_value());
    ASSERT_TRUE(by_tag.has_value());
    EXPECT_EQ(by_tag->digest, image.manifest.digest);

    auto resolved = resolve_image(store(), Reference::parse("alpine").release_value());
    ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
    EXPECT_EQ(resolved->manifest.layers.size(), 2u);
    EXPECT_EQ(*resolved->config.config.cmd, std::vector<std::string>{"/bin/sh"});

    auto uncached = store().resolve(
        Reference::parse("alpine@" + Digest::sha256_of("nope").str()).release_value());
    ASSERT_FALSE(uncached.has_value());
    EXPECT_NE(uncached.error().message().find("is not cached"), std::string::npos);
}

TEST_F(StoreTest, ResolveImageThroughAnIndex) {
    auto amd = build_image(store(), "amd", "amd64");
    auto arm = build_image(store(), "arm", "arm64");
    std::vector<Descriptor> entries{amd.manifest, arm.manifest};
    entries[0].platform = Platform{.os = "linux", .architecture = "amd64"};
    entries[1].platform = Platform{.os = "linux", .architecture = "arm64", .variant = "v8"};
    std::string index = serialize_index(entries);
    Descriptor root{.media_type = std::string(media_types::kOciIndex),
                    .digest = store().write_blob(index).release_value(),
                    .size = static_cast<int64_t>(index.size())};
    ASSERT_TRUE(store().set_ref({.name = "localhost/multi:1", .target = root}).has_value());
    auto ref = Reference::parse("localhost/multi:1").release_value();
    auto on_arm = resolve_image(store(), ref, *parse_platform("linux/arm64"));
    ASSERT_TRUE(on_arm.has_value()) << on_arm.error().message();
    EXPECT_EQ(on_arm->manifest_descriptor.digest, arm.manifest.digest);
    EXPECT_TRUE(on_arm->index.has_value());
    auto on_s390 = resolve_image(store(), ref, *parse_platform("linux/s390x"));
    ASSERT_FALSE(on_s390.has_value());
    EXPECT_EQ(on_s390.error().kind(), base::ErrorKind::NotFound);
}

TEST_F(StoreTest, GcKeepsReachableAndRemovesTheRest) {
    auto kept = build_image(store(), "kept");
    auto dropped = build_image(store(), "dropped");
    Digest stray = store().write_blob("stray").release_value();
    ASSERT_TRUE(store().set_ref({.name = "localhost/kept:1", .target = kept.manifest}).has_value());
    {
        auto writer = store().begin_ingest("stale", Digest::sha256_of("zz"), 2).release_value();
        ASSERT_TRUE(writer->write("z").has_value());
    }
    auto result = store().gc(std::chrono::seconds(0));
    ASSERT_TRUE(result.has_value()) << result.error().message();
    EXPECT_TRUE(store().has(kept.manifest.digest));
    EXPECT_TRUE(store().has(kept.config));
    for (const auto& layer : kept.layers) {
        EXPECT_TRUE(store().has(layer));
    }
    EXPECT_FALSE(store().has(dropped.manifest.digest));
    EXPECT_FALSE(store().has(dropped.config));
    EXPECT_FALSE(store().has(dropped.layers[1]));
    EXPECT_TRUE(store().has(dropped.layers[0])) << "the shared layer is still used";
    EXPECT_FALSE(store().has(stray));
    EXPECT_EQ(result->removed_blobs.size(), 4u);
    EXPECT_EQ(result->removed_ingests, std::vector<std::string>{"stale"});
}

TEST_F(StoreTest, GcWaitsForNoWriterLease) {
    Digest pending = store().write_blob("committed by a pull, not yet referenced").release_value();
    {
        auto lease = store().hold_write_lease();
        ASSERT_TRUE(lease.has_value()) << lease.error().message();
        auto second = store().hold_write_lease();  // shared: pulls run side by side
        ASSERT_TRUE(second.has_value());
        auto result = store().gc(std::chrono::seconds(0));
        ASSERT_FALSE(result.has_value());
        EXPECT_EQ(result.error().kind(), base::ErrorKind::Unavailable);
        EXPECT_TRUE(store().has(pending));
    }
    auto result = store().gc(std::chrono::seconds(0));
    ASSERT_TRUE(result.has_value()) << result.error().message();
    EXPECT_FALSE(store().has(pending));
}

TEST_F(StoreTest, SaveLoadDirectoryRoundTripIsByteIdentical) {
    auto image = build_image(store(), "rt");
    auto ref = Reference::parse("localhost:5000/app:v1").release_value();
    ASSERT_TRUE(store().set_ref({.name = ref.str(), .target = image.manifest}).has_value());
    std::string out = m_dir.path() + "/saved";
    auto saved = export_layout(store(), {ref}, out);
    ASSERT_TRUE(saved.has_value()) << saved.error().message();
    auto index = base::Json::parse(*base::read_file(out + "/index.json", 1 << 20)).release_value();
    const auto& annotations = *index.find("manifests")->as_array().at(0).find("annotations");
    EXPECT_EQ(annotations.find("io.containerd.image.name")->as_string(), "localhost:5000/app:v1");
    EXPECT_EQ(annotations.find("org.opencontainers.image.ref.name")->as_string(), "v1");
    // Saving over an existing layout is refused.
    EXPECT_EQ(export_layout(store(), {ref}, out).error().kind(), base::ErrorKind::AlreadyExists);

    auto other = ContentStore::open(m_dir.path() + "/other").release_value();
    auto loaded = import_layout(other, out);
    ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
    ASSERT_EQ(loaded->size(), 1u);
    EXPECT_EQ((*loaded)[0].name, ref.str());
    for (auto digest : {image.manifest.digest, image.config, image.layers[0], image.layers[1]}) {
        EXPECT_EQ(*other.read_blob(digest, 1 << 20), *store().read_blob(digest, 1 << 20));
    }
    auto record = other.get_ref(ref.str()).release_value();
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->source, "load:" + out);
}

TEST_F(StoreTest, LoadRejectsCorruptBlobs) {
    auto image = build_image(store(), "bad");
    auto ref = Reference::parse("localhost/bad:1").release_value();
    ASSERT_TRUE(store().set_ref({.name = ref.str(), .target = image.manifest}).has_value());
    std::string out = m_dir.path() + "/saved";
    ASSERT_TRUE(export_layout(store(), {ref}, out).has_value());
    std::string layer_path = out + "/" + image.layers[1].layout_path();
    ASSERT_TRUE(base::write_file(layer_path, "layer-of-BAD").has_value());  // same size
    auto other = ContentStore::open(m_dir.path() + "/other").release_value();
    auto loaded = import_layout(other, out);
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::DataLoss);
    EXPECT_NE(loaded.error().message().find(image.layers[1].str()), std::string::npos);
    EXPECT_FALSE(other.has(image.layers[1]));
    EXPECT_FALSE(other.get_ref(ref.str())->has_value());
}

void write_tar(const std::string& path,
               const std::vector<std::tuple<std::string, std::string, mode_t>>& members) {
    struct archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
    for (const auto& [name, data, type] : members) {
        struct archive_entry* entry = archive_entry_new();
        archive_entry_set_pathname(entry, name.c_str());
        archive_entry_set_filetype(entry, type);
        archive_entry_set_perm(entry, 0644);
        if (type == AE_IFLNK) {
            archive_entry_set_symlink(entry, data.c_str());
        } else {
            archive_entry_set_size(entry, data.size());
        }
        archive_write_header(a, entry);
        if (type == AE_IFREG) {
            archive_write_data(a, data.data(), data.size());
        }
        archive_entry_free(entry);
    }
    archive_write_close(a);
    archive_write_free(a);
}

TEST_F(StoreTest, LoadTarRefusesPathTraversal) {
    std::string layout = R"({"imageLayoutVersion":"1.0.0"})";
    std::string index = R"({"schemaVersion":2,"manifests":[]})";
    struct Case {
        std::string member;
        mode_t type;
        const char* fragment;
    };
    const Case cases[] = {
        {"../evil", AE_IFREG, "`..` component"},
        {"blobs/../../evil", AE_IFREG, "`..` component"},
        {"/etc/evil", AE_IFREG, "absolute path"},
        {"blobs/sha256/link", AE_IFLNK, "links are not allowed"},
        {"blobs/sha256/../../x", AE_IFREG, "`..` component"},
        {"blobs/sha256/notadigest", AE_IFREG, "unexpected member"},
    };
    int i = 0;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.member);
        std::string tar = fmt::format("{}/evil{}.tar", m_dir.path(), i++);
        write_tar(tar, {{"oci-layout", layout, AE_IFREG},
                        {"index.json", index, AE_IFREG},
                        {c.member, c.type == AE_IFLNK ? "/etc/passwd" : "x", c.type}});
        auto loaded = import_layout(store(), tar);
        ASSERT_FALSE(loaded.has_value());
        EXPECT_EQ(loaded.error().kind(), base::ErrorKind::InvalidArgument);
        EXPECT_NE(loaded.error().message().find(c.fragment), std::string::npos)
            << loaded.error().message();
    }
    struct stat st {};
    EXPECT_NE(lstat((m_dir.path() + "/evil").c_str(), &st), 0);
    EXPECT_NE(lstat((m_dir.path() + "/data/evil").c_str(), &st), 0);
    // The scratch directories are cleaned up.
    for (const auto& ingest : store().list_ingests().release_value()) {
        ADD_FAILURE() << "left behind: " << ingest.dir;
    }
}

TEST_F(StoreTest, SaveLoadTarRoundTrip) {
    auto image = build_image(store(), "tar");
    auto ref = Reference::parse("localhost/tarred:2").release_value();
    ASSERT_TRUE(store().set_ref({.name = ref.str(), .target = image.manifest}).has_value());
    std::string tar = m_dir.path() + "/image.tar";
    ASSERT_TRUE(export_layout(store(), {ref}, tar).has_value());
    auto other = ContentStore::open(m_dir.path() + "/other").release_value();
    auto loaded = import_layout(other, tar);
    ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
    auto resolved = resolve_image(other, ref);
    ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
    EXPECT_EQ(resolved->manifest.raw, *store().read_blob(image.manifest.digest, 1 << 20));
}

}  // namespace
}  // namespace locald::oci
