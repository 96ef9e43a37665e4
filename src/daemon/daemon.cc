#include "daemon/daemon.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "base/sys.h"
#include "base/unique_fd.h"
#include "base/version.h"
#include "daemon/internal/build_id.h"
#include "daemon/internal/unix_socket.h"
#include "daemon/ipc_server.h"
#include "daemon/protocol.h"
#include "daemon/service_manager.h"
#include "host/clock.h"
#include "host/log_sink.h"
#include "host/process_tree.h"
#include "host/supervisor.h"

namespace locald::daemon {

DaemonPaths DaemonPaths::from(const base::Paths& paths) {
    DaemonPaths out;
    out.run_dir = paths.run;
    out.state_dir = paths.state;
    out.socket = paths.run + "/daemon.sock";
    out.lock = paths.run + "/daemon.lock";
    out.pid_file = paths.run + "/daemon.pid";
    out.log_file = paths.state + "/daemon.log";
    out.state_file = paths.state + "/state.json";
    out.logs_dir = paths.state + "/logs";
    return out;
}

namespace {

using base::Json;

std::vector<std::string> string_list(const Json& params, std::string_view key) {
    std::vector<std::string> out;
    if (const Json* list = params.find(key); list && list->is_array()) {
        for (const auto& item : list->as_array()) {
            if (item.is_string()) {
                out.push_back(item.as_string());
            }
        }
    }
    return out;
}

std::string string_param(const Json& params, std::string_view key, std::string fallback = "") {
    if (const Json* value = params.find(key); value && value->is_string()) {
        return value->as_string();
    }
    return fallback;
}

int64_t int_param(const Json& params, std::string_view key, int64_t fallback) {
    if (const Json* value = params.find(key); value && value->is_int()) {
        return value->as_int();
    }
    return fallback;
}

bool bool_param(const Json& params, std::string_view key, bool fallback = false) {
    if (const Json* value = params.find(key); value && value->is_bool()) {
        return value->as_bool();
    }
    return fallback;
}

// `up`/`start`/`restart` are done with a service once it is ready, failed,
// exited — or `running` (no probe) and still up a second after it started, so a
// command that dies at once is reported as the crash loop it is, not as "up".
bool settled_for_up(const ServiceView& view) {
    if (!is_settled(view)) {
        return false;
    }
    if (view.state == host::ServiceState::Running && view.started_at) {
        return std::chrono::system_clock::now() - *view.started_at >= std::chrono::seconds(1);
    }
    return true;
}

// How `up`/`start`/`restart` see one target service (docs/manual/commands.md,
// "When up returns"): still coming up, up, failed for good, restarting after
// its run ended before it was up (crash loop under the restart policy), or
// blocked because a service it depends on is one of the last two.
enum class UpOutcome { Waiting, Up, Failed, Restarting, Blocked };

// What the caller is told about a service that crashed before it was up.
struct CrashReport {
    std::string exit;  // "exited with code 2", "killed by SIGSEGV", probe failure
    int attempt = 0;   // restarts in a row so far (this is the attempt-th)
    int max_restarts = -1;
    int64_t next_restart_ms = 0;
    std::vector<std::string> last_lines;
};

constexpr size_t kCrashTailLines = 10;

// `<run>/daemon.pid`: written whole (temporary file + rename, so a reader
// never sees half of it) but not fsync'ed — it only describes this process,
// which a power loss ends anyway, and two fsyncs were a visible part of a cold
// start. The lock, not this file, decides which daemon runs.
base::Result<void> write_pid_file(const std::string& path, std::string_view text) {
    std::string tmp = fmt::format("{}.tmp-{}", path, ::getpid());
    {
        base::UniqueFd fd =
            TRY(base::open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (auto written = base::write_all(fd.get(), text); !written) {
            ::unlink(tmp.c_str());
            return written;
        }
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        auto error = base::errno_error("renaming `{}` to `{}`", tmp, path);
        ::unlink(tmp.c_str());
        return error;
    }
    return base::ok();
}

int64_t unix_ms(host::WallTime time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

Json record_json(const ServiceKey& key, const host::LogRecord& record) {
    std::string_view stream = record.stream == host::LogStream::Output   ? "out"
                              : record.stream == host::LogStream::System ? "sys"
                                                                         : "gap";
    return Json::object({{"service", key.qualified()},
                         {"time", unix_ms(record.time)},
                         {"stream", stream},
                         {"text", sanitize_utf8(record.text)}});
}

class Daemon {
public:
    Daemon(base::EventLoop& loop, const DaemonPaths& paths, ServiceManager& manager)
        : m_loop(loop), m_paths(paths), m_manager(manager) {}

    void handle(std::shared_ptr<Call> call) {
        const std::string& method = call->method();
        if (m_shutting_down && method != "hello" && method != "status") {
            call->fail(base::unavailable("the daemon is shutting down"));
            return;
        }
        if (method == "hello") {
            call->finish(Json::object({{"version", base::kVersion},
                                       {"protocol", kProtocolVersion},
                                       {"build_id", binary_build_id()},
                                       {"pid", static_cast<int64_t>(::getpid())}}));
        } else if (method == "up") {
            handle_up(call);
        } else if (method == "down") {
            handle_down(call);
        } else if (method == "start" || method == "stop" || method == "restart") {
            handle_control(call);
        } else if (method == "status") {
            handle_status(call);
        } else if (method == "logs") {
            handle_logs(call);
        } else if (method == "attach") {
            handle_attach(call);
        } else if (method == "attach_input" || method == "attach_resize") {
            handle_attach_io(call);
        } else if (method == "service_env") {
            handle_service_env(call);
        } else if (method == "shutdown") {
            handle_shutdown(call);
        } else {
            call->fail(base::invalid_argument("unknown method `{}`", method));
        }
    }

    // SIGTERM/SIGINT: stop everything, keep the desired state, exit.
    void terminate() {
        if (m_shutting_down) {
            return;
        }
        LOG_INFO("signal received: stopping every service, then exiting");
        begin_shutdown(false, nullptr);
    }

private:
    // Streams each service's changes to the caller until all of `keys` satisfy
    // `predicate`, then answers with their final views (up/start/restart).
    void report_until(const std::shared_ptr<Call>& call, std::vector<ServiceKey> keys,
                      std::function<bool(const ServiceView&)> predicate) {
        send_progress(call, keys);
        auto watched = keys;
        wait_for(
            call, std::move(watched), std::move(predicate),
            [call](const ServiceView& view) {
                call->event(Json::object({{"service", to_json(view, true)}}));
            },
            [this, call, keys] { finish_with_services(call, keys); });
    }

    // Calls `done` once `predicate` holds for every key (checked now and after
    // every status change); the wait ends early if the client goes away.
    void wait_for(const std::shared_ptr<Call>& call, std::vector<ServiceKey> keys,
                  std::function<bool(const ServiceView&)> predicate,
                  std::function<void(const ServiceView&)> on_change, std::function<void()> done) {
        struct Waiter {
            uint64_t listener = 0;
            base::EventLoop::WatchId timer = 0;
            bool finished = false;
        };
        auto waiter = std::make_shared<Waiter>();
        auto check = [this, keys, predicate, waiter, done]() {
            if (waiter->finished) {
                return;
            }
            for (const auto& key : keys) {
                auto view = m_manager.view(key);
                if (view && !predicate(*view)) {
                    return;
                }
            }
            waiter->finished = true;
            m_manager.remove_listener(waiter->listener);
            m_loop.cancel_timer(waiter->timer);
            // Not from inside the listener loop.
            m_loop.post(done);
        };
        std::set<ServiceKey> wanted(keys.begin(), keys.end());
        waiter->listener =
            m_manager.add_listener([wanted, on_change, check, call](const ServiceView& view) {
                if (!wanted.contains({view.project, view.name})) {
                    return;
                }
                if (on_change && call->open()) {
                    on_change(view);
                }
                check();
            });
        // Time-based predicates (a run that must stay up a moment) need a tick.
        waiter->timer = m_loop.add_repeating_timer(std::chrono::milliseconds(100), check);
        call->on_close([this, waiter] {
            waiter->finished = true;
            m_manager.remove_listener(waiter->listener);
            m_loop.cancel_timer(waiter->timer);
        });
        check();
    }

    Json views_json(const std::vector<ServiceKey>& keys, int* failed) {
        Json list = Json::array();
        for (const auto& key : keys) {
            if (auto view = m_manager.view(key)) {
                if (failed && is_failure(*view)) {
                    ++*failed;
                }
                list.push_back(to_json(*view, true));
            }
        }
        return list;
    }

    void finish_with_services(const std::shared_ptr<Call>& call,
                              const std::vector<ServiceKey>& keys) {
        int failed = 0;
        Json services = views_json(keys, &failed);
        call->finish(Json::object({{"services", std::move(services)}, {"failed", failed}}));
    }

    void send_progress(const std::shared_ptr<Call>& call, const std::vector<ServiceKey>& keys) {
        for (const auto& key : keys) {
            if (auto view = m_manager.view(key)) {
                call->event(Json::object({{"service", to_json(*view, true)}}));
            }
        }
    }

    // Per-request memory of `up`/`start`/`restart`: which targets crashed
    // (restart backoff seen) before they were up during this request. A crash
    // is remembered until the service is up (ready, or running for a second),
    // so a fast backoff that ends before the others settle is not missed.
    struct UpTracker {
        std::map<ServiceKey, CrashReport> crashed;
    };

    std::optional<CrashReport> crash_now(const ServiceKey& key) {
        host::Supervisor* supervisor = m_manager.supervisor(key);
        if (supervisor == nullptr) {
            return std::nullopt;
        }
        const host::ServiceStatus& status = supervisor->status();
        if (!status.next_start_at) {
            return std::nullopt;  // not waiting out a restart backoff
        }
        CrashReport report;
        // The machine's reason is "<how the run ended>; restarting in <delay>".
        report.exit = status.reason.substr(0, status.reason.rfind("; restarting in "));
        if (report.exit.empty() && status.last_exit) {
            report.exit = status.last_exit->describe();
        }
        report.attempt = status.consecutive_failures;
        report.max_restarts = supervisor->options().restart.max_restarts;
        auto left = *status.next_start_at - host::real_clock().now();
        report.next_restart_ms = std::max<int64_t>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(left).count());
        for (const auto& record : supervisor->logs().tail(kCrashTailLines * 4)) {
            if (record.stream == host::LogStream::Output) {
                report.last_lines.push_back(sanitize_utf8(record.text));
            }
        }
        if (report.last_lines.size() > kCrashTailLines) {
            report.last_lines.erase(report.last_lines.begin(),
                                    report.last_lines.end() - kCrashTailLines);
        }
        return report;
    }

    UpOutcome up_outcome(UpTracker& tracker, const ServiceKey& key, std::set<ServiceKey>& seen) {
        auto view = m_manager.view(key);
        if (!view) {
            return UpOutcome::Up;  // removed by a re-apply: nothing to wait for
        }
        if (auto crash = crash_now(key)) {
            tracker.crashed[key] = std::move(*crash);
            return UpOutcome::Restarting;
        }
        if (view->waiting) {
            if (!seen.insert(key).second) {
                return UpOutcome::Waiting;  // a dependency cycle is refused by config; be safe
            }
            for (const auto& dependency : m_manager.dependencies(key)) {
                UpOutcome o = up_outcome(tracker, {key.project, dependency}, seen);
                if (o == UpOutcome::Restarting || o == UpOutcome::Blocked) {
                    return UpOutcome::Blocked;
                }
            }
            return UpOutcome::Waiting;
        }
        if (settled_for_up(*view)) {
            tracker.crashed.erase(key);
            return is_failure(*view) ? UpOutcome::Failed : UpOutcome::Up;
        }
        return tracker.crashed.contains(key) ? UpOutcome::Restarting : UpOutcome::Waiting;
    }

    // The first dependency of `key` (transitively) that crashed before it was up.
    std::string blocking_dependency(UpTracker& tracker, const ServiceKey& key) {
        std::set<ServiceKey> seen;
        std::vector<ServiceKey> todo{key};
        while (!todo.empty()) {
            ServiceKey current = todo.back();
            todo.pop_back();
            if (!seen.insert(current).second) {
                continue;
            }
            for (const auto& dependency : m_manager.dependencies(current)) {
                ServiceKey dep{key.project, dependency};
                if (tracker.crashed.contains(dep)) {
                    return dep.qualified();
                }
                todo.push_back(dep);
            }
        }
        return "";
    }

    // `up`/`start`/`restart`: streams changes until every target is up, failed,
    // restarting after a crash before it was up, or blocked by such a
    // dependency; then answers with the views and, for the last two, why.
    void report_up(const std::shared_ptr<Call>& call, std::vector<ServiceKey> keys) {
        auto tracker = std::make_shared<UpTracker>();
        send_progress(call, keys);
        auto predicate = [this, tracker](const ServiceView& view) {
            std::set<ServiceKey> seen;
            return up_outcome(*tracker, {view.project, view.name}, seen) != UpOutcome::Waiting;
        };
        auto watched = keys;
        wait_for(
            call, std::move(watched), std::move(predicate),
            [call](const ServiceView& view) {
                call->event(Json::object({{"service", to_json(view, true)}}));
            },
            [this, call, keys, tracker] {
                int failed = 0;
                Json list = Json::array();
                for (const auto& key : keys) {
                    auto view = m_manager.view(key);
                    if (!view) {
                        continue;
                    }
                    std::set<ServiceKey> seen;
                    UpOutcome outcome = up_outcome(*tracker, key, seen);
                    Json json = to_json(*view, true);
                    if (outcome == UpOutcome::Restarting) {
                        const CrashReport& crash = tracker->crashed[key];
                        Json lines = Json::array();
                        for (const auto& line : crash.last_lines) {
                            lines.push_back(line);
                        }
                        json.set("not_up", Json::object({{"why", "restarting"},
                                                         {"exit", crash.exit},
                                                         {"attempt", crash.attempt},
                                                         {"max_restarts", crash.max_restarts},
                                                         {"next_restart_ms", crash.next_restart_ms},
                                                         {"last_lines", std::move(lines)}}));
                    } else if (outcome == UpOutcome::Blocked) {
                        json.set(
                            "not_up",
                            Json::object({{"why", "blocked"},
                                          {"dependency", blocking_dependency(*tracker, key)}}));
                    }
                    if (outcome == UpOutcome::Failed || outcome == UpOutcome::Restarting ||
                        outcome == UpOutcome::Blocked) {
                        ++failed;
                    }
                    list.push_back(std::move(json));
                }
                call->finish(Json::object({{"services", std::move(list)}, {"failed", failed}}));
            });
    }

    void handle_up(std::shared_ptr<Call> call) {
        const Json& params = call->params();
        std::string dir = string_param(params, "dir");
        if (dir.empty()) {
            call->fail(base::invalid_argument("up: `dir` is required"));
            return;
        }
        config::Environment env;
        if (const Json* e = params.find("env"); e && e->is_object()) {
            for (const auto& [key, value] : e->as_object()) {
                if (value.is_string()) {
                    env[key] = value.as_string();
                }
            }
        }
        auto targets = m_manager.apply(dir, env, string_list(params, "services"));
        if (!targets) {
            call->fail(targets.error());
            return;
        }
        auto keys = targets.release_value();
        call->event(Json::object({{"project", keys.empty() ? "" : keys.front().project}}));
        report_up(call, std::move(keys));
    }

    void handle_down(std::shared_ptr<Call> call) {
        const Json& params = call->params();
        std::string project = string_param(params, "project");
        if (project.empty()) {
            std::string dir = string_param(params, "dir");
            auto found = m_manager.project_for_dir(dir);
            if (!found) {
                found = m_manager.project_for_cwd(dir);
            }
            if (!found) {
                call->fail(base::not_found("no project is loaded from `{}`", dir));
                return;
            }
            project = *found;
        }
        auto keys = m_manager.down(project);
        if (!keys) {
            call->fail(keys.error());
            return;
        }
        auto list = keys.release_value();
        send_progress(call, list);
        wait_for(
            call, list,
            [](const ServiceView& v) {
                return v.state != host::ServiceState::Stopping &&
                       v.state != host::ServiceState::Starting &&
                       v.state != host::ServiceState::Ready &&
                       v.state != host::ServiceState::Running && !v.waiting;
            },
            [call](const ServiceView& view) {
                call->event(Json::object({{"service", to_json(view, true)}}));
            },
            [this, call, list] { finish_with_services(call, list); });
    }

    void handle_control(std::shared_ptr<Call> call) {
        const Json& params = call->params();
        auto keys =
            m_manager.resolve(string_list(params, "names"), string_param(params, "cwd"), false);
        if (!keys) {
            call->fail(keys.error());
            return;
        }
        auto list = keys.release_value();
        const std::string& method = call->method();
        if (method == "stop") {
            m_manager.stop(list);
            report_until(call, std::move(list), [](const ServiceView& v) {
                return v.state == host::ServiceState::Stopped ||
                       v.state == host::ServiceState::Exited ||
                       v.state == host::ServiceState::Failed ||
                       v.state == host::ServiceState::Pending;
            });
            return;
        }
        if (method == "start") {
            m_manager.start(list);
        } else {
            m_manager.restart(list);
        }
        report_up(call, std::move(list));
    }

    void handle_status(std::shared_ptr<Call> call) {
        const Json& params = call->params();
        auto names = string_list(params, "names");
        std::vector<ServiceView> views;
        if (names.empty()) {
            views = m_manager.views();
        } else {
            auto keys = m_manager.resolve(names, string_param(params, "cwd"), true);
            if (!keys) {
                call->fail(keys.error());
                return;
            }
            for (const auto& key : *keys) {
                if (auto view = m_manager.view(key)) {
                    views.push_back(*view);
                }
            }
        }
        Json list = Json::array();
        for (const auto& view : views) {
            list.push_back(to_json(view, true));
        }
        call->finish(Json::object({{"services", std::move(list)}}));
    }

    // ------------------------------------------------------------ logs

    struct LogStream {
        ServiceKey key;
        std::unique_ptr<host::LogSubscription> subscription;
    };
    struct LogFollow {
        std::vector<LogStream> streams;
        bool drain_posted = false;
        base::EventLoop::WatchId retry = 0;
        bool closed = false;
    };

    void drain_follow(const std::shared_ptr<Call>& call, const std::shared_ptr<LogFollow>& follow) {
        follow->drain_posted = false;
        if (follow->closed || !call->open()) {
            return;
        }
        if (call->backlog() > IpcServer::kMaxBufferedBytes) {
            // The client reads slowly: leave records in the bounded queues (they
            // turn into gap markers when full) and look again shortly.
            if (follow->retry == 0) {
                follow->retry = m_loop.add_timer(std::chrono::milliseconds(50), [=, this] {
                    follow->retry = 0;
                    drain_follow(call, follow);
                });
            }
            return;
        }
        Json lines = Json::array();
        std::vector<host::LogRecord> records;
        for (auto& stream : follow->streams) {
            records.clear();
            stream.subscription->drain(records);
            for (const auto& record : records) {
                lines.push_back(record_json(stream.key, record));
                if (lines.size() >= 512) {
                    call->event(Json::object({{"lines", std::move(lines)}}));
                    lines = Json::array();
                }
            }
        }
        if (lines.size() > 0) {
            call->event(Json::object({{"lines", std::move(lines)}}));
        }
    }

    void handle_logs(std::shared_ptr<Call> call) {
        const Json& params = call->params();
        auto keys =
            m_manager.resolve(string_list(params, "names"), string_param(params, "cwd"), true);
        if (!keys) {
            call->fail(keys.error());
            return;
        }
        int64_t tail = int_param(params, "tail", -1);
        int64_t since_ms = int_param(params, "since_ms", -1);
        bool follow = bool_param(params, "follow");
        auto now_ms = unix_ms(std::chrono::system_clock::now());

        struct Item {
            size_t key;
            host::LogRecord record;
        };
        std::vector<Item> items;
        for (size_t i = 0; i < keys->size(); ++i) {
            host::Supervisor* supervisor = m_manager.supervisor((*keys)[i]);
            if (supervisor == nullptr) {
                continue;
            }
            auto records = supervisor->logs().tail(tail > 0 ? static_cast<size_t>(tail) : 0);
            for (auto& record : records) {
                if (since_ms >= 0 && unix_ms(record.time) < now_ms - since_ms) {
                    continue;
                }
                items.push_back({i, std::move(record)});
            }
        }
        std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
            return a.record.time < b.record.time;
        });
        if (tail >= 0 && items.size() > static_cast<size_t>(tail)) {
            items.erase(items.begin(), items.end() - tail);
        }
        Json lines = Json::array();
        for (const auto& item : items) {
            lines.push_back(record_json((*keys)[item.key], item.record));
            if (lines.size() >= 512) {
                call->event(Json::object({{"lines", std::move(lines)}}));
                lines = Json::array();
            }
        }
        if (lines.size() > 0) {
            call->event(Json::object({{"lines", std::move(lines)}}));
        }
        if (!follow) {
            call->finish(Json::object({{"lines", static_cast<int64_t>(items.size())}}));
            return;
        }
        auto state = std::make_shared<LogFollow>();
        std::weak_ptr<LogFollow> weak = state;
        for (const auto& key : *keys) {
            host::Supervisor* supervisor = m_manager.supervisor(key);
            if (supervisor == nullptr) {
                continue;
            }
            auto wake = [this, weak, call] {
                auto follow = weak.lock();
                if (!follow || follow->drain_posted) {
                    return;
                }
                follow->drain_posted = true;
                m_loop.post([this, weak, call] {
                    if (auto f = weak.lock()) {
                        drain_follow(call, f);
                    }
                });
            };
            state->streams.push_back({key, supervisor->logs().subscribe(20'000, wake)});
        }
        m_follows[call.get()] = state;
        call->event(Json::object({{"following", true}}));
        call->on_close([this, raw = call.get()] {
            auto it = m_follows.find(raw);
            if (it != m_follows.end()) {
                it->second->closed = true;
                if (it->second->retry != 0) {
                    m_loop.cancel_timer(it->second->retry);
                }
                // Dropped later: not from inside a sink's wake callback.
                auto doomed = it->second;
                m_follows.erase(it);
                m_loop.post([doomed] {});
            }
        });
    }

    // ------------------------------------------------------------ attach

    struct Attach {
        ServiceKey key;
        // Strong: nothing else keeps an attach call alive between events.
        std::shared_ptr<Call> call;
        std::unique_ptr<host::LogSubscription> subscription;
        bool drain_posted = false;
        bool closed = false;
        uint64_t listener = 0;
    };

    void drain_attach(int64_t session) {
        auto it = m_attaches.find(session);
        if (it == m_attaches.end()) {
            return;
        }
        auto attach = it->second;
        attach->drain_posted = false;
        auto call = attach->call;
        if (!call || !call->open()) {
            return;
        }
        std::string bytes;
        uint64_t dropped = attach->subscription->drain_raw(bytes);
        if (dropped > 0) {
            call->event(Json::object({{"dropped", static_cast<int64_t>(dropped)}}));
        }
        if (!bytes.empty()) {
            call->event(Json::object({{"data", base64_encode(bytes)}}), true);
        }
    }

    void handle_attach(std::shared_ptr<Call> call) {
        const Json& params = call->params();
        auto keys =
            m_manager.resolve({string_param(params, "name")}, string_param(params, "cwd"), false);
        if (!keys) {
            call->fail(keys.error());
            return;
        }
        ServiceKey key = keys->front();
        host::Supervisor* supervisor = m_manager.supervisor(key);
        if (supervisor == nullptr || supervisor->status().pid <= 0) {
            call->fail(base::failed_precondition("service `{}` is not running", key.qualified()));
            return;
        }
        int64_t session = m_next_session++;
        auto attach = std::make_shared<Attach>();
        attach->key = key;
        attach->call = call;
        attach->subscription = supervisor->logs().subscribe_raw(4u << 20, [this, session] {
            auto it = m_attaches.find(session);
            if (it == m_attaches.end() || it->second->drain_posted) {
                return;
            }
            it->second->drain_posted = true;
            m_loop.post([this, session] { drain_attach(session); });
        });
        m_attaches[session] = attach;
        int64_t rows = int_param(params, "rows", 0);
        int64_t cols = int_param(params, "cols", 0);
        if (rows > 0 && cols > 0 && rows < 10000 && cols < 10000) {
            (void)supervisor->resize(
                host::PtySize{static_cast<uint16_t>(rows), static_cast<uint16_t>(cols)});
        }
        call->event(Json::object(
            {{"attached",
              Json::object({{"session", session},
                            {"service", key.qualified()},
                            {"pid", static_cast<int64_t>(supervisor->status().pid)}})}}));
        // The attach ends when the service is down (a restart keeps it: the
        // sink, and so the subscription, outlives runs).
        std::weak_ptr<Call> weak_call = call;
        attach->listener =
            m_manager.add_listener([this, key, session, weak_call](const ServiceView& view) {
                if (view.project != key.project || view.name != key.service) {
                    return;
                }
                if (view.state == host::ServiceState::Stopped ||
                    view.state == host::ServiceState::Exited ||
                    view.state == host::ServiceState::Failed) {
                    m_loop.post([this, session, weak_call] {
                        drain_attach(session);
                        end_attach(session);
                        if (auto c = weak_call.lock()) {
                            c->finish(Json::object({{"ended", true}}));
                        }
                    });
                }
            });
        call->on_close([this, session] { end_attach(session); });
    }

    void end_attach(int64_t session) {
        auto it = m_attaches.find(session);
        if (it == m_attaches.end()) {
            return;
        }
        auto doomed = it->second;
        m_manager.remove_listener(doomed->listener);
        m_attaches.erase(it);
        m_loop.post([doomed] {});
    }

    void handle_attach_io(std::shared_ptr<Call> call) {
        const Json& params = call->params();
        auto it = m_attaches.find(int_param(params, "session", -1));
        if (it == m_attaches.end()) {
            call->fail(base::not_found("no such attach session"));
            return;
        }
        host::Supervisor* supervisor = m_manager.supervisor(it->second->key);
        if (supervisor == nullptr) {
            call->fail(base::not_found("service `{}` is gone", it->second->key.qualified()));
            return;
        }
        if (call->method() == "attach_resize") {
            int64_t rows = int_param(params, "rows", 0);
            int64_t cols = int_param(params, "cols", 0);
            if (rows <= 0 || cols <= 0 || rows >= 10000 || cols >= 10000) {
                call->fail(base::invalid_argument("attach_resize: bad size {}x{}", cols, rows));
                return;
            }
            auto resized = supervisor->resize(
                host::PtySize{static_cast<uint16_t>(rows), static_cast<uint16_t>(cols)});
            if (!resized) {
                call->fail(resized.error());
                return;
            }
            call->finish(Json::object());
            return;
        }
        auto data = base64_decode(string_param(params, "data"));
        if (!data) {
            call->fail(data.error());
            return;
        }
        std::string_view rest = *data;
        size_t accepted_total = 0;
        // The PTY input queue is small (4 KiB canonical); a paste may need a few
        // rounds. Bounded: whatever does not fit is reported back.
        for (int round = 0; round < 64 && !rest.empty(); ++round) {
            auto accepted = supervisor->write_input(rest);
            if (!accepted) {
                call->fail(accepted.error());
                return;
            }
            accepted_total += *accepted;
            rest.remove_prefix(*accepted);
            if (*accepted == 0) {
                break;
            }
        }
        call->finish(Json::object({{"accepted", static_cast<int64_t>(accepted_total)}}));
    }

    // ------------------------------------------------------------ env / run

    void handle_service_env(std::shared_ptr<Call> call) {
        const Json& params = call->params();
        auto keys =
            m_manager.resolve({string_param(params, "name")}, string_param(params, "cwd"), false);
        if (!keys) {
            call->fail(keys.error());
            return;
        }
        auto context = m_manager.run_context(keys->front());
        if (!context) {
            call->fail(context.error());
            return;
        }
        Json env = Json::array();
        for (const auto& entry : context->env) {
            env.push_back(Json::object({{"key", entry.key},
                                        {"value", entry.value},
                                        {"origin", config::to_string(entry.origin)},
                                        {"location", entry.location.to_string()}}));
        }
        Json argv = Json::array();
        for (const auto& arg : context->argv) {
            argv.push_back(arg);
        }
        call->finish(Json::object({{"service", keys->front().qualified()},
                                   {"env", std::move(env)},
                                   {"workdir", context->workdir},
                                   {"argv", std::move(argv)},
                                   {"kind", context->image ? "image" : "host"},
                                   {"project_dir", context->project_dir}}));
    }

    // ------------------------------------------------------------ shutdown

    void handle_shutdown(std::shared_ptr<Call> call) {
        bool restart = bool_param(call->params(), "restart");
        LOG_INFO("shutdown requested{}", restart ? " (restart: services come back)" : "");
        begin_shutdown(!restart, call);
    }

    void begin_shutdown(bool forget, std::shared_ptr<Call> call) {
        if (call) {
            m_shutdown_calls.push_back(call);
        }
        if (m_shutting_down) {
            return;
        }
        m_shutting_down = true;
        m_manager.stop_all(forget);
        m_shutdown_listener = m_manager.add_listener(
            [this](const ServiceView&) { m_loop.post([this] { maybe_exit(); }); });
        // Supervisors escalate to SIGKILL after each stop_timeout; this only
        // guards against a bug keeping the daemon alive forever.
        m_loop.add_timer(std::chrono::seconds(120), [this] {
            LOG_ERROR("services did not stop within 120s; exiting anyway");
            finish_shutdown();
        });
        m_loop.post([this] { maybe_exit(); });
    }

    void maybe_exit() {
        if (m_manager.all_down()) {
            finish_shutdown();
        }
    }

    void finish_shutdown() {
        if (m_finished) {
            return;
        }
        m_finished = true;
        m_manager.remove_listener(m_shutdown_listener);
        for (auto& call : m_shutdown_calls) {
            call->finish(Json::object({{"stopped", true}}));
        }
        // Let the answers reach the socket before the loop ends.
        m_loop.add_timer(std::chrono::milliseconds(20), [this] { m_loop.stop(); });
    }

    base::EventLoop& m_loop;
    const DaemonPaths& m_paths;
    ServiceManager& m_manager;
    bool m_shutting_down = false;
    bool m_finished = false;
    uint64_t m_shutdown_listener = 0;
    std::vector<std::shared_ptr<Call>> m_shutdown_calls;
    std::map<Call*, std::shared_ptr<LogFollow>> m_follows;
    std::map<int64_t, std::shared_ptr<Attach>> m_attaches;
    int64_t m_next_session = 1;
};

base::Result<base::UniqueFd> take_lock(const DaemonPaths& paths) {
    base::UniqueFd fd = TRY(base::open_file(paths.lock, O_RDWR | O_CREAT | O_NOFOLLOW, 0600));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            std::string pid = "unknown";
            if (auto text = base::read_file(paths.pid_file, 4096)) {
                pid = text->substr(0, text->find(' '));
            }
            return base::already_exists("a locald daemon is already running for `{}` (pid {})",
                                        paths.run_dir, pid);
        }
        return base::errno_error("locking `{}`", paths.lock);
    }
    return fd;
}

base::Result<int> serve(const DaemonPaths& paths) {
    TRY(base::ensure_private_dir(paths.run_dir));
    TRY(base::ensure_private_dir(paths.state_dir));
    base::UniqueFd lock = TRY(take_lock(paths));
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    if (auto reaper = host::become_subreaper(); !reaper) {
        LOG_WARN("{}", reaper.error().to_string());
    }
    if (::chdir("/") != 0) {
        LOG_WARN("chdir /: {}", std::strerror(errno));
    }
    base::EventLoop loop = TRY(base::EventLoop::create());
    StateStore store(paths.state_file);
    ManagerOptions options;
    options.logs_dir = paths.logs_dir;
    options.store = &store;
    auto manager = TRY(ServiceManager::create(loop, options));
    TRY(manager->recover());

    Daemon daemon(loop, paths, *manager);
    base::UniqueFd listener = TRY(internal::listen_unix(paths.socket));
    auto server =
        TRY(IpcServer::create(loop, std::move(listener), [&daemon](std::shared_ptr<Call> call) {
            daemon.handle(std::move(call));
        }));
    TRY(write_pid_file(paths.pid_file, fmt::format("{} {}\n", ::getpid(), binary_build_id())));
    TRY(loop.add_signal(SIGTERM, [&daemon](const signalfd_siginfo&) { daemon.terminate(); }));
    TRY(loop.add_signal(SIGINT, [&daemon](const signalfd_siginfo&) { daemon.terminate(); }));
    LOG_INFO("locald {} daemon pid {} serving `{}` (build {})", base::kVersion, ::getpid(),
             paths.socket, binary_build_id());
    TRY(loop.run());
    server->close_all();
    (void)base::unlink_path(paths.socket);
    (void)base::unlink_path(paths.pid_file);
    manager.reset();
    LOG_INFO("daemon pid {} exiting", ::getpid());
    return 0;
}

}  // namespace

namespace {

std::string running_executable() {
    char buffer[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
    if (n <= 0) {
        return "/proc/self/exe";
    }
    std::string path(buffer, static_cast<size_t>(n));
    // The file was replaced since we started (a reinstall of the same build
    // keeps this daemon): the kernel appends " (deleted)"; the installed path
    // is what siblings and internal modes are run from.
    constexpr std::string_view kDeleted = " (deleted)";
    if (path.ends_with(kDeleted)) {
        path.resize(path.size() - kDeleted.size());
    }
    return path;
}

std::string sibling(const std::string& executable, std::string_view name) {
    size_t slash = executable.rfind('/');
    return (slash == std::string::npos ? std::string(".") : executable.substr(0, slash)) + "/" +
           std::string(name);
}

}  // namespace

DaemonCommand daemon_command() {
    std::string self = running_executable();
    std::string daemon = sibling(self, kDaemonExecutableName);
    DaemonCommand command;
    if (self != daemon && ::access(daemon.c_str(), X_OK) == 0) {
        command.path = daemon;
        command.argv = {kDaemonExecutableName};
        command.build_id = internal::build_id_of_file(daemon);
    } else {
        // "/proc/self/exe" keeps working if the file was replaced meanwhile.
        command.path = "/proc/self/exe";
        command.argv = {"locald", "daemon"};
        command.build_id = binary_build_id();
    }
    return command;
}

std::string locald_executable() {
    std::string self = running_executable();
    size_t slash = self.rfind('/');
    std::string_view base =
        slash == std::string::npos ? self : std::string_view(self).substr(slash + 1);
    if (base == kDaemonExecutableName) {
        return sibling(self, "locald");
    }
    return self;
}

base::Result<int> serve_daemon(const DaemonPaths& paths) {
    return serve(paths);
}

int run_daemon(const DaemonPaths& paths) {
    auto result = serve(paths);
    if (!result) {
        LOG_ERROR("daemon: {}", result.error().to_string());
        return result.error().kind() == base::ErrorKind::AlreadyExists ? 4 : 1;
    }
    return *result;
}

}  // namespace locald::daemon
