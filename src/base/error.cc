#include "base/error.h"

#include <cstring>

namespace locald::base {

std::string_view to_string(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::InvalidArgument:
            return "invalid argument";
        case ErrorKind::NotFound:
            return "not found";
        case ErrorKind::AlreadyExists:
            return "already exists";
        case ErrorKind::PermissionDenied:
            return "permission denied";
        case ErrorKind::FailedPrecondition:
            return "failed precondition";
        case ErrorKind::Unavailable:
            return "unavailable";
        case ErrorKind::Unauthenticated:
            return "unauthenticated";
        case ErrorKind::DataLoss:
            return "data loss";
        case ErrorKind::Unsupported:
            return "unsupported";
        case ErrorKind::Cancelled:
            return "cancelled";
        case ErrorKind::DeadlineExceeded:
            return "deadline exceeded";
        case ErrorKind::Internal:
            return "internal";
    }
    return "unknown";
}

ErrorKind kind_from_errno(int err) {
    switch (err) {
        case ENOENT:
        case ESRCH:
        case ENXIO:
            return ErrorKind::NotFound;
        case EEXIST:
        case ENOTEMPTY:
            return ErrorKind::AlreadyExists;
        case EPERM:
        case EACCES:
        case EROFS:
            return ErrorKind::PermissionDenied;
        case EINVAL:
        case ENAMETOOLONG:
        case ELOOP:
        case EXDEV:
        case ENOTDIR:
        case EISDIR:
            return ErrorKind::InvalidArgument;
        case EAGAIN:
        case EBUSY:
        case ECONNREFUSED:
        case ECONNRESET:
        case EPIPE:
        case ENETUNREACH:
        case EHOSTUNREACH:
        case EADDRINUSE:
            return ErrorKind::Unavailable;
        case ETIMEDOUT:
            return ErrorKind::DeadlineExceeded;
        case ENOSYS:
        case EOPNOTSUPP:
        case EAFNOSUPPORT:
            return ErrorKind::Unsupported;
        case EINTR:
        case ECANCELED:
            return ErrorKind::Cancelled;
        case EIO:
        case EBADMSG:
            return ErrorKind::DataLoss;
        default:
            return ErrorKind::Internal;
    }
}

std::string Error::to_string() const {
    if (m_errno == 0) {
        return m_message;
    }
    return fmt::format("{}: {}", m_message, std::strerror(m_errno));
}

}  // namespace locald::base
