// cli/cmd_prepare_image.cc — `locald __prepare-image`, the hidden internal
// mode the daemon runs for `image =` services.
//
// The daemon is multi-threaded and must never enter namespaces or fork
// user-namespace helpers itself, so the whole "pull when missing → snapshots
// → writable layer" pipeline (image::prepare_image_rootfs) runs here, in a
// fresh single-threaded process. It speaks NDJSON on stdout, one object per
// line, flushed at once:
//   {"event":"layer-bytes",…}        oci pull progress (oci::JsonProgress)
//   {"event":"step","step":"unpacking","message":"…"}
//   {"event":"warning","message":"…"}
//   {"event":"result", …image::to_json(PreparedInfo)…}   last line on success
//   {"event":"error","kind":"NotFound","message":"…"} last line on failure
// and exits 0 only after a result. `--cleanup DIR…` removes writable layers
// through the user namespace (their files belong to subordinate ids).
// Every DIR must lie under `<data>/services/`: this never removes anything
// else, whatever it is asked.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "base/error.h"
#include "base/json.h"
#include "base/paths.h"
#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "image/prepare.h"
#include "oci/progress.h"

namespace locald::cli {

const char kPrepareImageHelp[] =
    "usage: locald __prepare-image --ref REF --dir DIR\n"
    "       locald __prepare-image --cleanup DIR…\n"
    "\n"
    "Internal: pulls REF when it is not in the store, prepares its snapshots and\n"
    "a fresh writable layer in DIR (an existing DIR is removed first), printing\n"
    "NDJSON progress and a final result on stdout. Used by the daemon for image\n"
    "services. --cleanup removes writable layers. DIR must be under <data>/services.\n";

namespace {

void emit(const base::Json& event) {
    std::string line = event.dump();
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
}

std::string_view kind_name(base::ErrorKind kind) {
    switch (kind) {
        case base::ErrorKind::InvalidArgument:
            return "InvalidArgument";
        case base::ErrorKind::NotFound:
            return "NotFound";
        case base::ErrorKind::PermissionDenied:
            return "PermissionDenied";
        case base::ErrorKind::Unavailable:
            return "Unavailable";
        case base::ErrorKind::Unauthenticated:
            return "Unauthenticated";
        case base::ErrorKind::DataLoss:
            return "DataLoss";
        default:
            return "Error";
    }
}

int fail(const base::Error& error) {
    emit(base::Json::object(
        {{"event", "error"}, {"kind", kind_name(error.kind())}, {"message", error.to_string()}}));
    return kExitFailure;
}

// DIR must be a plain path strictly inside `<data>/services/`: every component
// after the root a real name (no empty, `.` or `..` one), else `services/.`,
// `services//` or `services/x/..` would name the root itself.
base::Result<void> check_dir(const std::string& dir, const base::Paths& paths) {
    std::string root = paths.data + "/services/";
    bool plain = dir.size() > root.size() && dir.compare(0, root.size(), root) == 0;
    for (size_t pos = root.size(); plain && pos <= dir.size();) {
        size_t end = std::min(dir.find('/', pos), dir.size());
        std::string_view part(dir.data() + pos, end - pos);
        plain = !part.empty() && part != "." && part != "..";
        pos = end + 1;
    }
    if (!plain) {
        return base::invalid_argument("`{}` is not a service directory under `{}`", dir, root);
    }
    return base::ok();
}

}  // namespace

int run_prepare_image(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {
        {"ref", 0, true},
        {"dir", 0, true},
        {"cleanup"},
    };
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("__prepare-image", parsed.error());
    }
    auto paths = base::Paths::from_env();
    if (!paths) {
        return fail(paths.error());
    }
    if (parsed->has("cleanup")) {
        int code = kExitOk;
        for (const auto& dir : parsed->positional()) {
            auto removed = check_dir(dir, *paths);
            if (removed) {
                removed = image::remove_container_dir(dir);
            }
            if (!removed) {
                report_error(removed.error());
                code = kExitFailure;
            }
        }
        return code;
    }
    auto ref = parsed->value("ref");
    auto dir = parsed->value("dir");
    if (!ref || !dir || !parsed->positional().empty()) {
        return report_usage("__prepare-image",
                            base::invalid_argument("expected --ref REF --dir DIR"));
    }
    if (auto ok = check_dir(*dir, *paths); !ok) {
        return fail(ok.error());
    }
    // A leftover of an earlier run (a daemon killed mid-run): start clean.
    if (auto removed = image::remove_container_dir(*dir); !removed) {
        return fail(removed.release_error().context("removing the previous writable layer"));
    }
    oci::JsonProgress progress(stdout);
    image::PrepareOptions options;
    options.reference = *ref;
    options.container_dir = *dir;
    options.progress = &progress;
    options.on_step = [](std::string_view step, std::string_view message) {
        emit(base::Json::object({{"event", "step"}, {"step", step}, {"message", message}}));
    };
    auto prepared = image::prepare_image_rootfs(options);
    if (!prepared) {
        (void)image::remove_container_dir(*dir);
        return fail(prepared.error());
    }
    for (const auto& warning : (*prepared)->warnings) {
        emit(base::Json::object({{"event", "warning"}, {"message", warning}}));
    }
    base::Json result = image::to_json(image::describe(**prepared));
    result.set("event", "result");
    (*prepared)->release();  // the daemon owns the writable layer from here on
    emit(result);
    return kExitOk;
}

}  // namespace locald::cli
