#include "cnb/detect.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "base/atomic_file.h"
#include "base/confined.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "base/userns.h"
#include "cnb/env_files.h"
#include "cnb/internal/toml_util.h"

namespace locald::cnb {

using internal::at;
using internal::get_string;

namespace {

constexpr size_t kMaxPlanBytes = 1 << 20;
constexpr size_t kMaxOutputBytes = 1 << 20;

std::string key_of(std::string_view id, std::string_view version) {
    return fmt::format("{}@{}", id, version);
}

base::Result<std::vector<std::string>> parse_provides(const toml::table& table,
                                                      std::string_view file) {
    std::vector<std::string> out;
    const toml::node* node = table.get("provides");
    if (node == nullptr) {
        return out;
    }
    const toml::array* list = node->as_array();
    if (list == nullptr) {
        return base::invalid_argument("{}: `provides` must be an array of tables ([[provides]])",
                                      at(file, *node));
    }
    for (const toml::node& item : *list) {
        const toml::table* entry = item.as_table();
        if (entry == nullptr) {
            return base::invalid_argument("{}: each [[provides]] must be a table with a name",
                                          at(file, item));
        }
        out.push_back(TRY(get_string(*entry, "name", file, true)));
    }
    return out;
}

base::Result<std::vector<Require>> parse_requires(const toml::table& table, std::string_view file) {
    std::vector<Require> out;
    const toml::node* node = table.get("requires");
    if (node == nullptr) {
        return out;
    }
    const toml::array* list = node->as_array();
    if (list == nullptr) {
        return base::invalid_argument("{}: `requires` must be an array of tables ([[requires]])",
                                      at(file, *node));
    }
    for (const toml::node& item : *list) {
        const toml::table* entry = item.as_table();
        if (entry == nullptr) {
            return base::invalid_argument("{}: each [[requires]] must be a table with a name",
                                          at(file, item));
        }
        Require require;
        require.name = TRY(get_string(*entry, "name", file, true));
        const toml::node* metadata = entry->get("metadata");
        if (metadata != nullptr && !metadata->is_table()) {
            return base::invalid_argument("{}: `metadata` of requires `{}` must be a table",
                                          at(file, *metadata), require.name);
        }
        if (const toml::node* version = entry->get("version")) {
            if (metadata != nullptr && metadata->as_table()->get("version") != nullptr) {
                return base::invalid_argument(
                    "{}: requires `{}` has both `version` and `metadata.version` (expected "
                    "only metadata.version)",
                    at(file, *version), require.name);
            }
            return base::invalid_argument(
                "{}: requires `{}` has a \"version\" key which is not supported; use "
                "metadata.version",
                at(file, *version), require.name);
        }
        if (metadata != nullptr && !metadata->as_table()->empty()) {
            require.metadata_toml = internal::to_toml_text(*metadata->as_table());
        }
        out.push_back(std::move(require));
    }
    return out;
}

base::Result<PlanSection> parse_section(const toml::table& table, std::string_view file) {
    PlanSection section;
    section.provides = TRY(parse_provides(table, file));
    section.requirements = TRY(parse_requires(table, file));
    return section;
}

}  // namespace

base::Result<DetectPlan> parse_detect_plan(std::string_view text, std::string_view file) {
    toml::table root = TRY(internal::parse_toml(text, file));
    DetectPlan plan;
    plan.primary = TRY(parse_section(root, file));
    if (const toml::node* alternatives = root.get("or")) {
        const toml::array* list = alternatives->as_array();
        if (list == nullptr) {
            return base::invalid_argument("{}: `or` must be an array of tables ([[or]])",
                                          at(file, *alternatives));
        }
        for (const toml::node& item : *list) {
            const toml::table* table = item.as_table();
            if (table == nullptr) {
                return base::invalid_argument("{}: each [[or]] must be a table", at(file, item));
            }
            plan.alternatives.push_back(TRY(parse_section(*table, file)));
        }
    }
    return plan;
}

// ---------------------------------------------------------------------------
// Plan resolution (§2.5; lifecycle phase/detector.go runTrials/runTrial).

namespace {

struct Option {
    size_t element;  // index into `passing`
    bool optional;   // optional only for the last option of an optional buildpack
    const PlanSection* section;
};

struct Dep {
    std::vector<size_t> providers;
    std::vector<Require> requirements;
    std::vector<size_t> pending;  // provides not yet consumed by a require
    std::vector<size_t> early;    // requires seen before any provide
};

// The reference enumerates every trial; a plan may hold 1 MiB of [[or]]
// sections, so the product is bounded (2^16: sixteen buildpacks with one
// [[or]] each) and the group fails past it.
constexpr int kMaxTrials = 1 << 16;

class Resolver {
public:
    explicit Resolver(const std::vector<Detected>& passing) : m_passing(passing) {}

