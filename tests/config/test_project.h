// A throwaway project directory for the config tests.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace locald::config::testing {

class TestProject {
public:
    TestProject() {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/config-test-XXXXXX";
        char* made = ::mkdtemp(pattern.data());
        EXPECT_NE(made, nullptr);
        m_dir = std::filesystem::canonical(pattern).string();
    }
    ~TestProject() {
        std::error_code ignored;
        std::filesystem::remove_all(m_dir, ignored);
    }
    TestProject(const TestProject&) = delete;
    TestProject& operator=(const TestProject&) = delete;

    const std::string& dir() const { return m_dir; }
    std::string path(const std::string& name) const { return m_dir + "/" + name; }

    void write(const std::string& name, const std::string& contents) const {
        std::filesystem::create_directories(std::filesystem::path(path(name)).parent_path());
        std::ofstream out(path(name), std::ios::binary | std::ios::trunc);
        out << contents;
    }

private:
    std::string m_dir;
};

}  // namespace locald::config::testing
