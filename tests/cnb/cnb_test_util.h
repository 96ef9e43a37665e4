// tests/cnb/cnb_test_util.h — small file helpers for the build/launch tests.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace locald::cnb::testing {

namespace fs = std::filesystem;

inline std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void write_text(const std::string& path, const std::string& text, mode_t mode = 0644) {
    fs::create_directories(fs::path(path).parent_path());
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
    }
    ::chmod(path.c_str(), mode);
}

// A temporary directory removed at the end of the test (files written by
// another mapped uid are the tests' own business).
class ScratchDir {
public:
    ScratchDir() {
        char tmpl[] = "/tmp/cnb-build-test-XXXXXX";
        if (::mkdtemp(tmpl) != nullptr) {
            m_path = tmpl;
        }
    }
    ~ScratchDir() {
        std::error_code ec;
        if (!m_path.empty()) {
            fs::remove_all(m_path, ec);
        }
    }
    const std::string& path() const { return m_path; }
    std::string operator/(const std::string& rel) const { return m_path + "/" + rel; }

private:
    std::string m_path;
};

}  // namespace locald::cnb::testing