    ResolveOutcome run() {
        std::vector<Option> prefix;
        trials(0, prefix);
        return std::move(m_outcome);
    }

private:
    std::string label(size_t element) const {
        return key_of(m_passing[element].ref.id, m_passing[element].ref.version);
    }

    // Depth-first over the cartesian product of options, first element outermost.
    bool trials(size_t index, std::vector<Option>& prefix) {
        if (index == m_passing.size()) {
            if (m_tries >= kMaxTrials) {
                m_outcome.log.push_back(fmt::format(
                    "fail: more than {} plan resolution trials (the [[or]] alternatives of the "
                    "group's plans)",
                    kMaxTrials));
                m_stopped = true;
                return false;
            }
            return run_trial(prefix);
        }
        const Detected& detected = m_passing[index];
        size_t count = detected.plan.alternatives.size() + 1;
        for (size_t i = 0; i < count; ++i) {
            const PlanSection* section =
                i == 0 ? &detected.plan.primary : &detected.plan.alternatives[i - 1];
            prefix.push_back({index, detected.ref.optional && i + 1 == count, section});
            bool resolved = trials(index + 1, prefix);
            prefix.pop_back();
            if (resolved) {
                return true;
            }
            if (m_stopped) {
                return false;
            }
        }
        return false;
    }

    bool run_trial(std::vector<Option> trial) {
        ++m_tries;
        m_outcome.log.push_back(fmt::format("Resolving plan... (try #{})", m_tries));
        std::vector<std::string> names;
        std::map<std::string, Dep> deps;
        for (bool retry = true; retry;) {
            retry = false;
            names.clear();
            deps.clear();
            auto dep = [&](const std::string& name) -> Dep& {
                auto [it, inserted] = deps.try_emplace(name);
                if (inserted) {
                    names.push_back(name);
                }
                return it->second;
            };
            for (const Option& option : trial) {
                for (const std::string& provide : option.section->provides) {
                    dep(provide).pending.push_back(option.element);
                }
                for (const Require& require : option.section->requirements) {
                    Dep& entry = dep(require.name);
                    entry.providers.insert(entry.providers.end(), entry.pending.begin(),
                                           entry.pending.end());
                    entry.pending.clear();
                    if (entry.providers.empty()) {
                        entry.early.push_back(option.element);
                    } else {
                        entry.requirements.push_back(require);
                    }
                }
            }
            auto optional_of = [&](size_t element) {
                for (const Option& option : trial) {
                    if (option.element == element) {
                        return option.optional;
                    }
                }
                return false;
            };
            std::set<size_t> remove;
            auto unmet = [&](bool early) {
                for (const std::string& name : names) {
                    const Dep& entry = deps[name];
                    for (size_t element : early ? entry.early : entry.pending) {
                        retry = true;
                        std::string what = early ? "requires" : "provides unused";
                        if (!optional_of(element)) {
                            m_outcome.log.push_back(
                                fmt::format("fail: {} {} {}", label(element), what, name));
                            return false;
                        }
                        m_outcome.log.push_back(
                            fmt::format("skip: {} {} {}", label(element), what, name));
                        remove.insert(element);
                    }
                }
                return true;
            };
            if (!unmet(true) || !unmet(false)) {
                return false;
            }
            std::erase_if(trial,
                          [&](const Option& option) { return remove.count(option.element) != 0; });
        }
        if (trial.empty()) {
            m_outcome.log.push_back("fail: no viable buildpacks in group");
            return false;
        }
        Resolution& resolution = m_outcome.resolution;
        resolution.trial = m_tries;
        for (const Option& option : trial) {
            const Detected& detected = m_passing[option.element];
            resolution.group.push_back(
                {detected.ref.id, detected.ref.version, detected.api, detected.homepage});
        }
        for (const std::string& name : names) {
            PlanEntry entry;
            entry.name = name;
            for (size_t element : deps[name].providers) {
                entry.providers.push_back(
                    {m_passing[element].ref.id, m_passing[element].ref.version});
            }
            entry.requirements = deps[name].requirements;
            resolution.plan.push_back(std::move(entry));
        }
        m_outcome.resolved = true;
        return true;
    }

