// ns/doctor.h — can this machine run rootless containers, and if not, why.
//
// Contract: each check really exercises the kernel feature (creates a user
// namespace, writes id maps with newuidmap, mounts an overlay inside a user
// namespace, compiles and loads the seccomp filter in a throwaway child) and
// reports works / does not work / the fix. Runs as the calling user; creates
// and removes a scratch dir under $TMPDIR.
#pragma once

#include <string>
#include <vector>

#include "base/json.h"

namespace locald::ns {

struct DoctorCheck {
    std::string name;      // "user namespaces", "newuidmap", …
    bool ok = false;       // works
    bool warning = false;  // works, degraded (e.g. single id mapping, no limits)
    std::string detail;    // what was found
    std::string fix;       // what to do when !ok or warning; empty otherwise
};

std::vector<DoctorCheck> run_doctor_checks();

// True when overlayfs with `userxattr` really mounts inside a user namespace
// with the container mapping (a throwaway mount under $TMPDIR). Callers
// choosing between an overlay and a flattened rootfs use it.
bool userns_overlay_works();
base::Json doctor_to_json(const std::vector<DoctorCheck>& checks);

}  // namespace locald::ns
