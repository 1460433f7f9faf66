#include "framework/timeout.h"

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

class TimeoutTest : public ::testing::Test {
 protected:
  TimeoutTest()
      : loop_(EventLoop::Create(EventLoopOptions{.clock = &clock_}).value()) {}

  absl::Duration Elapsed() const {
    return Difference(loop_->Time(), MonotonicTime{});
  }

  VirtualClock clock_;
  std::unique_ptr<EventLoop> loop_;
};

Task<absl::StatusOr<int>> SleepThenReturn(EventLoop& loop, absl::Duration d,
                                          int value) {
  absl::Status slept = co_await loop.Sleep(d);
  if (!slept.ok()) co_return slept;
  co_return value;
}

TEST_F(TimeoutTest, FinishingInTimeReturnsTheResult) {
  auto result = loop_->RunUntilComplete(WithTimeout(
      *loop_, SleepThenReturn(*loop_, absl::Seconds(1), 7), absl::Seconds(2)));
  EXPECT_EQ(*result, 7);
  EXPECT_EQ(Elapsed(), absl::Seconds(1));
  loop_->Run();  // The timeout's timer is gone: time does not jump to 2 s.
  EXPECT_EQ(Elapsed(), absl::Seconds(1));
}

TEST_F(TimeoutTest, OverrunningIsDeadlineExceededAtTheDeadline) {
  auto result = loop_->RunUntilComplete(
      WithTimeout(*loop_, SleepThenReturn(*loop_, absl::Seconds(10), 7),
                  absl::Milliseconds(1500)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status().message(), HasSubstr("1.5s"));
  EXPECT_EQ(Elapsed(), absl::Milliseconds(1500));
  loop_->Run();  // The inner task was cancelled, not left sleeping.
  EXPECT_EQ(Elapsed(), absl::Milliseconds(1500));
}

TEST_F(TimeoutTest, DestroyingTheWrapperCancelsTheTaskItRuns) {
  // The wrapper's frame is destroyed while it waits (its owner went away):
  // the task it spawned must not run on, unowned.
  Task<absl::StatusOr<int>> wrapped = WithTimeout(
      *loop_, SleepThenReturn(*loop_, absl::Hours(1), 7), absl::Hours(2));
  auto frame = wrapped.Release();
  frame.resume();  // Runs up to its wait for the spawned task.
  loop_->RunUntilIdle();
  frame.destroy();
  loop_->Run();  // Returns once nothing is left: no hour-long sleep.
  EXPECT_LT(Elapsed(), absl::Hours(1));
}

TEST_F(TimeoutTest, WrapsAnyAwaitable) {
  absl::Status slept = loop_->RunUntilComplete(
      WithTimeout(*loop_, loop_->Sleep(absl::Seconds(5)), absl::Seconds(1)));
  EXPECT_EQ(slept.code(), absl::StatusCode::kDeadlineExceeded);

  Future<absl::StatusOr<int>> never(*loop_);
  auto result = loop_->RunUntilComplete(
      WithTimeout(*loop_, never, absl::Seconds(1)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  // As asyncio.wait_for does, the awaited future was cancelled.
  EXPECT_EQ(never.Result().status().code(), absl::StatusCode::kCancelled);
}

TEST_F(TimeoutTest, CancellingTheWrapperIsCancelledNotTimedOut) {
  Future<absl::StatusOr<int>> wrapped = Spawn(
      *loop_, WithTimeout(*loop_, SleepThenReturn(*loop_, absl::Hours(1), 7),
                          absl::Minutes(1)));
  loop_->CallLater(absl::Seconds(1), [&] { wrapped.Cancel(); });
  auto result = loop_->RunUntilComplete(wrapped);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(Elapsed(), absl::Seconds(1));
}

}  // namespace
}  // namespace sluice