    const std::vector<Detected>& m_passing;
    ResolveOutcome m_outcome;
    int m_tries = 0;
    bool m_stopped = false;
};

}  // namespace

ResolveOutcome resolve_plan(const std::vector<Detected>& passing) {
    return Resolver(passing).run();
}

// ---------------------------------------------------------------------------
// Order expansion and the group verdict (§2.2, §2.4).

bool targets_match(const std::vector<Target>& buildpack_targets, const Target& run) {
    bool run_wildcard = run.os.empty() && run.arch.empty();
    if (run_wildcard) {
        return true;
    }
    auto matches = [](const std::string& a, const std::string& b) {
        return a.empty() || b.empty() || a == b;
    };
    for (const Target& target : buildpack_targets) {
        if (target.os.empty() && target.arch.empty()) {
            return true;  // the buildpack's own wildcard ([[stacks]] id="*" and the like)
        }
        if (!matches(target.os, run.os) || !matches(target.arch, run.arch) ||
            !matches(target.variant, run.variant)) {
            continue;
        }
        if (target.distros.empty() || run.distros.empty()) {
            return true;
        }
        for (const Distro& distro : target.distros) {
            for (const Distro& have : run.distros) {
                if (distro == have) {
                    return true;
                }
            }
        }
    }
    return false;
}

namespace {

enum class Verdict { Pass, Fail, Error };

// The reference recurses into composites without a bound ("cyclical
// references lead to infinite recursion"): a builder's order that includes
// itself, or that fans out exponentially, is an error here.
constexpr size_t kMaxCompositeDepth = 64;
constexpr size_t kMaxGroups = 10000;

struct GroupResult {
    Verdict verdict = Verdict::Fail;
    Resolution resolution;
};

struct DoneEntry {
    GroupRef ref;
    std::string api;
    std::string homepage;
};

class Detector {
public:
    Detector(const BuildpackLookup& lookup, const DetectRunner& runner,
             const DetectOptions& options)
        : m_lookup(lookup), m_runner(runner), m_options(options) {}

    base::Result<DetectOutcome> run(const Order& order) {
        GroupResult result = TRY(detect_order(order, {}, {}, false));
        switch (result.verdict) {
            case Verdict::Pass:
                m_outcome.exit_code = 0;
                m_outcome.resolution = std::move(result.resolution);
                break;
            case Verdict::Fail:
                m_outcome.exit_code = 20;
                break;
            case Verdict::Error:
                m_outcome.exit_code = 21;
                break;
        }
        return std::move(m_outcome);
    }

private:
    base::Result<GroupResult> detect_order(const Order& order, const std::vector<DoneEntry>& done,
                                           const Group& rest, bool optional) {
        bool buildpack_error = false;
        for (const Group& group : order) {
            Group candidate = group;
            candidate.insert(candidate.end(), rest.begin(), rest.end());
            GroupResult result = TRY(detect_group(candidate, done));
            if (result.verdict == Verdict::Pass) {
                return result;
            }
            buildpack_error = buildpack_error || result.verdict == Verdict::Error;
        }
        if (optional) {
            return detect_group(rest, done);
        }
        return GroupResult{buildpack_error ? Verdict::Error : Verdict::Fail, {}};
    }

