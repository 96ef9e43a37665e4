// docker save archives at the library level: member-name normalisation, link
// aliases (symlink and hardlink, chains and loops) and the OCI-vs-docker
// choice. Whole archives built like Docker's are covered end to end by
// tests/integration/test_oci_docker_load.py.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <tuple>

#include "base/atomic_file.h"
#include "base/sys.h"
#include "base/temp_dir.h"
#include "oci/image.h"
#include "oci/internal/docker_archive.h"
#include "oci/layout.h"
#include "oci/store.h"

namespace locald::oci {
namespace {

struct Member {
    std::string name;
    std::string data;  // file content, or the link target
    mode_t type = AE_IFREG;
    bool hardlink = false;
};

void write_tar(const std::string& path, const std::vector<Member>& members) {
    struct archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
    for (const auto& member : members) {
        struct archive_entry* entry = archive_entry_new();
        archive_entry_set_pathname(entry, member.name.c_str());
        archive_entry_set_perm(entry, 0644);
        if (member.hardlink) {
            archive_entry_set_filetype(entry, AE_IFREG);
            archive_entry_set_hardlink(entry, member.data.c_str());
            archive_entry_set_size(entry, 0);
        } else if (member.type == AE_IFLNK) {
            archive_entry_set_filetype(entry, AE_IFLNK);
            archive_entry_set_symlink(entry, member.data.c_str());
        } else {
            archive_entry_set_filetype(entry, member.type);
            archive_entry_set_size(entry, member.data.size());
        }
        archive_write_header(a, entry);
        if (member.type == AE_IFREG && !member.hardlink) {
            archive_write_data(a, member.data.data(), member.data.size());
        }
        archive_entry_free(entry);
    }
    archive_write_close(a);
    archive_write_free(a);
}

TEST(DockerArchiveTest, MemberNamesAreNormalisedOrRefused) {
    const std::pair<const char*, const char*> good[] = {
        {"manifest.json", "manifest.json"},
        {"./manifest.json", "manifest.json"},
        {"abc//layer.tar", "abc/layer.tar"},
        {"abc/./layer.tar/", "abc/layer.tar"},
        {".", ""},
    };
    for (const auto& [in, out] : good) {
        auto name = internal::normalize_member_name(in, "x.tar");
        ASSERT_TRUE(name) << in << ": " << name.error().message();
        EXPECT_EQ(*name, out) << in;
    }
    for (const char* bad : {"/etc/passwd", "../x", "a/../../x", "a/.."}) {
        auto name = internal::normalize_member_name(bad, "x.tar");
        ASSERT_FALSE(name) << bad;
        EXPECT_NE(name.error().message().find(bad), std::string::npos) << name.error().message();
    }
}

class DockerArchiveLoadTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir = base::TempDir::create("oci-docker-archive").release_value();
        m_store.emplace(ContentStore::open(m_dir.path() + "/data").release_value());
        m_layer = std::string(1024, 'L');  // content is opaque to the importer
        m_config =
            R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[")" +
            Digest::sha256_of(m_layer).str() + R"(",")" + Digest::sha256_of(m_layer).str() +
            R"("]}})";
        m_config_name = Digest::sha256_of(m_config).hex() + ".json";
    }

    std::string manifest_json(const std::string& second_layer) const {
        return R"([{"Config":")" + m_config_name + R"(","RepoTags":["example.com/a/b:1"],)" +
               R"("Layers":["one/layer.tar",")" + second_layer + R"("]}])";
    }

    base::TempDir m_dir;
    std::optional<ContentStore> m_store;
    std::string m_layer;
    std::string m_config;
    std::string m_config_name;
};

