#include "framework/wait_queue.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;

class WaitQueueTest : public ::testing::Test {
 protected:
  WaitQueueTest()
      : loop_(EventLoop::Create(EventLoopOptions{.clock = &clock_}).value()),
        queue_(*loop_) {}

  // Waits once and notes "<name>: <status code>" when it resumes.
  Task<absl::Status> WaitAndNote(std::string name) {
    absl::Status woken = co_await queue_.Wait();
    notes_.push_back(name + ": " + absl::StatusCodeToString(woken.code()));
    co_return woken;
  }

  VirtualClock clock_;
  std::unique_ptr<EventLoop> loop_;
  WaitQueue queue_;
  std::vector<std::string> notes_;
};

TEST_F(WaitQueueTest, WakeAllResumesEveryWaiterInOrderFromTheLoop) {
  Future<absl::Status> a = Spawn(*loop_, WaitAndNote("a"));
  Future<absl::Status> b = Spawn(*loop_, WaitAndNote("b"));
  loop_->RunUntilIdle();
  queue_.WakeAll(absl::UnavailableError("gone"));
  EXPECT_TRUE(notes_.empty());  // Not inside WakeAll.
  EXPECT_TRUE(queue_.empty());
  loop_->RunUntilIdle();
  EXPECT_THAT(notes_, ElementsAre("a: UNAVAILABLE", "b: UNAVAILABLE"));
}

TEST_F(WaitQueueTest, AWokenWaiterCanWaitAgain) {
  auto twice = [this]() -> Task<absl::Status> {
    for (int i = 0; i < 2; ++i) {
      absl::Status woken = co_await queue_.Wait();
      if (!woken.ok()) co_return woken;
      notes_.push_back("woken");
    }
    co_return absl::OkStatus();
  };
  Future<absl::Status> done = Spawn(*loop_, twice());
  loop_->RunUntilIdle();
  queue_.WakeAll();
  loop_->RunUntilIdle();
  EXPECT_FALSE(queue_.empty());  // Waiting again, not woken twice.
  queue_.WakeAll();
  loop_->RunUntilIdle();
  EXPECT_THAT(notes_, ElementsAre("woken", "woken"));
  EXPECT_TRUE(done.Result().ok());
}

TEST_F(WaitQueueTest, CancellingAWaiterRemovesItFromTheQueue) {
  Future<absl::Status> a = Spawn(*loop_, WaitAndNote("a"));
  Future<absl::Status> b = Spawn(*loop_, WaitAndNote("b"));
  loop_->RunUntilIdle();
  a.Cancel();
  loop_->RunUntilIdle();
  EXPECT_THAT(notes_, ElementsAre("a: CANCELLED"));
  queue_.WakeAll();
  loop_->RunUntilIdle();
  EXPECT_THAT(notes_, ElementsAre("a: CANCELLED", "b: OK"));
}

TEST(WaitQueueLifetimeTest, DestroyingAWaitingCoroutineLeavesTheQueue) {
  std::unique_ptr<EventLoop> loop = EventLoop::Create().value();
  WaitQueue queue(*loop);
  auto wait = [&queue]() -> Task<absl::Status> { co_return co_await queue.Wait(); };
  Future<absl::Status> waiting = Spawn(*loop, wait());
  loop->RunUntilIdle();
  EXPECT_FALSE(queue.empty());
  loop.reset();  // Destroys the suspended coroutine, and its awaiter.
  EXPECT_TRUE(queue.empty());
}

}  // namespace
}  // namespace sluice
