// oci/platform.h — platforms (os/arch/variant), containerd-compatible
// normalisation and matching.
//
// Contract: normalize() follows containerd `platforms.Normalize`
// (x86_64 → amd64, aarch64 → arm64, arm64/v8 → arm64, armhf → arm/v7, arm
// without variant → arm/v7, i386 → 386, …). PlatformMatcher follows
// containerd's `Only()` vector: amd64/vN accepts vN…v1 (""), then 386;
// arm/vN accepts vN…v5; arm64/vN accepts the lower arm64 versions, then
// arm/v8…v5. rank() orders candidates best first.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace locald::oci {

struct Platform {
    std::string os;            // "linux"
    std::string architecture;  // "amd64"
    std::string variant;       // "v7", "" when none
    std::string os_version;    // Windows only; kept for round trips
    std::vector<std::string> os_features;

    // `os/arch[/variant]`
    std::string str() const;
    friend bool operator==(const Platform&, const Platform&) = default;
};

// containerd `platforms.Normalize` (also lowercases os/arch).
Platform normalize(Platform platform);

// Parses `--platform` values: `os/arch[/variant]`, `arch` alone is not
// accepted (locald always wants the os). Result is normalised.
base::Result<Platform> parse_platform(std::string_view text);

// The platform of this machine (uname + /proc/cpuinfo for arm variants),
// normalised.
Platform host_platform();

class PlatformMatcher {
public:
    explicit PlatformMatcher(Platform wanted);
    const Platform& wanted() const { return m_wanted; }

    bool match(const Platform& candidate) const { return rank(candidate).has_value(); }
    // Position of `candidate` in the compatibility vector (0 = exact); nullopt
    // when it does not run here. Candidates are normalised first.
    std::optional<int> rank(const Platform& candidate) const;

private:
    Platform m_wanted;
    std::vector<Platform> m_vector;
};

}  // namespace locald::oci
