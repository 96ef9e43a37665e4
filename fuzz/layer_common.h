// fuzz/layer_common.h — applying one layer blob the way the unpacker and the
// snapshot store do, for the layer harnesses.
//
// apply_everywhere(blob) applies it twice, into fresh directories on tmpfs:
// in Flatten mode onto a small lower tree (so whiteouts and replacements
// have something to remove; it includes symlinks pointing out of the root),
// and in Overlay mode into an empty directory. Checked beyond sanitizer
// reports: errors carry a message, and nothing is ever created, changed or
// removed outside the root (a sibling directory with a canary file, and the
// scratch directory itself, are verified after every apply).
// LOCALD_FUZZ_VERBOSE=1 prints each apply's outcome.
#pragma once

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/sys.h"
#include "common.h"
#include "layers/internal/fs_util.h"
#include "layers/layer_applier.h"

namespace locald_fuzz {

using namespace locald;

constexpr std::string_view kCanary = "outside the root\n";

[[noreturn]] inline void die(const std::string& what) {
    fprintf(stderr, "layer_fuzz: %s\n", what.c_str());
    abort();
}

inline void must(bool ok, const std::string& what) {
    if (!ok) {
        die(what + ": " + strerror(errno));
    }
}

// The lower tree Flatten mode applies onto.
inline void make_lower(const std::string& root) {
    must(mkdir(root.c_str(), 0755) == 0, "mkdir root");
    for (const char* d : {"/etc", "/usr", "/usr/lib", "/usr/bin", "/tmp", "/var", "/var/empty"}) {
        must(mkdir((root + d).c_str(), 0755) == 0, std::string("mkdir ") + d);
    }
    for (const char* f : {"/etc/passwd", "/usr/bin/sh", "/usr/lib/libc.so", "/var/empty/x"}) {
        int fd = open((root + f).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
        must(fd >= 0 && write(fd, "x\n", 2) == 2, std::string("create ") + f);
        close(fd);
    }
    must(symlink("usr/lib", (root + "/lib").c_str()) == 0, "symlink lib");
    must(symlink("/usr/bin", (root + "/bin").c_str()) == 0, "symlink bin");
    must(symlink("../../outside", (root + "/escape").c_str()) == 0, "symlink escape");
}

inline void check_outside(const std::string& scratch, const std::string& input_note) {
    auto names = layers::internal::list_dir(
        base::open_file(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC)->get());
    if (!names) {
        die("listing scratch: " + names.error().message());
    }
    std::sort(names->begin(), names->end());
    if (*names != std::vector<std::string>{"flat", "outside", "overlay"}) {
        std::string list;
        for (const auto& n : *names) {
            list += n + " ";
        }
        die("scratch dir changed (" + input_note + "): " + list);
    }
    auto inside = base::read_file(scratch + "/outside/canary", 1024);
    if (!inside || *inside != kCanary) {
        die("canary outside the root changed (" + input_note + ")");
    }
    auto outside_names = layers::internal::list_dir(
        base::open_file(scratch + "/outside", O_RDONLY | O_DIRECTORY | O_CLOEXEC)->get());
    if (!outside_names || outside_names->size() != 1) {
        die("something was created outside the root (" + input_note + ")");
    }
}

inline void apply(const std::string& dir, std::string_view blob, layers::WhiteoutMode mode) {
    auto root = base::open_file(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!root) {
        die("open root: " + root.error().message());
    }
    layers::ApplyOptions options;
    options.layer_digest = "sha256:fuzz";
    options.whiteouts = mode;
    options.limits.max_entries = 4096;
    options.limits.max_uncompressed_bytes = 64 << 20;
    size_t offset = 0;
    layers::ReadFn source = [&](char* buffer, size_t size) -> base::Result<size_t> {
        size_t n = std::min(size, blob.size() - offset);
        memcpy(buffer, blob.data() + offset, n);
        offset += n;
        return n;
    };
    auto stats = layers::apply_layer(root->get(), source, options);
    if (!stats && stats.error().message().empty()) {
        die("error without a message");
    }
    if (getenv("LOCALD_FUZZ_VERBOSE") != nullptr) {
        fprintf(stderr, "%s: %s\n", mode == layers::WhiteoutMode::Flatten ? "flatten" : "overlay",
                stats ? fmt::format("ok, {} entries", stats->entries).c_str()
                      : stats.error().to_string().c_str());
    }
}

inline void apply_everywhere(std::string_view blob) {
    const std::string& scratch = locald_fuzz::scratch_dir("layer");
    for (const char* name : {"flat", "overlay", "outside"}) {
        if (auto removed = base::remove_all(scratch + "/" + name); !removed) {
            die("wiping: " + removed.error().message());
        }
    }
    must(mkdir((scratch + "/outside").c_str(), 0755) == 0, "mkdir outside");
    must(base::write_all(base::open_file(scratch + "/outside/canary",
                                         O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)
                             ->get(),
                         kCanary)
             .has_value(),
         "canary");
    make_lower(scratch + "/flat");
    must(mkdir((scratch + "/overlay").c_str(), 0755) == 0, "mkdir overlay");

    apply(scratch + "/flat", blob, layers::WhiteoutMode::Flatten);
    check_outside(scratch, "flatten");
    apply(scratch + "/overlay", blob, layers::WhiteoutMode::Overlay);
    check_outside(scratch, "overlay");
}

}  // namespace locald_fuzz
