#include "layers/pipelined_apply.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <set>
#include <thread>
#include <utility>

#include "base/sys.h"
#include "oci/media_types.h"

namespace locald::layers {

namespace {

using base::Result;
using base::UniqueFd;

// What the helper knows about the pull, fed by the reader thread.
struct Feed {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::pair<std::string, std::string>> layers;  // blob digest, DiffID
    bool layers_known = false;
    std::set<std::string> committed;
    std::string failure;
    bool eof = false;
};

void read_commands(std::shared_ptr<Feed> feed, int fd) {
    FILE* in = fdopen(fd, "r");
    if (in == nullptr) {
        close(fd);
        std::lock_guard lock(feed->mutex);
        feed->eof = true;
        feed->changed.notify_all();
        return;
    }
    char* line = nullptr;
    size_t capacity = 0;
    ssize_t n;
    while ((n = getline(&line, &capacity, in)) > 0) {
        std::string text(line, static_cast<size_t>(n));
        if (!text.empty() && text.back() == '\n') {
            text.pop_back();
        }
        std::lock_guard lock(feed->mutex);
        if (text.starts_with("L ")) {
            size_t space = text.find(' ', 2);
            if (space != std::string::npos) {
                feed->layers.emplace_back(text.substr(2, space - 2), text.substr(space + 1));
            }
        } else if (text == "E") {
            feed->layers_known = true;
        } else if (text.starts_with("C ")) {
            feed->committed.insert(text.substr(2));
        } else if (text.starts_with("X ")) {
            feed->failure = text.substr(2);
        }
        feed->changed.notify_all();
    }
    free(line);
    fclose(in);
    std::lock_guard lock(feed->mutex);
    feed->eof = true;
    feed->changed.notify_all();
}

std::string one_line(std::string text) {
    for (char& c : text) {
        if (c == '\n') {
            c = ' ';
        }
    }
    return text;
}

// The helper's work, as the container root. Warnings go straight to `report`.
Result<size_t> apply_as_fed(const oci::ContentStore& store, const OwnershipPlan& plan,
                            const PipelinedApply::Options& options, int commands, int report) {
    auto feed = std::make_shared<Feed>();
    // Close-on-exec like every other fd here: nothing this process might
    // run is to hold the command socket.
    int fd = fcntl(commands, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        return base::errno_error("duplicating the command pipe");
    }
    // Detached: it only ends at EOF, which comes when the puller finishes.
    std::thread(read_commands, feed, fd).detach();
    std::vector<std::pair<std::string, std::string>> layers;
    {
        std::unique_lock lock(feed->mutex);
        feed->changed.wait(
            lock, [&] { return feed->layers_known || feed->eof || !feed->failure.empty(); });
        if (!feed->failure.empty()) {
            return base::data_loss("{}", feed->failure);
        }
        if (!feed->layers_known) {
            return base::unavailable("the pull ended before the image config arrived");
        }
        layers = feed->layers;
    }
    std::vector<LayerSource> sources;
    for (const auto& [blob, diff_id] : layers) {
        auto digest = TRY(oci::Digest::parse(blob));
        sources.push_back(LayerSource{
            blob, diff_id, [feed, &store, digest, blob]() -> Result<UniqueFd> {
                {
                    std::unique_lock lock(feed->mutex);
                    feed->changed.wait(lock,
                                       [&] { return feed->committed.contains(blob) || feed->eof; });
                    if (!feed->committed.contains(blob)) {
                        return base::unavailable("layer `{}` was not pulled", blob);
                    }
                }
                return store.open_blob(digest);
            }});
    }
    std::vector<std::string> warnings;
    uint64_t bytes = 0;
    if (options.mode == PipelinedApply::Mode::Snapshots) {
        auto snapshots = TRY(SnapshotStore::open(store.data_dir()));
        SnapshotApplyOptions apply;
        apply.ownership = plan.mode;
        apply.create_devices = plan.privileged;
        apply.trusted_overlay_xattrs = plan.privileged;
        apply.limits = options.limits;
        TRY(snapshots.ensure(sources, apply, &warnings));
    } else {
        auto root = TRY(base::open_file(options.flatten_root, O_RDONLY | O_DIRECTORY));
        for (const auto& source : sources) {
            auto blob = TRY(source.open());
            auto stats = TRY(apply_layer(root.get(), blob.get(),
                                         flatten_apply_options(source, plan, options.limits)));
            bytes += stats.uncompressed_bytes;
            warnings.insert(warnings.end(), stats.warnings.begin(), stats.warnings.end());
        }
    }
    // From here, not from the helper: in the user-namespace case this runs
    // in a child of the helper, whose memory the helper never sees.
    std::string lines = fmt::format("N {}\nB {}\n", sources.size(), bytes);
    for (const auto& w : warnings) {
        lines += "W " + one_line(w) + "\n";
    }
    (void)base::write_all(report, lines);
    return sources.size();
}

}  // namespace

base::Result<PipelinedApply> PipelinedApply::start(const oci::ContentStore& store,
                                                   const OwnershipPlan& plan,
                                                   const Options& options) {
    // The command channel is a socket so that writing to a helper that has
    // already failed and gone is EPIPE (MSG_NOSIGNAL), never SIGPIPE.
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        return base::errno_error("creating the unpack helper's command channel");
    }
    base::Pipe commands{UniqueFd(pair[0]), UniqueFd(pair[1])};
    auto result = TRY(base::make_pipe(O_CLOEXEC));
    const pid_t caller = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        return base::errno_error("starting the unpack helper");
    }
    if (pid == 0) {
        // The helper, and in the user-namespace case its child, die with
        // their parent: the command socket's EOF alone does not end one busy
        // applying a layer, nor one whose socket a fork of the caller still
        // holds. Each arms PR_SET_PDEATHSIG and then checks that its parent
        // is still the one expected (a parent gone before the arming sent
        // nothing); run_as_container_root does it for the child.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != caller) {
            _exit(1);
        }
        commands.write.reset();
        result.read.reset();
        auto applied = run_as_container_root(plan, [&]() -> Result<void> {
            TRY(apply_as_fed(store, plan, options, commands.read.get(), result.write.get()));
            return base::ok();
        });
        std::string line;
        if (applied) {
            line = "OK\n";
        } else {
            line = fmt::format("ERR {} {} {}\n", static_cast<int>(applied.error().kind()),
                               applied.error().errno_value(), one_line(applied.error().message()));
        }
        (void)base::write_all(result.write.get(), line);
        _exit(applied ? 0 : 1);
    }
    PipelinedApply out;
    out.m_store = &store;
    out.m_pid = pid;
    out.m_commands = std::move(commands.write);
    out.m_result = std::move(result.read);
    out.m_mutex = std::make_unique<std::mutex>();
    return out;
}

