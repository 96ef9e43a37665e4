// fuzz/common.h — helpers shared by the harnesses: a private scratch
// directory on tmpfs (wiped at exit) and memfd-backed files.
#pragma once

#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/sys.h"
#include "base/unique_fd.h"

namespace locald_fuzz {

// /dev/shm/locald-fuzz-<name>-<pid>, created once, removed at exit. libFuzzer
// leaves without atexit() on a crash or a single-input run, so directories
// of processes that no longer exist are removed here.
inline const std::string& scratch_dir(const char* name) {
    static std::string dir = [name] {
        std::string parent = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        std::string prefix = std::string("locald-fuzz-") + name + "-";
        if (DIR* listing = opendir(parent.c_str())) {
            while (dirent* entry = readdir(listing)) {
                std::string_view entry_name = entry->d_name;
                if (!entry_name.starts_with(prefix)) {
                    continue;
                }
                pid_t pid = static_cast<pid_t>(atoi(entry->d_name + prefix.size()));
                if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) {
                    (void)locald::base::remove_all(parent + "/" + entry->d_name);
                }
            }
            closedir(listing);
        }
        std::string path = parent + "/" + prefix + std::to_string(getpid());
        (void)locald::base::remove_all(path);
        if (auto made = locald::base::mkdir_p(path, 0700); !made) {
            fprintf(stderr, "scratch dir %s: %s\n", path.c_str(), made.error().message().c_str());
            abort();
        }
        atexit([] { (void)locald::base::remove_all(scratch_dir(nullptr)); });
        return path;
    }();
    return dir;
}

// An anonymous file holding `data`, positioned at 0.
inline locald::base::UniqueFd memfd_with(std::string_view data) {
    locald::base::UniqueFd fd(memfd_create("fuzz", MFD_CLOEXEC));
    if (!fd) {
        perror("memfd_create");
        abort();
    }
    if (!data.empty() && !locald::base::write_all(fd.get(), data)) {
        abort();
    }
    lseek(fd.get(), 0, SEEK_SET);
    return fd;
}

}  // namespace locald_fuzz
