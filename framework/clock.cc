#include "framework/clock.h"

#include <cstdint>
#include <cstdlib>

namespace sluice {

MonotonicTime AddDuration(MonotonicTime t, absl::Duration d) {
  // Saturate instead of overflowing int64 nanoseconds; absl::Duration's
  // range is wide enough to compute the bounds.
  const absl::Duration base = absl::Nanoseconds(t.time_since_epoch().count());
  if (d >= absl::Nanoseconds(INT64_MAX) - base) return MonotonicTime::max();
  if (d <= absl::Nanoseconds(INT64_MIN) - base) return MonotonicTime::min();
  return t + std::chrono::nanoseconds(absl::ToInt64Nanoseconds(d));
}

absl::Duration Difference(MonotonicTime a, MonotonicTime b) {
  return absl::Nanoseconds(a.time_since_epoch().count()) -
         absl::Nanoseconds(b.time_since_epoch().count());
}

void Clock::AdvanceTo(MonotonicTime) {
  // Only a virtual clock can be moved; the loop never asks a real one.
  std::abort();
}

namespace {

class SteadyClock final : public Clock {
 public:
  MonotonicTime Now() const override {
    return std::chrono::time_point_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now());
  }
};

}  // namespace

Clock& SystemClock() {
  static SteadyClock* const clock = new SteadyClock();
  return *clock;
}

void VirtualClock::AdvanceTo(MonotonicTime t) {
  if (t > now_) now_ = t;
}

void VirtualClock::Advance(absl::Duration d) {
  AdvanceTo(AddDuration(now_, d));
}

}  // namespace sluice