    base::Result<GroupResult> detect_group(const Group& group, std::vector<DoneEntry> done) {
        if (++m_groups > kMaxGroups) {
            return base::invalid_argument(
                "the builder's order expands to more than {} groups (composite buildpacks "
                "fan out too much; while expanding {})",
                kMaxGroups,
                m_chain.empty() ? "the order" : fmt::format("{}", fmt::join(m_chain, " → ")));
        }
        for (size_t i = 0; i < group.size(); ++i) {
            const GroupRef& element = group[i];
            bool seen = false;
            for (const DoneEntry& entry : done) {
                seen = seen || entry.ref.id == element.id;
            }
            if (seen) {
                continue;  // de-duplicated by id, whatever the version
            }
            auto found = m_lookup(element.id, element.version);
            if (!found) {
                return std::move(found.error())
                    .context(fmt::format("looking up buildpack `{}`",
                                         key_of(element.id, element.version)));
            }
            const BuildpackDescriptor& bp = *found;
            if (bp.composite()) {
                Group rest(group.begin() + static_cast<std::ptrdiff_t>(i) + 1, group.end());
                m_chain.push_back(key_of(element.id, element.version));
                if (m_chain.size() > kMaxCompositeDepth) {
                    return base::invalid_argument(
                        "composite buildpacks nest deeper than {} levels (does an [[order]] "
                        "include itself?): {} → …",
                        kMaxCompositeDepth, fmt::join(m_chain.begin(), m_chain.begin() + 8, " → "));
                }
                auto result = detect_order(bp.order, done, rest, element.optional);
                m_chain.pop_back();
                return result;
            }
            std::string key = key_of(element.id, element.version);
            done.push_back({element, bp.api, bp.homepage});
            if (m_outcome.runs.count(key) != 0) {
                continue;
            }
            if (m_options.match_targets && !element.optional &&
                !targets_match(bp.effective_targets(), m_options.run_target)) {
                const Target& run = m_options.run_target;
                m_outcome.runs[key] = DetectRun{
                    -1,
                    fmt::format("unable to satisfy target os/arch constraints; run image: "
                                "os={} arch={} variant={}",
                                run.os, run.arch, run.variant),
                    ""};
                continue;
            }
            DetectRun run = TRY(m_runner(bp));
            if (run.code == 0) {
                auto plan = parse_detect_plan(run.plan, fmt::format("the plan of {}", key));
                if (!plan) {
                    run.code = -1;
                    run.output += plan.error().message() + "\n";
                } else {
                    m_plans[key] = std::move(*plan);
                }
            }
            m_outcome.runs[key] = std::move(run);
        }
        return verdict(done);
    }

    GroupResult verdict(const std::vector<DoneEntry>& done) {
        std::vector<std::string> tried;
        std::vector<Detected> passing;
        bool detected = true;
        bool buildpack_error = false;
        for (const DoneEntry& entry : done) {
            std::string key = key_of(entry.ref.id, entry.ref.version);
            tried.push_back(key);
            const DetectRun& run = m_outcome.runs[key];
            if (!run.output.empty()) {
                m_outcome.log.push_back(fmt::format("======== Output: {} ========", key));
                m_outcome.log.push_back(run.output);
            }
            if (run.code == 0) {
                m_outcome.log.push_back("pass: " + key);
                passing.push_back({entry.ref, entry.api, entry.homepage, m_plans[key]});
            } else if (run.code == 100) {
                m_outcome.log.push_back((entry.ref.optional ? "skip: " : "fail: ") + key);
                detected = detected && entry.ref.optional;
            } else {
                m_outcome.log.push_back(fmt::format("err:  {} ({})", key, run.code));
                buildpack_error = true;
                detected = detected && entry.ref.optional;
            }
        }
        m_outcome.tried.push_back(std::move(tried));
        if (!detected) {
            return {buildpack_error ? Verdict::Error : Verdict::Fail, {}};
        }
        if (passing.empty()) {
            m_outcome.log.push_back("fail: no viable buildpacks in group");
            return {Verdict::Fail, {}};
        }
        ResolveOutcome resolved = resolve_plan(passing);
        m_outcome.log.insert(m_outcome.log.end(), resolved.log.begin(), resolved.log.end());
        if (!resolved.resolved) {
            return {Verdict::Fail, {}};
        }
        return {Verdict::Pass, std::move(resolved.resolution)};
    }

