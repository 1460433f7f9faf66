#ifndef SLUICE_FRAMEWORK_CLOCK_H_
#define SLUICE_FRAMEWORK_CLOCK_H_

#include <chrono>

#include "absl/time/time.h"

namespace sluice {

// A point on a monotonic clock. The epoch is arbitrary; only differences mean
// anything (asyncio's loop.time()).
using MonotonicTime =
    std::chrono::time_point<std::chrono::steady_clock, std::chrono::nanoseconds>;

// `t + d`, saturating at the ends of MonotonicTime so that
// absl::InfiniteDuration() means "never" instead of overflowing.
MonotonicTime AddDuration(MonotonicTime t, absl::Duration d);

// `a - b` as an absl::Duration.
absl::Duration Difference(MonotonicTime a, MonotonicTime b);

// The time source of an EventLoop.
class Clock {
 public:
  virtual ~Clock() = default;

  virtual MonotonicTime Now() const = 0;

  // A virtual clock does not move while the loop waits; instead, a loop that
  // has nothing to do but wait for a timer moves the clock to that timer's
  // deadline at once (see VirtualClock).
  virtual bool IsVirtual() const { return false; }

  // Moves a virtual clock forward to `t`; never called on a real clock.
  virtual void AdvanceTo(MonotonicTime t);
};

// The process-wide clock on CLOCK_MONOTONIC (std::chrono::steady_clock).
Clock& SystemClock();

// Deterministic time for unit tests of timer-driven code, in the spirit of
// Twisted's task.Clock: time stands still until the test calls Advance, or
// until a running loop has only timers left to wait for, in which case the
// loop jumps to the earliest deadline. So `co_await loop.Sleep(absl::Hours(1))`
// completes instantly, in deadline order, with Time() reading one hour later.
//
// Meant for code whose only waits are timers (or the in-memory transport):
// with real sockets, a loop on a virtual clock would fire timeouts while the
// kernel is still working.
class VirtualClock final : public Clock {
 public:
  VirtualClock() = default;
  VirtualClock(const VirtualClock&) = delete;
  VirtualClock& operator=(const VirtualClock&) = delete;

  MonotonicTime Now() const override { return now_; }
  bool IsVirtual() const override { return true; }
  // Never moves backwards: an earlier `t` leaves the clock unchanged.
  void AdvanceTo(MonotonicTime t) override;

  // Moves the clock forward by `d` (negative durations are ignored). Timers
  // that became due run on the loop's next iteration, e.g. RunUntilIdle().
  void Advance(absl::Duration d);

 private:
  MonotonicTime now_{};
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_CLOCK_H_
