#include "base/error.h"

#include <gtest/gtest.h>

#include <memory>

namespace locald::base {
namespace {

Result<int> parse_positive(int value) {
    if (value <= 0) {
        return invalid_argument("expected a positive number, got {}", value);
    }
    return value;
}

Result<int> doubled(int value) {
    int parsed = TRY(parse_positive(value));
    return parsed * 2;
}

Result<void> check(int value) {
    TRY(parse_positive(value).context("checking input"));
    return ok();
}

TEST(ErrorTest, TryPropagatesValueAndError) {
    ASSERT_TRUE(doubled(4));
    EXPECT_EQ(doubled(4).value(), 8);
    auto failed = doubled(-1);
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().kind(), ErrorKind::InvalidArgument);
    EXPECT_EQ(failed.error().message(), "expected a positive number, got -1");
}

TEST(ErrorTest, ContextPrefixesMessage) {
    auto failed = check(0);
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().message(), "checking input: expected a positive number, got 0");
    EXPECT_TRUE(check(3));
}

TEST(ErrorTest, ErrnoMapsToKind) {
    errno = ENOENT;
    Error error = errno_error("opening `{}`", "/nope");
    EXPECT_EQ(error.kind(), ErrorKind::NotFound);
    EXPECT_EQ(error.errno_value(), ENOENT);
    EXPECT_EQ(error.to_string(), "opening `/nope`: No such file or directory");
    EXPECT_EQ(kind_from_errno(EACCES), ErrorKind::PermissionDenied);
    EXPECT_EQ(kind_from_errno(EEXIST), ErrorKind::AlreadyExists);
}

TEST(ErrorTest, MoveOnlyValues) {
    auto make = []() -> Result<std::unique_ptr<int>> { return std::make_unique<int>(7); };
    auto use = [&]() -> Result<int> {
        auto pointer = TRY(make());
        return *pointer;
    };
    EXPECT_EQ(use().value(), 7);
}

}  // namespace
}  // namespace locald::base
