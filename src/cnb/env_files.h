// cnb/env_files.h — the CNB environment-directory rules, exactly as the
// reference lifecycle applies them (docs/modules/cnb.md §Build and launch;
// spec notes §3.4–3.5, §4.4).
//
// Contract: an environment is an EnvMap (name → value); every function here
// is a pure transformation of one EnvMap by the files of one directory, read
// inside a root directory fd through base/confined.h — the directories are
// written by buildpacks, so a symlink in them resolves inside the root or
// fails, never outside, and a FIFO cannot block. A missing directory changes
// nothing; a file that is not regular, larger than 1 MiB, or whose name or
// content cannot be an environment variable (empty name, `=` in the name,
// a NUL byte) is an InvalidArgument error naming the file.
//
// The rules (lifecycle env/env.go): the variable is the file name up to the
// first `.`, the suffix is the rest; `override` sets, `default` sets only
// when the current value is empty, `append`/`prepend` concatenate with the
// content of `<NAME>.delim` from the same directory (no delimiter when there
// is none), `delim` alone does nothing; a file without suffix takes the
// caller's action (override in a layer, default in the builder's
// build-config); unknown suffixes and directories are skipped; contents are
// used verbatim (a trailing newline stays). Files apply in byte order of
// their names.
// Depends on base only.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace locald::cnb {

using EnvMap = std::map<std::string, std::string>;

enum class EnvAction { Override, Default, Append, Prepend };

// What a suffix-less file in a layer's env dir means for a buildpack of API
// `api` ("0.10"): override for every API this lifecycle supports (0.7–0.12);
// anything else is Unsupported (the reference's exit 12).
base::Result<EnvAction> unsuffixed_env_action(std::string_view api);

// Rewrites each value read from a buildpack's file before it is applied
// (the Dump Layer's container-path → host-path translation). Empty: as is.
using ValueRewrite = std::function<std::string(std::string_view)>;

// A directory `dir` inside the root `root_fd`; `root_name` names the root in
// messages (e.g. `/layers`).
struct EnvDirRef {
    int root_fd = -1;
    std::string root_name;
    std::string dir;
};

// Applies one env directory (§3.4) with `unsuffixed` as the action of files
// without a suffix.
base::Result<void> apply_env_dir(EnvMap& env, const EnvDirRef& dir, EnvAction unsuffixed,
                                 const ValueRewrite& rewrite = {});

// The user's `<platform>/env/` (§3.5 step 3.1): the file name is the
// variable verbatim (no suffix rules); PATH, LD_LIBRARY_PATH, LIBRARY_PATH,
// CPATH and PKG_CONFIG_PATH get `value + ":" + old`, every other variable
// is overridden.
base::Result<void> apply_platform_env(EnvMap& env, const EnvDirRef& dir);

// Which sub-directories of a layer feed which variables: at build bin→PATH,
// lib→LD_LIBRARY_PATH and LIBRARY_PATH, include→CPATH,
// pkgconfig→PKG_CONFIG_PATH; at launch only bin and lib→LD_LIBRARY_PATH.
enum class RootDirs { Build, Launch };

// For each of those sub-directories of `layer` that exists inside the root
// (a symlink to one counts), prepends `layer_value + "/" + sub` as
// `abs + ":" + old`, or `abs` alone when old is empty. `layer_value` is the
// path the process sees (e.g. `/layers/<esc(id)>/<layer>`).
base::Result<void> add_root_dirs(EnvMap& env, const EnvDirRef& layer, std::string_view layer_value,
                                 RootDirs which);

// §3.5 step 1: keeps only PATH, LD_LIBRARY_PATH, LIBRARY_PATH, CPATH,
// PKG_CONFIG_PATH, CNB_STACK_ID, HOSTNAME, HOME and HTTP_PROXY, HTTPS_PROXY,
// NO_PROXY in both letter cases, from a "K=V" list (the builder image's
// environment); later entries win.
EnvMap filter_build_base_env(const std::vector<std::string>& env);

// "K=V" list ↔ EnvMap (an entry without `=` is a variable with an empty
// value; later entries win). The list is in name order.
EnvMap env_from_list(const std::vector<std::string>& env);
std::vector<std::string> env_to_list(const EnvMap& env);

}  // namespace locald::cnb
