#pragma once

// Lower-case hex encoding of bytes. Kept apart from sha256 so that code which
// only needs hex (temporary file names, the daemon) does not pull libcrypto
// into an executable: locald-daemon links with --as-needed and maps only what
// its objects reference.

#include <cstddef>
#include <string>

namespace locald::base {

// Lower-case hex of arbitrary bytes.
std::string to_hex(const void* data, size_t size);

}  // namespace locald::base