PipelinedApply::PipelinedApply(PipelinedApply&& other) noexcept
    : m_store(other.m_store),
      m_pid(std::exchange(other.m_pid, -1)),
      m_commands(std::move(other.m_commands)),
      m_result(std::move(other.m_result)),
      m_mutex(std::move(other.m_mutex)),
      m_config_sent(other.m_config_sent),
      m_layers(other.m_layers),
      m_uncompressed_bytes(other.m_uncompressed_bytes),
      m_warnings(std::move(other.m_warnings)) {}

PipelinedApply::~PipelinedApply() {
    if (m_pid > 0) {
        kill(m_pid, SIGKILL);
        int status;
        while (waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

void PipelinedApply::send(const std::string& line) {
    // The helper may have failed and gone: its error comes from finish().
    size_t done = 0;
    while (done < line.size()) {
        ssize_t n = ::send(m_commands.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        done += static_cast<size_t>(n);
    }
}

void PipelinedApply::on_blob(const oci::ImageManifest& manifest, const oci::Descriptor& blob) {
    std::lock_guard lock(*m_mutex);
    if (!m_commands.valid()) {
        return;
    }
    if (blob.digest == manifest.config.digest) {
        if (m_config_sent) {
            return;
        }
        m_config_sent = true;
        // The DiffIDs: the helper can start once it knows them.
        auto raw = m_store->read_blob(blob.digest, oci::kMaxConfigBytes, blob.size);
        auto config = raw ? oci::parse_image_config(raw.release_value())
                          : base::Result<oci::ImageConfig>(raw.release_error());
        if (!config) {
            send("X " + one_line(config.error().message()) + "\n");
            return;
        }
        if (config->diff_ids.size() != manifest.layers.size()) {
            send(fmt::format("X image config `{}`: {} DiffIDs for {} layers\n", blob.digest.str(),
                             config->diff_ids.size(), manifest.layers.size()));
            return;
        }
        std::string lines;
        for (size_t i = 0; i < manifest.layers.size(); i++) {
            if (!oci::media_types::is_layer(manifest.layers[i].media_type)) {
                send(fmt::format("X layer {} has media type `{}`\n", i,
                                 one_line(manifest.layers[i].media_type)));
                return;
            }
            lines += fmt::format("L {} {}\n", manifest.layers[i].digest.str(),
                                 config->diff_ids[i].str());
        }
        send(lines + "E\n");
        return;
    }
    send(fmt::format("C {}\n", blob.digest.str()));
}

base::Result<void> PipelinedApply::finish() {
    if (m_pid <= 0) {
        return base::failed_precondition("the unpack helper is not running");
    }
    {
        std::lock_guard lock(*m_mutex);
        m_commands.reset();  // EOF: no more blobs
    }
    std::string report = TRY(base::read_all(m_result.get(), 1 << 20));
    int status = 0;
    while (waitpid(m_pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return base::errno_error("waiting for the unpack helper");
        }
    }
    m_pid = -1;
    std::optional<base::Error> error;
    bool ok = false;
    size_t pos = 0;
    while (pos < report.size()) {
        size_t end = report.find('\n', pos);
        std::string line = report.substr(pos, end == std::string::npos ? end : end - pos);
        pos = end == std::string::npos ? report.size() : end + 1;
        if (line.starts_with("W ")) {
            m_warnings.push_back(line.substr(2));
        } else if (line.starts_with("B ")) {
            m_uncompressed_bytes = std::strtoull(line.c_str() + 2, nullptr, 10);
        } else if (line.starts_with("N ")) {
            m_layers = std::strtoul(line.c_str() + 2, nullptr, 10);
        } else if (line == "OK") {
            ok = true;
        } else if (line.starts_with("ERR ")) {
            int kind = 0;
            int err = 0;
            int consumed = 0;
            if (std::sscanf(line.c_str() + 4, "%d %d %n", &kind, &err, &consumed) >= 2) {
                error =
                    base::Error(static_cast<base::ErrorKind>(kind), line.substr(4 + consumed), err);
            }
        }
    }
    if (error) {
        return std::move(*error);
    }
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return base::internal_error("the unpack helper failed (status {:#x})", status);
    }
    return base::ok();
}

}  // namespace locald::layers
