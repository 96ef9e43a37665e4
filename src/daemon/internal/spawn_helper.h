// daemon/internal/spawn_helper.h — starts one of the daemon's own helper
// processes (`locald __prepare-image`, `locald-launch --hold-userns`).
//
// Contract: the child gets its own process group (so the daemon can kill it
// with everything it forked, and no terminal signal reaches it), dies with the
// daemon (PR_SET_PDEATHSIG, checked against a parent that died before it was
// set), default signal dispositions and an empty mask, `stdin_fd` as fd 0,
// `stdout_fd` as fds 1 and 2, nothing else open, then execs argv[0] with the
// daemon's environment. Exit status 127 means the child could not get that far.
// Safe to call from the multi-threaded daemon: after fork the child makes only
// async-signal-safe calls.
#pragma once

#include <string>
#include <vector>

#include "base/child.h"
#include "base/error.h"

namespace locald::daemon::internal {

base::Result<base::Child> spawn_helper(const std::vector<std::string>& argv, int stdin_fd,
                                       int stdout_fd);

}  // namespace locald::daemon::internal
