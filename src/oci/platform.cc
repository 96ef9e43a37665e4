#include "oci/platform.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>

namespace locald::oci {

namespace {

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::optional<int> parse_int(std::string_view text) {
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

// Same platform for matching purposes: os/arch/variant after normalisation
// (os.version and os.features are not compared, as containerd's matcher on
// Linux does not).
bool same(const Platform& a, const Platform& b) {
    return a.os == b.os && a.architecture == b.architecture && a.variant == b.variant;
}

Platform with(const Platform& base, std::string architecture, std::string variant) {
    Platform out = base;
    out.architecture = std::move(architecture);
    out.variant = std::move(variant);
    return out;
}

// containerd platforms/compare.go platformVector: the platform itself, then
// every platform a binary built for it also runs on, best first.
std::vector<Platform> platform_vector(const Platform& platform) {
    std::vector<Platform> vector{platform};
    if (platform.architecture == "amd64") {
        auto version = parse_int(
            std::string_view(platform.variant).substr(platform.variant.starts_with("v") ? 1 : 0));
        if (version && *version > 1) {
            for (int v = *version - 1; v >= 1; --v) {
                vector.push_back(with(platform, "amd64", fmt::format("v{}", v)));
            }
        }
        auto more = platform_vector(with(platform, "386", ""));
        vector.insert(vector.end(), more.begin(), more.end());
    } else if (platform.architecture == "arm") {
        auto version = parse_int(
            std::string_view(platform.variant).substr(platform.variant.starts_with("v") ? 1 : 0));
        if (version && *version > 5) {
            for (int v = *version - 1; v >= 5; --v) {
                vector.push_back(with(platform, "arm", fmt::format("v{}", v)));
            }
        }
    } else if (platform.architecture == "arm64") {
        std::string variant = platform.variant.empty() ? "v8" : platform.variant;
        std::string_view digits =
            std::string_view(variant).substr(variant.starts_with("v") ? 1 : 0);
        int major = 8;
        int minor = 0;
        auto dot = digits.find('.');
        auto parsed_major = parse_int(digits.substr(0, dot));
        if (parsed_major) {
            major = *parsed_major;
            if (dot != std::string_view::npos) {
                minor = parse_int(digits.substr(dot + 1)).value_or(0);
            }
        }
        vector.clear();
        // arm64 v9.x runs v8.(x+5) code (containerd's mapping), then every
        // lower minor down to v8 itself.
        const int start_major = major;
        const int start_minor = minor;
        for (; major >= 8; --major) {
            for (; minor >= 0; --minor) {
                vector.push_back(with(
                    platform, "arm64",
                    minor == 0 ? fmt::format("v{}", major) : fmt::format("v{}.{}", major, minor)));
            }
            minor = major == 9 ? (start_major == 9 ? start_minor : 0) + 5 : 0;
        }
        auto more = platform_vector(with(platform, "arm", "v8"));
        vector.insert(vector.end(), more.begin(), more.end());
    }
    for (auto& entry : vector) {
        entry = normalize(entry);
    }
    return vector;
}

bool valid_component(std::string_view part) {
    if (part.empty()) {
        return false;
    }
    return std::all_of(part.begin(), part.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '-' || c == '.';
    });
}

}  // namespace

std::string Platform::str() const {
    if (variant.empty()) {
        return fmt::format("{}/{}", os, architecture);
    }
    return fmt::format("{}/{}/{}", os, architecture, variant);
}

Platform normalize(Platform platform) {
    platform.os = lower(std::move(platform.os));
    if (platform.os == "macos") {
        platform.os = "darwin";
    }
    std::string arch = lower(std::move(platform.architecture));
    std::string variant = lower(std::move(platform.variant));
    if (arch == "i386") {
        arch = "386";
        variant.clear();
    } else if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
        arch = "amd64";
        if (variant == "v1") {
            variant.clear();
        }
    } else if (arch == "aarch64" || arch == "arm64") {
        arch = "arm64";
        if (variant == "8" || variant == "v8" || variant == "v8.0") {
            variant.clear();
        } else if (variant == "9" || variant == "9.0" || variant == "v9.0") {
            variant = "v9";
        }
    } else if (arch == "armhf") {
        arch = "arm";
        variant = "v7";
    } else if (arch == "armel") {
        arch = "arm";
        variant = "v6";
    } else if (arch == "arm") {
        if (variant.empty() || variant == "7") {
            variant = "v7";
        } else if (variant == "5" || variant == "6" || variant == "8") {
            variant = "v" + variant;
        }
    }
    platform.architecture = std::move(arch);
    platform.variant = std::move(variant);
    return platform;
}

base::Result<Platform> parse_platform(std::string_view text) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
        auto slash = text.find('/', start);
        parts.push_back(
            text.substr(start, slash == std::string_view::npos ? slash : slash - start));
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    if (parts.size() < 2 || parts.size() > 3) {
        return base::invalid_argument(
            "invalid platform `{}`: expected `os/arch` or `os/arch/variant` (e.g. linux/arm64)",
            text);
    }
    static const char* const kNames[] = {"os", "architecture", "variant"};
    for (size_t i = 0; i < parts.size(); ++i) {
        if (!valid_component(parts[i])) {
            return base::invalid_argument(
                "invalid platform `{}`: the {} part `{}` must be non-empty [A-Za-z0-9_.-]", text,
                kNames[i], parts[i]);
        }
    }
    Platform platform;
    platform.os = std::string(parts[0]);
    platform.architecture = std::string(parts[1]);
    if (parts.size() == 3) {
        platform.variant = std::string(parts[2]);
    }
    return normalize(std::move(platform));
}

Platform host_platform() {
    Platform platform;
    platform.os = "linux";
    struct utsname name {};
    if (uname(&name) == 0) {
        platform.architecture = name.machine;
    } else {
        platform.architecture = "amd64";
    }
    std::string arch = lower(platform.architecture);
    if (arch == "armv7l" || arch == "armv6l" || arch == "armv5tel" || arch == "armv8l") {
        platform.architecture = "arm";
        platform.variant = std::string("v") + arch[4];
    } else if (arch == "aarch64" || arch == "arm64" || arch == "arm") {
        // Like containerd's cpuinfo.go: the "CPU architecture" line gives the variant.
        std::ifstream cpuinfo("/proc/cpuinfo");
        std::string line;
        while (std::getline(cpuinfo, line)) {
            if (line.starts_with("CPU architecture")) {
                auto colon = line.find(':');
                if (colon != std::string::npos) {
                    std::string value = line.substr(colon + 1);
                    value.erase(0, value.find_first_not_of(" \t"));
                    if (arch == "arm" || arch == "aarch64" || arch == "arm64") {
                        if (value == "AArch64" || value == "8") {
                            platform.variant = "v8";
                        } else if (value == "7") {
                            platform.variant = "v7";
                        } else if (value == "6") {
                            platform.variant = "v6";
                        }
                    }
                }
                break;
            }
        }
    }
    return normalize(std::move(platform));
}

PlatformMatcher::PlatformMatcher(Platform wanted)
    : m_wanted(normalize(std::move(wanted))), m_vector(platform_vector(m_wanted)) {}

std::optional<int> PlatformMatcher::rank(const Platform& candidate) const {
    Platform normalized = normalize(candidate);
    for (size_t i = 0; i < m_vector.size(); ++i) {
        if (same(m_vector[i], normalized)) {
            return static_cast<int>(i);
        }
    }
    return std::nullopt;
}

}  // namespace locald::oci
