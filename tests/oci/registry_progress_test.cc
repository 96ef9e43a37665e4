// The progress renderers: JSON lines for the daemon, one line per layer for
// logs, and TTY bars (checked for content, not for timing).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "base/json.h"
#include "oci/progress.h"

namespace locald::oci {
namespace {

struct MemoryFile {
    char* data = nullptr;
    size_t size = 0;
    FILE* file = open_memstream(&data, &size);
    ~MemoryFile() {
        if (file) {
            std::fclose(file);
        }
        std::free(data);
    }
    std::string text() {
        std::fflush(file);
        return std::string(data, size);
    }
};

const std::string kDigest = "sha256:" + std::string(64, 'a');

TEST(RegistryProgress, JsonEventsAreOneObjectPerLine) {
    MemoryFile out;
    JsonProgress sink(out.file);
    sink.on_event({ProgressKind::LayerStart, "pull", "r:1", kDigest, 100, 0});
    sink.on_event({ProgressKind::LayerBytes, "pull", "r:1", kDigest, 100, 40});
    sink.on_event({ProgressKind::LayerRetry, "pull", "r:1", kDigest, 100, 40, "cut \"here\""});
    std::string text = out.text();
    std::vector<base::Json> events;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        auto json = base::Json::parse(text.substr(start, end - start));
        ASSERT_TRUE(json) << text;
        events.push_back(json.release_value());
        start = end + 1;
    }
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].get_string("event").value(), "layer-start");
    EXPECT_EQ(events[1].get_int("offset").value(), 40);
    EXPECT_EQ(events[1].get_int("size").value(), 100);
    EXPECT_EQ(events[2].get_string("message").value(), "cut \"here\"");
    EXPECT_EQ(events[2].get_string("digest").value(), kDigest);
}

TEST(RegistryProgress, LinePerLayer) {
    MemoryFile out;
    LineProgress sink(out.file);
    sink.on_event({ProgressKind::LayerStart, "pull", "r:1", kDigest, 2000000, 0});
    sink.on_event({ProgressKind::LayerBytes, "pull", "r:1", kDigest, 2000000, 1000});
    sink.on_event({ProgressKind::LayerDone, "pull", "r:1", kDigest, 2000000, 2000000});
    std::string text = out.text();
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_NE(text.find("aaaaaaaaaaaa: downloaded 2.0 MB in"), std::string::npos) << text;
}

TEST(RegistryProgress, TtyBarsShowBytesAndState) {
    MemoryFile out;
    TtyProgress sink(out.file);
    sink.on_event({ProgressKind::LayerStart, "pull", "r:1", kDigest, 4000000, 0});
    sink.on_event({ProgressKind::LayerDone, "pull", "r:1", kDigest, 4000000, 4000000});
    std::string text = out.text();
    EXPECT_NE(text.find("aaaaaaaaaaaa [=============================="), std::string::npos) << text;
    EXPECT_NE(text.find("done"), std::string::npos);
    EXPECT_NE(text.find("4.0 MB / 4.0 MB"), std::string::npos) << text;
    EXPECT_EQ(human_bytes(999), "999 B");
    EXPECT_EQ(human_bytes(1500000000), "1.5 GB");
}

}  // namespace
}  // namespace locald::oci
