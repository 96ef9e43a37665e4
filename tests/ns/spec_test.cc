// Tests for ns/spec.h: JSON round trip and value parsing; capability names.
#include "ns/spec.h"

#include <gtest/gtest.h>
#include <linux/capability.h>

#include "ns/internal/context.h"
#include "ns/launcher.h"

namespace locald::ns {
namespace {

TEST(NsSpec, JsonRoundTripKeepsEveryField) {
    ContainerSpec spec;
    spec.name = "web";
    spec.rootfs.path = "/var/lib/x/merged";
    spec.rootfs.mounts.push_back({"overlay", "overlay", {"lowerdir=/a:/b", "userxattr"}});
    spec.args = {"/bin/sh", "-c", "echo hi"};
    spec.env = {"A=1", "B=two words"};
    spec.exact_env = true;
    spec.cwd = "/workspace";
    spec.user = "1000:1000";
    spec.additional_groups = {"audio"};
    spec.hostname = "h";
    spec.mounts.push_back({MountKind::Bind, "/src", "/workspace", false, {}});
    spec.mounts.push_back({MountKind::Volume, "/vol", "/data", true, {}});
    spec.mounts.push_back({MountKind::Tmpfs, "", "/tmp", false, {"size=64m"}});
    spec.network = NetworkMode::None;
    spec.read_only_rootfs = true;
    spec.resources.memory_bytes = 512 << 20;
    spec.resources.cpus = 1.5;
    spec.resources.pids = 256;
    spec.tty = true;
    spec.capabilities = std::vector<std::string>{"CAP_CHOWN"};
    spec.seccomp = false;
    spec.rlimits.push_back({"nofile", 1024, UINT64_MAX});
    spec.provide_etc_files = false;
    spec.state_dir = "/s";
    spec.seccomp_cache_dir = "/c";
    spec.resources.cgroup_parent = "/sys/fs/cgroup/user/locald";
    spec.user_namespace = "/proc/42/ns/user";

    std::string text = to_json(spec).dump();
    auto json = base::Json::parse(text);
    ASSERT_TRUE(json) << json.error().to_string();
    auto back = spec_from_json(*json);
    ASSERT_TRUE(back) << back.error().to_string();
    EXPECT_EQ(to_json(*back).dump(), text);
    EXPECT_EQ(back->mounts[1].kind, MountKind::Volume);
    EXPECT_TRUE(back->mounts[1].read_only);
    EXPECT_EQ(back->rlimits[0].hard, UINT64_MAX);
    EXPECT_EQ(*back->resources.cpus, 1.5);
    EXPECT_EQ(back->network, NetworkMode::None);
    EXPECT_EQ(back->resources.cgroup_parent, "/sys/fs/cgroup/user/locald");
    EXPECT_EQ(back->user_namespace, "/proc/42/ns/user");
}

TEST(NsSpec, DefaultsFromAMinimalDocument) {
    auto json = base::Json::parse(R"({"rootfs": {"path": "/r"}, "args": ["true"]})");
    ASSERT_TRUE(json);
    auto spec = spec_from_json(*json);
    ASSERT_TRUE(spec) << spec.error().to_string();
    EXPECT_EQ(spec->cwd, "/");
    EXPECT_TRUE(spec->seccomp);
    EXPECT_EQ(spec->network, NetworkMode::Host);
    EXPECT_FALSE(spec->capabilities.has_value());
}

TEST(NsSpec, RejectsBadDocuments) {
    for (const char* text :
         {R"([])", R"({"args": ["x"]})", R"({"rootfs": {"path": "/r"}, "network": "bridge"})",
          R"({"rootfs": {"path": "/r"}, "args": [1]})",
          R"({"rootfs": {"path": "/r"}, "mounts": [{"kind": "nfs", "destination": "/x"}]})",
          R"({"rootfs": {"path": "/r"}, "args": ["x"], "user_namespace": "proc/1/ns/user"})",
          R"({"rootfs": {"path": "/r"}, "args": ["x"], "resources": {"cgroup_parent": "rel"}})"}) {
        auto json = base::Json::parse(text);
        ASSERT_TRUE(json) << text;
        EXPECT_FALSE(spec_from_json(*json)) << text;
    }
}

TEST(NsSpec, MemorySizes) {
    EXPECT_EQ(*parse_memory_size("512M"), 512LL << 20);
    EXPECT_EQ(*parse_memory_size("2g"), 2LL << 30);
    EXPECT_EQ(*parse_memory_size("4096"), 4096);
    EXPECT_EQ(*parse_memory_size("10k"), 10240);
    for (const char* bad : {"", "M", "-1M", "1.5G", "12Q", "99999999999999999999"}) {
        EXPECT_FALSE(parse_memory_size(bad)) << bad;
    }
}

TEST(NsCaps, DefaultSetIsContainersCommon) {
    uint64_t set = internal::default_capabilities();
    auto named = internal::capabilities_from_names({"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID",
                                                    "KILL", "NET_BIND_SERVICE", "SETFCAP", "SETGID",
                                                    "SETPCAP", "SETUID", "SYS_CHROOT"});
    ASSERT_TRUE(named);
    EXPECT_EQ(set, *named);
    EXPECT_EQ(set, 0x800405fbULL);  // what /proc/self/status shows as CapEff
    EXPECT_FALSE(set & (uint64_t{1} << CAP_SYS_ADMIN));
    EXPECT_FALSE(set & (uint64_t{1} << CAP_NET_RAW));
}

TEST(NsCaps, NamesAcceptPrefixAndCase) {
    auto set = internal::capabilities_from_names({"cap_net_raw", "Sys_Admin"});
    ASSERT_TRUE(set);
    EXPECT_EQ(*set, (uint64_t{1} << CAP_NET_RAW) | (uint64_t{1} << CAP_SYS_ADMIN));
    EXPECT_FALSE(internal::capabilities_from_names({"CAP_FLY"}));
}

TEST(NsLauncher, ExecFailureStatusFollowsDocker) {
    base::Error not_found(base::ErrorKind::NotFound,
                          "container setup step `exec`: executable `x` not found", ENOENT);
    base::Error denied(base::ErrorKind::PermissionDenied,
                       "container setup step `exec`: executing `/x`", EACCES);
    base::Error other(base::ErrorKind::NotFound, "container setup step `mounts`: bind source", 2);
    EXPECT_EQ(exec_failure_status(not_found), 127);
    EXPECT_EQ(exec_failure_status(denied), 126);
    EXPECT_FALSE(exec_failure_status(other));
}

}  // namespace
}  // namespace locald::ns
