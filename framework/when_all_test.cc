#include "framework/when_all.h"

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;

class WhenAllTest : public ::testing::Test {
 protected:
  WhenAllTest()
      : loop_(EventLoop::Create(EventLoopOptions{.clock = &clock_}).value()) {}

  VirtualClock clock_;
  std::unique_ptr<EventLoop> loop_;
};

Task<absl::StatusOr<int>> SleepThenReturn(EventLoop& loop, absl::Duration d,
                                          absl::StatusOr<int> value) {
  absl::Status slept = co_await loop.Sleep(d);
  if (!slept.ok()) co_return slept;
  co_return value;
}

TEST_F(WhenAllTest, ResultsComeInTaskOrderWhateverTheFinishingOrder) {
  std::vector<Task<absl::StatusOr<int>>> tasks;
  tasks.push_back(SleepThenReturn(*loop_, absl::Seconds(3), 1));
  tasks.push_back(SleepThenReturn(*loop_, absl::Seconds(1),
                                  absl::UnavailableError("down")));
  tasks.push_back(SleepThenReturn(*loop_, absl::Seconds(2), 3));
  auto all = loop_->RunUntilComplete(WhenAll(*loop_, std::move(tasks)));
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ(*(*all)[0], 1);
  EXPECT_EQ((*all)[1].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(*(*all)[2], 3);
  // Concurrent: the whole took as long as the longest.
  EXPECT_EQ(Difference(loop_->Time(), MonotonicTime{}), absl::Seconds(3));
}

TEST_F(WhenAllTest, NoTasksCompletesAtOnce) {
  auto all = loop_->RunUntilComplete(
      WhenAll(*loop_, std::vector<Task<absl::Status>>()));
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

TEST_F(WhenAllTest, CancellingCancelsEveryChild) {
  std::vector<Task<absl::StatusOr<int>>> tasks;
  for (int i = 0; i < 5; ++i) {
    tasks.push_back(SleepThenReturn(*loop_, absl::Hours(1 + i), i));
  }
  auto all = WhenAll(*loop_, std::move(tasks));
  loop_->CallLater(absl::Seconds(1), [&] { all.Cancel(); });
  auto result = loop_->RunUntilComplete(all);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  // Every child wound down within the same instant.
  EXPECT_EQ(Difference(loop_->Time(), MonotonicTime{}), absl::Seconds(1));
  loop_->Run();  // Nothing left: no child still sleeps.
  EXPECT_EQ(Difference(loop_->Time(), MonotonicTime{}), absl::Seconds(1));
}

}  // namespace
}  // namespace sluice
