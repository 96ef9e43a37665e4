#include "host/service_state.h"

#include <string.h>

#include <fmt/format.h>

namespace locald::host {

std::string_view to_string(ServiceState state) {
    switch (state) {
        case ServiceState::Pending:
            return "pending";
        case ServiceState::Starting:
            return "starting";
        case ServiceState::Ready:
            return "ready";
        case ServiceState::Running:
            return "running";
        case ServiceState::Stopping:
            return "stopping";
        case ServiceState::Stopped:
            return "stopped";
        case ServiceState::Exited:
            return "exited";
        case ServiceState::Failed:
            return "failed";
    }
    return "?";
}

bool is_up(ServiceState state) {
    return state == ServiceState::Starting || state == ServiceState::Ready ||
           state == ServiceState::Running;
}

std::string ExitInfo::describe() const {
    if (signal != 0) {
        const char* abbrev = sigabbrev_np(signal);
        return abbrev ? fmt::format("killed by SIG{}", abbrev)
                      : fmt::format("killed by signal {}", signal);
    }
    return fmt::format("exited with code {}", exit_code);
}

}  // namespace locald::host
