#include "framework/clock.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(ClockTest, AddDurationAddsAndSaturates) {
  MonotonicTime now = SystemClock().Now();
  EXPECT_EQ(Difference(AddDuration(now, absl::Seconds(2)), now),
            absl::Seconds(2));
  EXPECT_EQ(Difference(AddDuration(now, -absl::Seconds(2)), now),
            -absl::Seconds(2));
  EXPECT_EQ(AddDuration(now, absl::InfiniteDuration()), MonotonicTime::max());
  EXPECT_EQ(AddDuration(now, -absl::InfiniteDuration()), MonotonicTime::min());
  EXPECT_EQ(AddDuration(MonotonicTime{}, absl::Hours(1) * 1e7),
            MonotonicTime::max());
}

TEST(ClockTest, SystemClockIsMonotonic) {
  MonotonicTime a = SystemClock().Now();
  MonotonicTime b = SystemClock().Now();
  EXPECT_LE(a, b);
  EXPECT_FALSE(SystemClock().IsVirtual());
}

TEST(ClockTest, VirtualClockMovesOnlyForward) {
  VirtualClock clock;
  EXPECT_TRUE(clock.IsVirtual());
  MonotonicTime start = clock.Now();
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(Difference(clock.Now(), start), absl::Seconds(3));
  clock.Advance(-absl::Seconds(1));
  clock.AdvanceTo(start);
  EXPECT_EQ(Difference(clock.Now(), start), absl::Seconds(3));
}

}  // namespace
}  // namespace sluice