    const BuildpackLookup& m_lookup;
    const DetectRunner& m_runner;
    const DetectOptions& m_options;
    DetectOutcome m_outcome;
    std::map<std::string, DetectPlan> m_plans;
    std::vector<std::string> m_chain;  // the composites being expanded, outermost first
    size_t m_groups = 0;
};

}  // namespace

base::Result<DetectOutcome> detect(const Order& order, const BuildpackLookup& lookup,
                                   const DetectRunner& runner, const DetectOptions& options) {
    return Detector(lookup, runner, options).run(order);
}

// ---------------------------------------------------------------------------
// group.toml and plan.toml.

namespace {

std::string format_toml(const toml::table& table) {
    std::ostringstream out;
    out << toml::toml_formatter(table);
    out << "\n";
    return out.str();
}

}  // namespace

std::string group_toml(const Resolution& resolution) {
    toml::array group;
    for (const GroupMember& member : resolution.group) {
        toml::table entry{{"id", member.id}, {"version", member.version}, {"api", member.api}};
        if (!member.homepage.empty()) {
            entry.insert("homepage", member.homepage);
        }
        group.push_back(std::move(entry));
    }
    toml::table root;
    root.insert("group", std::move(group));
    return format_toml(root);
}

std::string plan_toml(const Resolution& resolution) {
    toml::array entries;
    for (const PlanEntry& plan_entry : resolution.plan) {
        toml::array providers;
        for (const PlanProvider& provider : plan_entry.providers) {
            providers.push_back(toml::table{{"id", provider.id}, {"version", provider.version}});
        }
        toml::array requirements;
        for (const Require& require : plan_entry.requirements) {
            toml::table entry{{"name", require.name}};
            if (!require.metadata_toml.empty()) {
                // Our own serialisation of a table parsed from the plan: it parses.
                auto metadata = internal::parse_toml(require.metadata_toml, "metadata");
                if (metadata) {
                    entry.insert("metadata", std::move(*metadata));
                }
            }
            requirements.push_back(std::move(entry));
        }
        entries.push_back(toml::table{{"providers", std::move(providers)},
                                      {"requires", std::move(requirements)}});
    }
    toml::table root;
    root.insert("entries", std::move(entries));
    return format_toml(root);
}

base::Result<void> write_detect_outputs(const Resolution& resolution, const std::string& group_path,
                                        const std::string& plan_path) {
    TRY(base::atomic_write_file(group_path, group_toml(resolution), 0644));
    TRY(base::atomic_write_file(plan_path, plan_toml(resolution), 0644));
    return {};
}

// ---------------------------------------------------------------------------
// The environment of bin/detect and the real runner.

namespace {

// The home directory of `uid` in the rootfs's /etc/passwd, "" if none.
std::string home_of(int rootfs_fd, uint32_t uid) {
    auto passwd = read_file_in_root(rootfs_fd, "/etc/passwd");
    if (!passwd) {
        return "";
    }
    std::istringstream lines(*passwd);
    std::string line;
    while (std::getline(lines, line)) {
        std::vector<std::string> fields;
        size_t start = 0;
        while (true) {
            size_t colon = line.find(':', start);
            fields.push_back(line.substr(start, colon - start));
            if (colon == std::string::npos) {
                break;
            }
            start = colon + 1;
        }
        if (fields.size() >= 6 && fields[2] == std::to_string(uid)) {
            return fields[5];
        }
    }
    return "";
}

}  // namespace

base::Result<std::vector<std::string>> detect_environment(const BuildpackDescriptor& bp,
                                                          const DetectEnvInputs& inputs,
                                                          std::string_view plan_path) {
    EnvMap env = filter_build_base_env(inputs.image_env);
    if (std::string home = home_of(inputs.rootfs_fd, inputs.uid); !home.empty()) {
        env["HOME"] = home;
    }
    if (!bp.clear_env && !inputs.platform_dir.empty()) {
        base::UniqueFd platform(
            ::open(inputs.platform_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!platform) {
            return base::errno_error("opening the platform dir `{}`", inputs.platform_dir);
        }
        TRY(apply_platform_env(env, {platform.get(), "<platform>", "env"}));
    }
    TRY(apply_env_dir(env, {inputs.rootfs_fd, "the builder", "/cnb/build-config/env"},
                      EnvAction::Default));
    env["CNB_BUILDPACK_DIR"] = bp.dir;
    if (bp.api_version >= ApiVersion{0, 8}) {
        env["CNB_PLATFORM_DIR"] = "/platform";
        env["CNB_BUILD_PLAN_PATH"] = std::string(plan_path);
    }
    if (bp.api_version >= ApiVersion{0, 10}) {
        const Target& target = inputs.run_target;
        env["CNB_TARGET_OS"] = target.os;
        env["CNB_TARGET_ARCH"] = target.arch;
        if (!target.variant.empty()) {
            env["CNB_TARGET_ARCH_VARIANT"] = target.variant;
        }
        if (!target.distros.empty() && !target.distros.front().name.empty()) {
            env["CNB_TARGET_DISTRO_NAME"] = target.distros.front().name;
        }
        if (!target.distros.empty() && !target.distros.front().version.empty()) {
            env["CNB_TARGET_DISTRO_VERSION"] = target.distros.front().version;
        }
    }
    if (bp.api_version >= ApiVersion{0, 12}) {
        env["CNB_EXEC_ENV"] = inputs.exec_env.empty() ? "production" : inputs.exec_env;
    }
    return env_to_list(env);
}

namespace {

constexpr const char* kPlanMount = "/tmp/locald-detect";

// Saves fds 1 and 2, points them at the detect's output file for the run
// and restores them (the launcher's payload inherits them; the caller is
// single-threaded by Launcher::run's rule). A closed fd 1 or 2 (a daemon's)
// is held on /dev/null from save() on — so no file opened meanwhile lands
// there — and closed again by restore().
class StdioRedirect {
public:
    static base::Result<StdioRedirect> save() {
        std::fflush(stdout);
        std::fflush(stderr);
        StdioRedirect redirect;
        for (int target : {1, 2}) {
            Saved& saved = redirect.m_saved[target - 1];
            if (::fcntl(target, F_GETFD) < 0 && errno == EBADF) {
                int null = ::open("/dev/null", O_RDWR);
                if (null < 0) {
                    return base::errno_error("opening /dev/null for closed fd {}", target);
                }
                if (null != target) {
                    int dup_err = ::dup2(null, target) < 0 ? errno : 0;
                    ::close(null);
                    if (dup_err != 0) {
                        return base::Error::from_errno(dup_err, "holding closed fd open");
                    }
                }
                saved.was_closed = true;
            }
            saved.active = true;
            saved.fd = base::UniqueFd(::fcntl(target, F_DUPFD_CLOEXEC, 3));
            if (!saved.fd) {
                return base::errno_error("saving fd {}", target);
            }
        }
        return redirect;
    }
    base::Result<void> point_at(int fd) {
        for (int target : {1, 2}) {
            if (::dup2(fd, target) < 0) {
                return base::errno_error("pointing fd {} at the detect output", target);
            }
        }
        return {};
    }
    void restore() {
        std::fflush(stdout);
        std::fflush(stderr);
        for (int target : {1, 2}) {
            Saved& saved = m_saved[target - 1];
            if (!saved.active) {
                continue;
            }
            if (saved.was_closed) {
                ::close(target);
            } else if (saved.fd) {
                (void)::dup2(saved.fd.get(), target);
            }
            saved.fd.reset();
            saved.active = false;
        }
    }
    StdioRedirect() = default;
    StdioRedirect(StdioRedirect&& other) noexcept {
        for (int i = 0; i < 2; ++i) {
            m_saved[i].fd = std::move(other.m_saved[i].fd);
            m_saved[i].was_closed = other.m_saved[i].was_closed;
            m_saved[i].active = std::exchange(other.m_saved[i].active, false);
        }
    }
    StdioRedirect& operator=(StdioRedirect&&) = delete;
    ~StdioRedirect() { restore(); }

private:
    struct Saved {
        base::UniqueFd fd;
        bool was_closed = false;
        bool active = false;
    };
    Saved m_saved[2];
};

base::Result<std::string> read_back(const std::string& path, size_t max_bytes,
                                    bool truncate = false) {
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd) {
        return base::errno_error("opening `{}`", path);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) {
        return base::errno_error("fstat `{}`", path);
    }
    if (!S_ISREG(st.st_mode)) {
        return base::invalid_argument("`{}` is not a regular file", path);
    }
    std::string out;
    char buffer[16384];
    while (out.size() <= max_bytes) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return base::errno_error("reading `{}`", path);
        }
        if (n == 0) {
            return out;
        }
        out.append(buffer, static_cast<size_t>(n));
    }
    if (truncate) {
        out.resize(max_bytes);
        out += "\n[output truncated]\n";
        return out;
    }
    return base::invalid_argument("`{}` is larger than {} bytes", path, max_bytes);
}

