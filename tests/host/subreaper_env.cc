// The host tests play the daemon: like it, they must be the child subreaper so
// double-forked grandchildren are re-parented to them and can be reaped.
#include <gtest/gtest.h>

#include "host/process_tree.h"

namespace {

class SubreaperEnvironment : public ::testing::Environment {
public:
    void SetUp() override { ASSERT_TRUE(locald::host::become_subreaper().has_value()); }
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new SubreaperEnvironment);

}  // namespace
