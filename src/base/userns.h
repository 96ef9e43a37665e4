// base/userns.h — subordinate id ranges and user-namespace id mappings.
//
// Contract: this is the single source of truth for "which host ids does a
// container see as 0…N" — the layer unpacker (which chowns inside a user
// namespace) and the launcher (which runs payloads in one) must agree, so both
// build their mapping with `container_mapping()` from /etc/subuid and
// /etc/subgid.
//
// The mapping for an ordinary user: container 0 → the user's own uid/gid, and
// container 1…N → the user's subordinate ranges, in file order. Without a
// range: a single mapping 0 → the user (and `setgroups` denied, as the kernel
// requires for an unprivileged single mapping). As root: 0…N-1 → root's
// subordinate ranges when /etc/subuid has some, otherwise the single mapping
// 0 → nobody (65534) — payloads never run as host root by default.
//
// Maps are written by newuidmap/newgidmap (setuid helpers from `uidmap`) for a
// non-root user with ranges, and by writing /proc/PID/{uid,gid}_map directly
// for root or for a single mapping. Depends on error.h and unique_fd.h only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace locald::base {

// One line of /proc/PID/uid_map: ids [container_id, container_id+count) inside
// map to [host_id, host_id+count) outside.
struct IdMap {
    uint32_t container_id = 0;
    uint32_t host_id = 0;
    uint32_t count = 0;
    bool operator==(const IdMap&) const = default;
};

// One line of /etc/subuid or /etc/subgid that belongs to a user.
struct SubIdRange {
    uint32_t start = 0;
    uint32_t count = 0;
    bool operator==(const SubIdRange&) const = default;
};

// The kernel accepts at most this many lines in a uid_map (Linux ≥ 4.15).
inline constexpr size_t kMaxIdMapLines = 340;
// The host id a single root mapping uses (`nobody`).
inline constexpr uint32_t kNobodyId = 65534;

// Parses subid file text ("name_or_id:start:count" per line; blank lines and
// `#` comments skipped). Returns the ranges whose owner field equals `user_name`
// or the decimal `id`, in file order. Malformed lines for *this* user are an
// InvalidArgument error (naming `source` and the line); other users' lines are
// not validated beyond splitting, as shadow's tools do.
Result<std::vector<SubIdRange>> parse_subid_ranges(std::string_view text,
                                                   std::string_view user_name, uint32_t id,
                                                   std::string_view source = "subid file");

// Reads `path` (size-capped) and parses it as above. A missing file yields no
// ranges (not an error): the caller falls back to a single mapping.
Result<std::vector<SubIdRange>> read_subid_ranges(const std::string& path,
                                                  std::string_view user_name, uint32_t id);

// The effective user: uid, primary gid, and login name (empty if the uid has no
// passwd entry, in which case only the numeric id matches subid lines).
struct CurrentUser {
    uid_t uid = 0;
    gid_t gid = 0;
    std::string name;
};
CurrentUser current_user();

// A user-namespace mapping ready to be written.
struct IdMapping {
    std::vector<IdMap> uid_map;
    std::vector<IdMap> gid_map;
    // True when `setgroups` must be denied (a single, self mapping written
    // without newgidmap); then the payload cannot change its groups.
    bool deny_setgroups = false;
    // Human-readable reason when the mapping is degraded (no subordinate range);
    // empty otherwise. Callers print it once.
    std::string warning;

    // Highest container uid/gid + 1 (0 when empty).
    uint32_t uid_count() const;
    uint32_t gid_count() const;
    // True when there is exactly one uid and one gid mapped.
    bool single() const { return uid_count() <= 1 && gid_count() <= 1; }
};

// Builds the mapping for `user` from subordinate ranges (pure; see the header
// comment for the rules). At most kMaxIdMapLines lines per map.
IdMapping make_container_mapping(const CurrentUser& user, const std::vector<SubIdRange>& subuids,
                                 const std::vector<SubIdRange>& subgids);

// Reads /etc/subuid and /etc/subgid (or the given files) for the effective user
// and builds the mapping.
Result<IdMapping> container_mapping(const std::string& subuid_path = "/etc/subuid",
                                    const std::string& subgid_path = "/etc/subgid");

// The text of a uid_map/gid_map file: "container host count\n" per entry.
std::string format_id_map(const std::vector<IdMap>& map);

// Maps a container id to its host id through `map`; nullopt-like: returns false
// when the id is unmapped.
bool map_to_host(const std::vector<IdMap>& map, uint32_t container_id, uint32_t* host_id);

// Writes `mapping` for the process `pid`, which must have just created its user
// namespace and not yet used it. Non-root with more than one id: newgidmap and
// newuidmap, side by side (their stderr becomes the error message). Root, or a single mapping:
// /proc/PID/setgroups (deny, when asked) then gid_map then uid_map directly.
Result<void> write_id_maps(pid_t pid, const IdMapping& mapping);

// Finds the newuidmap/newgidmap helper in the standard system directories (not
// $PATH: a setuid helper is looked up where the package installs it). Returns
// NotFound when absent.
Result<std::string> find_id_map_helper(std::string_view name);

// Runs `fn` in a forked child that is inside a new user namespace with
// `mapping` written and has become container root (uid 0, gid 0, no
// supplementary groups unless setgroups is denied). `extra_unshare_flags`
// (CLONE_NEWNS, …) are unshared in the child right after the user namespace.
//
// `fn` returns the child's exit status, or an Error, which is sent to the
// parent over a CLOEXEC pipe and returned from here as the same kind, errno
// and message. Otherwise returns the exit status: the code, or 128+N if the
// child was killed by signal N. The caller must be single-threaded (fork).
Result<int> run_in_user_namespace(const IdMapping& mapping, const std::function<Result<int>()>& fn,
                                  int extra_unshare_flags = 0);

}  // namespace locald::base