// As host root the container's root is a subordinate id, and the launcher
// opens bind sources as that id: the private (0700) scratch dir and the plan
// dir must be its, or the bind is EACCES. Rootless, the container's root is
// this user already. Other host users still cannot enter the 0700 dir.
base::Result<void> give_to_container_root(const std::string& scratch, const std::string& plan_dir) {
    if (::geteuid() != 0) {
        return {};
    }
    auto mapping = TRY(base::container_mapping());
    uint32_t uid = 0, gid = 0;
    if (!base::map_to_host(mapping.uid_map, 0, &uid) ||
        !base::map_to_host(mapping.gid_map, 0, &gid)) {
        return base::internal_error("the container mapping has no root");
    }
    for (const std::string& dir : {scratch, plan_dir}) {
        if (::lchown(dir.c_str(), uid, gid) != 0) {
            return base::errno_error("handing `{}` to the container's root", dir);
        }
    }
    return {};
}

base::Result<DetectRun> run_detect(const LauncherDetectConfig& config,
                                   const BuildpackDescriptor& bp) {
    std::string key = key_of(bp.id, bp.version);
    // First, before any file is opened (see StdioRedirect).
    StdioRedirect stdio = TRY(StdioRedirect::save());
    if (config.rootfs.empty() || config.app_dir.empty() || config.layers_dir.empty() ||
        config.platform_dir.empty() || config.uid == 0) {
        return base::invalid_argument(
            "detect of `{}`: the runner needs the builder rootfs, app, layers and platform "
            "directories and a non-root CNB_USER_ID",
            key);
    }
    base::TempDir scratch =
        TRY(config.scratch_dir.empty() ? base::TempDir::create("locald-detect")
                                       : base::TempDir::create_in(config.scratch_dir, "detect"));
    // The plan dir is 0755 and not the buildpack's: the buildpack (another
    // id) can write the 0666 plan file but not replace it with a link.
    std::string plan_dir = scratch.join("plan");
    if (::mkdir(plan_dir.c_str(), 0755) != 0 || ::chmod(plan_dir.c_str(), 0755) != 0) {
        return base::errno_error("creating `{}`", plan_dir);
    }
    TRY(give_to_container_root(scratch.path(), plan_dir));
    // The plan dir is bound below the private dir: others must be able to
    // traverse to it only through the bind, which does not check the parent.
    std::string plan_file = plan_dir + "/plan.toml";
    {
        base::UniqueFd plan(
            ::open(plan_file.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666));
        if (!plan || ::fchmod(plan.get(), 0666) != 0) {
            return base::errno_error("creating `{}`", plan_file);
        }
    }
    std::string output_file = scratch.join("output");
    base::UniqueFd output(
        ::open(output_file.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_APPEND, 0600));
    if (!output) {
        return base::errno_error("creating `{}`", output_file);
    }
    base::UniqueFd rootfs(::open(config.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!rootfs) {
        return base::errno_error("opening the builder rootfs `{}`", config.rootfs);
    }
    std::string plan_path = std::string(kPlanMount) + "/plan.toml";
    DetectEnvInputs inputs{rootfs.get(), config.platform_dir, config.image_env,
                           config.uid,   config.run_target,   config.exec_env};
    ns::ContainerSpec spec;
    spec.name = "cnb-detect";
    spec.rootfs.path = config.rootfs;
    spec.args = {bp.dir + "/bin/detect", "/platform", plan_path};
    spec.env = TRY(detect_environment(bp, inputs, plan_path));
    spec.exact_env = true;
    spec.cwd = "/workspace";
    spec.user = fmt::format("{}:{}", config.uid, config.gid);
    using ns::MountKind;
    spec.mounts.push_back({MountKind::Bind, config.app_dir, "/workspace", false, {}});
    spec.mounts.push_back({MountKind::Bind, config.layers_dir, "/layers", false, {}});
    spec.mounts.push_back({MountKind::Bind, config.platform_dir, "/platform", true, {}});
    if (!config.cache_dir.empty()) {
        spec.mounts.push_back({MountKind::Bind, config.cache_dir, "/cache", false, {}});
    }
    // A fresh /tmp (as the lifecycle's os.MkdirTemp would use) holding the
    // plan dir, so nothing is created in the builder rootfs.
    spec.mounts.push_back({MountKind::Tmpfs, "", "/tmp", false, {"mode=1777"}});
    spec.mounts.push_back({MountKind::Bind, plan_dir, kPlanMount, false, {}});
    base::Result<int> status = 0;
    TRY(stdio.point_at(output.get()));
    status = ns::Launcher::run(spec, config.launch);
    stdio.restore();
    DetectRun run;
    run.output = TRY(read_back(output_file, kMaxOutputBytes, true));
    if (!status) {
        if (ns::exec_failure_status(status.error())) {
            run.code = -1;
            run.output += status.error().to_string() + "\n";
            return run;
        }
        return std::move(status.error()).context(fmt::format("running the detect of `{}`", key));
    }
    run.code = *status;
    if (run.code == 0) {
        auto plan = read_back(plan_file, kMaxPlanBytes);
        if (!plan) {
            run.code = -1;
            run.output += plan.error().to_string() + "\n";
            return run;
        }
        run.plan = std::move(*plan);
    }
    return run;
}

}  // namespace

