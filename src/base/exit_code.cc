#include "base/exit_code.h"

namespace locald::base {

int exit_code_for(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::InvalidArgument:
        case ErrorKind::NotFound:
        case ErrorKind::AlreadyExists:
        case ErrorKind::DataLoss:
        case ErrorKind::Unsupported:
            return kExitBadInput;
        case ErrorKind::Unavailable:
        case ErrorKind::DeadlineExceeded:
            return kExitUnavailable;
        case ErrorKind::Cancelled:
            return kExitCancelled;
        case ErrorKind::Internal:
            return kExitInternal;
        case ErrorKind::PermissionDenied:
        case ErrorKind::Unauthenticated:
        case ErrorKind::FailedPrecondition:
            return kExitFailure;
    }
    return kExitInternal;
}

}  // namespace locald::base
