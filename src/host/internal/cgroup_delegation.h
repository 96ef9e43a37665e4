// host/internal/cgroup_delegation.h — handing cgroup v2 controllers down to
// the run cgroups (used by cgroup_support(); declared here for its tests,
// which drive it on the real kernel with whichever controller the machine
// offers).
#pragma once

#include <string>
#include <vector>

#include "host/process_tree.h"

namespace locald::host {

// Makes `controllers` of our own cgroup `own` available to the run cgroups
// under `parent` (a child of `own`), moving the calling process into the leaf
// `<parent>/daemon` when it is alone in `own` and `own` must enable some.
// Fills support->controllers (enabled in `parent`) and
// support->controllers_why (what is missing and why).
void delegate_controllers(const std::string& own, bool own_is_root, const std::string& parent,
                          const std::vector<std::string>& controllers, CgroupSupport* support);

}  // namespace locald::host