DetectRunner launcher_detect_runner(LauncherDetectConfig config) {
    return [config = std::move(config)](const BuildpackDescriptor& bp) {
        return run_detect(config, bp);
    };
}

base::Result<DetectOutcome> run_detect_phase(const DetectPhase& phase,
                                             const DetectOptions& options) {
    const LauncherDetectConfig& config = phase.run;
    base::UniqueFd rootfs(::open(config.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!rootfs) {
        return base::errno_error("opening the builder rootfs `{}`", config.rootfs);
    }
    std::string order_path = phase.order_path;
    if (order_path.empty()) {
        std::string in_layers = config.layers_dir + "/order.toml";
        struct stat st;
        if (::lstat(in_layers.c_str(), &st) == 0) {
            order_path = in_layers;
        }
    }
    Order order;
    if (order_path.empty()) {
        order = TRY(load_order(rootfs.get()));
    } else {
        std::string text = TRY(read_back(order_path, kMaxPlanBytes));
        order = TRY(parse_order_toml(text, order_path));
    }
    auto system = read_file_in_root(rootfs.get(), "/cnb/system.toml");
    if (system) {
        order = merge_system_buildpacks(order, TRY(parse_system_toml(*system, "/cnb/system.toml")));
    } else if (system.error().kind() != base::ErrorKind::NotFound) {
        return system.release_error();
    }
    int fd = rootfs.get();
    BuildpackLookup lookup = [fd](std::string_view id, std::string_view version) {
        return load_buildpack(fd, id, version);
    };
    DetectOutcome outcome = TRY(detect(order, lookup, launcher_detect_runner(config), options));
    if (outcome.exit_code == 0) {
        TRY(write_detect_outputs(outcome.resolution, config.layers_dir + "/group.toml",
                                 config.layers_dir + "/plan.toml"));
    }
    return outcome;
}

}  // namespace locald::cnb
