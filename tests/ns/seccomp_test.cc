// The default seccomp profile, loaded for real in a forked child.
#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "ns/internal/context.h"

namespace locald::ns::internal {
namespace {

// Runs `check` after loading `bpf` in a child; returns its exit code.
template <typename Fn>
int with_filter(std::vector<sock_filter> bpf, Fn check) {
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
            ::_exit(100);
        }
        struct sock_fprog prog {
            static_cast<unsigned short>(bpf.size()), bpf.data()
        };
        if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
            ::_exit(101);
        }
        ::_exit(check());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

TEST(NsSeccomp, DeniesDangerousCallsAndAnswersUnknownOnesWithEnosys) {
    auto bpf = default_seccomp_bpf("");
    ASSERT_TRUE(bpf) << bpf.error().to_string();
    EXPECT_EQ(
        with_filter(*bpf,
                    [] {
                        errno = 0;
                        if (::syscall(SYS_kexec_load, 0, 0, nullptr, 0) != -1 || errno != EPERM) {
                            return 1;
                        }
                        if (::syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM) {
                            return 2;
                        }
                        if (::syscall(SYS_bpf, 0, nullptr, 0) != -1 || errno != EPERM) {
                            return 3;
                        }
                        if (::syscall(SYS_userfaultfd, 0) != -1 || errno != EPERM) {
                            return 4;
                        }
                        // A number no kernel has (yet): ENOSYS, so programs fall back.
                        if (::syscall(1000, 0) != -1 || errno != ENOSYS) {
                            return 5;
                        }
                        // Ordinary calls work.
                        if (::getpid() <= 0 || ::access("/", F_OK) != 0) {
                            return 6;
                        }
                        return 0;
                    }),
        0);
}

TEST(NsSeccomp, CachedBpfIsReusedAndEqual) {
    char tmpl[] = "/tmp/ns-seccomp-cache-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string dir = std::string(tmpl) + "/nested/cache";
    auto first = default_seccomp_bpf(dir);
    ASSERT_TRUE(first) << first.error().to_string();
    size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        EXPECT_EQ(entry.path().extension(), ".bpf");
        ++files;
    }
    EXPECT_EQ(files, 1u);
    auto second = default_seccomp_bpf(dir);
    ASSERT_TRUE(second);
    ASSERT_EQ(first->size(), second->size());
    EXPECT_EQ(std::memcmp(first->data(), second->data(), first->size() * sizeof(sock_filter)), 0);
    std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace locald::ns::internal
