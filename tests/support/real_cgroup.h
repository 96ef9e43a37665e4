// tests/support/real_cgroup.h — a cgroup v2 directory delegated on the real
// kernel the way systemd's Delegate=yes does it, for tests of the code that
// subdivides cgroups (the daemon's run cgroups, the launcher's container
// cgroup). The kernel rules those depend on — a controller reaches a cgroup
// only through its parent's cgroup.subtree_control, which is refused (EBUSY)
// while processes live in the parent; moving a process needs write access to
// the common ancestor's cgroup.procs — cannot be faked with plain files.
//
// Needs root (to create the cgroup under the hierarchy's root and move the
// test's child into it) and a v2 controller the machine offers (this CI's
// hybrid hosts have v1 memory/cpu/pids but hugetlb on v2). The child runs as
// an unprivileged uid: `locald-test` when it exists, else nobody.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace locald::test {

inline std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline bool write_text(const std::string& path, const std::string& value) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    ::close(fd);
    return ok;
}

inline bool has_word(const std::string& text, const std::string& word) {
    std::istringstream in(text);
    std::string w;
    while (in >> w) {
        if (w == word) {
            return true;
        }
    }
    return false;
}

// This process's cgroup v2 path ("0::<path>" in /proc/self/cgroup).
inline std::string own_v2_cgroup() {
    std::istringstream in(read_text("/proc/self/cgroup"));
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("0::", 0) == 0) {
            return line.substr(3);
        }
    }
    return "";
}

class RealDelegatedCgroup {
public:
    // "" when it was made; else why not (the test skips with it).
    std::string create(const std::string& controller) {
        if (::geteuid() != 0) {
            return "needs root to create a delegated cgroup under the v2 hierarchy's root";
        }
        std::istringstream mounts(read_text("/proc/self/mountinfo"));
        std::string line;
        while (std::getline(mounts, line)) {
            size_t dash = line.find(" - cgroup2 ");
            if (dash != std::string::npos) {
                std::istringstream fields(line);
                std::string id, parent, devno, root, mount_point;
                fields >> id >> parent >> devno >> root >> mount_point;
                m_mount = mount_point;
                break;
            }
        }
        if (m_mount.empty()) {
            return "no cgroup2 mount on this machine";
        }
        if (!has_word(read_text(m_mount + "/cgroup.controllers"), controller)) {
            return "the " + controller + " controller is not on this machine's cgroup v2 (" +
                   m_mount + "/cgroup.controllers: `" + read_text(m_mount + "/cgroup.controllers") +
                   "`)";
        }
        m_controller = controller;
        // Tests in several binaries run at once (ctest -j) and share the
        // root's subtree_control: each holds a shared lock while it uses the
        // controller; the last one out turns it off again if a test turned it
        // on (the marker file says so).
        m_lock = ::open(kLockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (m_lock < 0 || ::flock(m_lock, LOCK_SH) != 0) {
            return std::string("locking ") + kLockPath + ": " + std::strerror(errno);
        }
        if (!has_word(read_text(m_mount + "/cgroup.subtree_control"), controller)) {
            if (!write_text(m_mount + "/cgroup.subtree_control", "+" + controller)) {
                return "enabling " + controller +
                       " at the hierarchy's root: " + std::strerror(errno);
            }
            ::close(::open(kMarkerPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        }
        m_dir = m_mount + "/locald-test-delegated-" + std::to_string(::getpid()) + "-" +
                std::to_string(++counter());
        if (::mkdir(m_dir.c_str(), 0755) != 0) {
            return "mkdir " + m_dir + ": " + std::strerror(errno);
        }
        const passwd* user = ::getpwnam("locald-test");
        m_uid = user ? user->pw_uid : 65534;
        m_gid = user ? user->pw_gid : 65534;
        // systemd's delegation: the directory and these three files.
        for (const char* name :
             {"", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"}) {
            if (::chown((m_dir + name).c_str(), m_uid, m_gid) != 0) {
                return "chown " + m_dir + name + ": " + std::strerror(errno);
            }
        }
        return "";
    }

    ~RealDelegatedCgroup() {
        if (!m_dir.empty()) {
            remove_tree(m_dir);
        }
        if (m_lock >= 0) {
            // Exclusive only when no other test holds it: then we are the last.
            if (::flock(m_lock, LOCK_EX | LOCK_NB) == 0 && ::unlink(kMarkerPath) == 0) {
                write_text(m_mount + "/cgroup.subtree_control", "-" + m_controller);
            }
            ::close(m_lock);  // releases the lock
        }
    }

    const std::string& dir() const { return m_dir; }
    // `dir()` as /proc/<pid>/cgroup names it.
    std::string relative() const { return m_dir.substr(m_mount.size()); }

    // Runs `body` in a child process that this (root) process first moves
    // into `cgroup` (default: dir()), then drops to the unprivileged uid.
    // Returns body's result (nonzero = a failure it printed to stderr), or
    // -1 when the child could not be set up.
    int run_in(const std::function<int()>& body, const std::string& cgroup = "") {
        int go[2];
        if (::pipe2(go, O_CLOEXEC) != 0) {
            return -1;
        }
        pid_t pid = ::fork();
        if (pid == 0) {
            ::close(go[1]);
            char byte;
            if (::read(go[0], &byte, 1) != 1) {
                ::_exit(120);
            }
            if (::setgroups(0, nullptr) != 0 || ::setresgid(m_gid, m_gid, m_gid) != 0 ||
                ::setresuid(m_uid, m_uid, m_uid) != 0) {
                ::_exit(121);
            }
            ::_exit(body());
        }
        ::close(go[0]);
        bool placed =
            write_text((cgroup.empty() ? m_dir : cgroup) + "/cgroup.procs", std::to_string(pid));
        (void)!::write(go[1], placed ? "g" : "x", placed ? 1 : 0);
        ::close(go[1]);
        int status = 0;
        ::waitpid(pid, &status, 0);
        return placed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

    // A process that sleeps in `dir()` until the destructor ends it.
    void add_bystander() {
        pid_t pid = ::fork();
        if (pid == 0) {
            ::pause();
            ::_exit(0);
        }
        write_text(m_dir + "/cgroup.procs", std::to_string(pid));
        m_bystanders.push_back(pid);
    }

private:
    static int& counter() {
        static int n = 0;
        return n;
    }

    void remove_tree(const std::string& dir) {
        for (pid_t pid : m_bystanders) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        m_bystanders.clear();
        write_text(dir + "/cgroup.kill", "1");
        std::vector<std::string> children;
        if (DIR* d = ::opendir(dir.c_str())) {
            while (dirent* entry = ::readdir(d)) {
                if (entry->d_type == DT_DIR && entry->d_name[0] != '.') {
                    children.push_back(dir + "/" + entry->d_name);
                }
            }
            ::closedir(d);
        }
        for (const auto& child : children) {
            remove_tree(child);
        }
        for (int i = 0; i < 200 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i) {
            ::usleep(5000);
        }
    }

    std::string m_mount;
    std::string m_dir;
    std::string m_controller;
    static constexpr const char* kLockPath = "/tmp/locald-test-cgroup-root.lock";
    static constexpr const char* kMarkerPath = "/tmp/locald-test-cgroup-root.enabled";
    int m_lock = -1;
    uid_t m_uid = 65534;
    gid_t m_gid = 65534;
    std::vector<pid_t> m_bystanders;
};

}  // namespace locald::test
