// ns/internal/idmap.cc — joining a held user namespace, and checking that its
// maps are exactly the container mapping (the id maps of a fresh namespace are
// written by base::write_id_maps, with both setuid helpers side by side).
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/sys.h"

#include "ns/internal/context.h"

namespace locald::ns::internal {

namespace {

std::vector<base::IdMap> sorted(std::vector<base::IdMap> map) {
    std::sort(map.begin(), map.end(), [](const base::IdMap& a, const base::IdMap& b) {
        return a.container_id < b.container_id;
    });
    return map;
}

}  // namespace

base::Result<std::vector<base::IdMap>> parse_id_map_file(std::string_view text) {
    std::vector<base::IdMap> map;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string line(text.substr(pos, end - pos));
        pos = end + 1;
        if (line.find_first_not_of(" \t") == std::string::npos) {
            continue;
        }
        unsigned long long fields[3];
        int used = 0;
        if (std::sscanf(line.c_str(), " %llu %llu %llu %n", &fields[0], &fields[1], &fields[2],
                        &used) != 3 ||
            static_cast<size_t>(used) != line.size() || fields[0] > UINT32_MAX ||
            fields[1] > UINT32_MAX || fields[2] > UINT32_MAX) {
            return base::invalid_argument("malformed id map line `{}`", line);
        }
        map.push_back({static_cast<uint32_t>(fields[0]), static_cast<uint32_t>(fields[1]),
                       static_cast<uint32_t>(fields[2])});
    }
    return map;
}

base::Result<void> check_joined_map(const std::string& file, std::string_view what,
                                    const std::vector<base::IdMap>& expected,
                                    const std::string& ns_path) {
    auto text = TRY(base::read_file(file, 64 * 1024)
                        .context(fmt::format("reading the {} map of `{}`", what, ns_path)));
    auto actual = TRY(parse_id_map_file(text).context(file));
    if (sorted(actual) != sorted(expected)) {
        std::string shown = base::format_id_map(actual);
        std::string wanted = base::format_id_map(expected);
        for (std::string* s : {&shown, &wanted}) {
            while (!s->empty() && s->back() == '\n') {
                s->pop_back();
            }
            for (char& c : *s) {
                c = c == '\n' ? ';' : c;
            }
        }
        return base::failed_precondition(
            "the user namespace `{}` maps {}s as `{}`, not as the containers' mapping `{}` "
            "(/etc/sub{} changed since it was made?); refusing to run with other ids",
            ns_path, what, shown, wanted, what);
    }
    return base::ok();
}

base::Result<void> join_user_namespace(const std::string& path, const base::IdMapping& mapping) {
    // A joined namespace replaces the id-map helpers, so it must be exactly
    // what they would have produced: a user namespace, ours, one level below
    // the one we run in (not a grandchild, not someone else's).
    base::UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) {
        return base::errno_error("opening the user namespace `{}`", path);
    }
    int type = ::ioctl(ns.get(), NS_GET_NSTYPE);
    if (type != CLONE_NEWUSER) {
        return base::invalid_argument("`{}` is not a user namespace", path);
    }
    uid_t owner = 0;
    if (::ioctl(ns.get(), NS_GET_OWNER_UID, &owner) != 0) {
        return base::errno_error("reading the owner of the user namespace `{}`", path);
    }
    if (owner != ::geteuid()) {
        return base::permission_denied("the user namespace `{}` belongs to uid {}, not to uid {}",
                                       path, owner, ::geteuid());
    }
    base::UniqueFd parent(::ioctl(ns.get(), NS_GET_PARENT));
    struct stat parent_st, self_st;
    if (!parent || ::fstat(parent.get(), &parent_st) != 0 ||
        ::stat("/proc/self/ns/user", &self_st) != 0 || parent_st.st_ino != self_st.st_ino ||
        parent_st.st_dev != self_st.st_dev) {
        return base::invalid_argument(
            "the user namespace `{}` is not a child of the launcher's own user namespace", path);
    }
    if (::setns(ns.get(), CLONE_NEWUSER) != 0) {
        return base::errno_error("joining the user namespace `{}`", path);
    }
    // Owned by us and one level down is not enough: a namespace mapped any
    // other way (a single id, another range) would run the payload, and
    // write the writable layer, with ids the image was not unpacked with.
    // Now inside it, /proc/self/*_map shows its maps relative to our former
    // namespace; they must be exactly the container mapping. On a mismatch
    // the launcher stops here, before any child exists.
    TRY(check_joined_map("/proc/self/uid_map", "uid", mapping.uid_map, path));
    TRY(check_joined_map("/proc/self/gid_map", "gid", mapping.gid_map, path));
    return base::ok();
}

}  // namespace locald::ns::internal