TEST_F(DockerArchiveLoadTest, HardlinkAndSymlinkChainsAlias) {
    std::string tar = m_dir.path() + "/save.tar";
    write_tar(tar, {{"one/layer.tar", m_layer},
                    {"mid/layer.tar", "one/layer.tar", AE_IFREG, true},
                    {"two/layer.tar", "../mid/layer.tar", AE_IFLNK},
                    {m_config_name, m_config},
                    {"manifest.json", manifest_json("two/layer.tar")}});
    auto loaded = import_layout(*m_store, tar);
    ASSERT_TRUE(loaded) << loaded.error().message();
    ASSERT_EQ(loaded->size(), 1u);
    EXPECT_EQ((*loaded)[0].name, "example.com/a/b:1");
    auto image = resolve_image(*m_store, Reference::parse("example.com/a/b:1").value());
    ASSERT_TRUE(image) << image.error().message();
    ASSERT_EQ(image->manifest.layers.size(), 2u);
    EXPECT_EQ(image->manifest.layers[1].digest, Digest::sha256_of(m_layer));
    EXPECT_EQ(image->manifest.config.digest, Digest::sha256_of(m_config));
}

TEST_F(DockerArchiveLoadTest, LinkLoopIsAnError) {
    std::string tar = m_dir.path() + "/loop.tar";
    write_tar(tar, {{"one/layer.tar", m_layer},
                    {"a/layer.tar", "../b/layer.tar", AE_IFLNK},
                    {"b/layer.tar", "../a/layer.tar", AE_IFLNK},
                    {m_config_name, m_config},
                    {"manifest.json", manifest_json("a/layer.tar")}});
    auto loaded = import_layout(*m_store, tar);
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message().find("too many links"), std::string::npos)
        << loaded.error().message();
    EXPECT_TRUE(m_store->list_refs().value().empty());
}

TEST_F(DockerArchiveLoadTest, NeitherFormatIsAClearError) {
    std::string tar = m_dir.path() + "/junk.tar";
    write_tar(tar, {{"hello.txt", "hi"}});
    auto loaded = import_layout(*m_store, tar);
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message().find("neither an OCI image layout"), std::string::npos)
        << loaded.error().message();
}

TEST_F(DockerArchiveLoadTest, DirectoryMembersStayInsideTheDirectory) {
    // An unpacked archive whose layer is a symlink to a host file: resolved
    // inside the directory, so the host file is never read.
    std::string dir = m_dir.path() + "/unpacked";
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir + "/one").c_str(), 0700), 0);
    ASSERT_EQ(::symlink("/etc/hostname", (dir + "/one/layer.tar").c_str()), 0);
    ASSERT_TRUE(base::atomic_write_file(dir + "/" + m_config_name, m_config, 0644));
    ASSERT_TRUE(
        base::atomic_write_file(dir + "/manifest.json", manifest_json("one/layer.tar"), 0644));
    auto loaded = import_layout(*m_store, dir);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::NotFound) << loaded.error().message();
    EXPECT_NE(loaded.error().message().find("one/layer.tar"), std::string::npos)
        << loaded.error().message();
}

TEST_F(DockerArchiveLoadTest, SparseMemberIsRefused) {
    // 1 KiB of data after a 256 MiB hole: the hole used to be read and
    // written into the store in full before the digest check failed.
    std::string tar = m_dir.path() + "/sparse.tar";
    {
        struct archive* a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        ASSERT_EQ(archive_write_open_filename(a, tar.c_str()), ARCHIVE_OK);
        auto add = [&](const std::string& name, const std::string& data, int64_t size,
                       bool sparse) {
            struct archive_entry* entry = archive_entry_new();
            archive_entry_set_pathname(entry, name.c_str());
            archive_entry_set_perm(entry, 0644);
            archive_entry_set_filetype(entry, AE_IFREG);
            archive_entry_set_size(entry, size);
            if (sparse) {
                // The data at the end: everything before it is a hole.
                archive_entry_sparse_add_entry(entry, size - static_cast<int64_t>(data.size()),
                                               static_cast<la_int64_t>(data.size()));
            }
            archive_write_header(a, entry);
            archive_write_data(a, data.data(), data.size());
            archive_entry_free(entry);
        };
        add("one/layer.tar", m_layer, int64_t{256} << 20, true);
        add(m_config_name, m_config, static_cast<int64_t>(m_config.size()), false);
        std::string manifest = manifest_json("one/layer.tar");
        add("manifest.json", manifest, static_cast<int64_t>(manifest.size()), false);
        archive_write_close(a);
        archive_write_free(a);
    }
    auto loaded = import_layout(*m_store, tar);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::InvalidArgument) << loaded.error().message();
    EXPECT_NE(loaded.error().message().find("sparse"), std::string::npos)
        << loaded.error().message();
    EXPECT_NE(loaded.error().message().find("one/layer.tar"), std::string::npos)
        << loaded.error().message();
}

TEST_F(DockerArchiveLoadTest, DirectoryFifoMemberIsRefusedWithoutBlocking) {
    // A FIFO named as a layer used to block the load in open(2) forever.
    std::string dir = m_dir.path() + "/unpacked";
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir + "/one").c_str(), 0700), 0);
    std::string fifo = dir + "/one/layer.tar";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    ASSERT_TRUE(base::atomic_write_file(dir + "/" + m_config_name, m_config, 0644));
    ASSERT_TRUE(
        base::atomic_write_file(dir + "/manifest.json", manifest_json("one/layer.tar"), 0644));
    // A blocked reader lets a non-blocking writer open the FIFO (and is
    // released by it); without one that open fails with ENXIO.
    std::atomic<bool> blocked{false};
    std::thread watchdog([&] {
        std::this_thread::sleep_for(std::chrono::seconds(2));
        int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            blocked = true;
            ::close(fd);
        }
    });
    auto loaded = import_layout(*m_store, dir);
    watchdog.join();
    EXPECT_FALSE(blocked) << "the load blocked opening a FIFO member";
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::InvalidArgument) << loaded.error().message();
    EXPECT_NE(loaded.error().message().find("not a regular file"), std::string::npos)
        << loaded.error().message();
}

TEST_F(DockerArchiveLoadTest, LayoutFifoBlobIsRefusedWithoutBlocking) {
    // An OCI layout directory whose manifest blob is a FIFO: the load used to
    // block in open(2) forever.
    std::string dir = m_dir.path() + "/layout";
    std::string manifest_digest = Digest::sha256_of("not read").str();
    std::string hex = manifest_digest.substr(7);
    ASSERT_TRUE(base::mkdir_p(dir + "/blobs/sha256", 0700));
    ASSERT_TRUE(
        base::atomic_write_file(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})", 0644));
    ASSERT_TRUE(base::atomic_write_file(
        dir + "/index.json",
        R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
            manifest_digest +
            R"(","size":8,"annotations":{"io.containerd.image.name":"example.com/a/b:1"}}]})",
        0644));
    std::string fifo = dir + "/blobs/sha256/" + hex;
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::atomic<bool> blocked{false};
    std::thread watchdog([&] {
        std::this_thread::sleep_for(std::chrono::seconds(2));
        int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            blocked = true;
            ::close(fd);
        }
    });
    auto loaded = import_layout(*m_store, dir);
    watchdog.join();
    EXPECT_FALSE(blocked) << "the load blocked opening a FIFO blob";
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message().find("not a regular file"), std::string::npos)
        << loaded.error().message();
    EXPECT_NE(loaded.error().message().find(hex), std::string::npos) << loaded.error().message();
}

TEST_F(DockerArchiveLoadTest, LayoutFifoIndexIsRefusedWithoutBlocking) {
    std::string dir = m_dir.path() + "/layout";
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_TRUE(
        base::atomic_write_file(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})", 0644));
    std::string fifo = dir + "/index.json";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::atomic<bool> blocked{false};
    std::thread watchdog([&] {
        std::this_thread::sleep_for(std::chrono::seconds(2));
        int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            blocked = true;
            ::close(fd);
        }
    });
    auto loaded = import_layout(*m_store, dir);
    watchdog.join();
    EXPECT_FALSE(blocked) << "the load blocked opening a FIFO index.json";
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message().find("index.json` is not a regular file"), std::string::npos)
        << loaded.error().message();
}

}  // namespace
}  // namespace locald::oci
