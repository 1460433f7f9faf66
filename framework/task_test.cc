#include "framework/exceptions.h"
#include "framework/task.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TaskTest : public ::testing::Test {
 protected:
  TaskTest()
      : loop_(EventLoop::Create(EventLoopOptions{.clock = &clock_}).value()) {}

  absl::Duration Elapsed() const {
    return Difference(loop_->Time(), MonotonicTime{});
  }

  VirtualClock clock_;
  std::unique_ptr<EventLoop> loop_;
};

Task<absl::StatusOr<int>> Constant(int value) { co_return value; }

Task<absl::StatusOr<int>> Failing() {
  co_return absl::NotFoundError("no such thing");
}

Task<absl::StatusOr<int>> AddOne(Task<absl::StatusOr<int>> inner) {
  absl::StatusOr<int> value = co_await std::move(inner);
  if (!value.ok()) co_return value.status();
  co_return *value + 1;
}

TEST_F(TaskTest, ReturnsItsValue) {
  EXPECT_EQ(*loop_->RunUntilComplete(Constant(42)), 42);
}

TEST_F(TaskTest, ChainsPropagateValuesAndErrors) {
  EXPECT_EQ(*loop_->RunUntilComplete(AddOne(AddOne(Constant(1)))), 3);
  absl::StatusOr<int> failed = loop_->RunUntilComplete(AddOne(AddOne(Failing())));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(failed.status().message(), "no such thing");
}

#if SLUICE_HAS_EXCEPTIONS
Task<absl::Status> Throwing() {
  throw std::runtime_error("kaboom");
  co_return absl::OkStatus();
}

TEST_F(TaskTest, AnEscapingExceptionBecomesAnInternalError) {
  absl::Status status = loop_->RunUntilComplete(Throwing());
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("kaboom"));
}

#endif  // SLUICE_HAS_EXCEPTIONS

Task<absl::StatusOr<int>> Immediate(int i) { co_return i; }

Task<absl::StatusOr<long>> SumOfManyImmediateAwaits(int count) {
  long sum = 0;
  for (int i = 0; i < count; ++i) sum += *co_await Immediate(i);
  co_return sum;
}

TEST_F(TaskTest, SynchronousCompletionsDoNotGrowTheStack) {
  // Symmetric transfer: a million inline starts and returns would overflow
  // the stack if each nested a call.
  constexpr int kCount = 1000000;
  EXPECT_EQ(*loop_->RunUntilComplete(SumOfManyImmediateAwaits(kCount)),
            static_cast<long>(kCount) * (kCount - 1) / 2);
}

Task<absl::Status> SleepAndRecord(EventLoop& loop, absl::Duration d,
                                  std::vector<int>& order, int id) {
  absl::Status slept = co_await loop.Sleep(d);
  if (!slept.ok()) co_return slept;
  order.push_back(id);
  co_return absl::OkStatus();
}

TEST_F(TaskTest, SleepOnAVirtualClockIsInstantAndOrdered) {
  std::vector<int> order;
  Future<absl::Status> slow =
      Spawn(*loop_, SleepAndRecord(*loop_, absl::Hours(2), order, 2));
  Future<absl::Status> fast =
      Spawn(*loop_, SleepAndRecord(*loop_, absl::Hours(1), order, 1));
  EXPECT_TRUE(loop_->RunUntilComplete(slow).ok());
  EXPECT_TRUE(fast.IsDone());
  EXPECT_THAT(order, ElementsAre(1, 2));
  EXPECT_EQ(Elapsed(), absl::Hours(2));
}

TEST_F(TaskTest, SpawnedTaskStartsOnTheNextIteration) {
  bool started = false;
  auto body = [](bool& started) -> Task<absl::Status> {
    started = true;
    co_return absl::OkStatus();
  };
  Future<absl::Status> future = Spawn(*loop_, body(started));
  EXPECT_FALSE(started);
  loop_->RunUntilIdle();
  EXPECT_TRUE(started);
  EXPECT_TRUE(future.IsDone());
}

TEST_F(TaskTest, CancellingASleepingTaskResumesItWithCancelled) {
  std::vector<int> order;
  Future<absl::Status> sleeper =
      Spawn(*loop_, SleepAndRecord(*loop_, absl::Hours(1), order, 1));
  loop_->CallLater(absl::Seconds(1), [&] { EXPECT_TRUE(sleeper.Cancel()); });
  absl::Status result = loop_->RunUntilComplete(sleeper);
  EXPECT_EQ(result.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(Elapsed(), absl::Seconds(1));  // It did not sleep on.
  EXPECT_FALSE(sleeper.Cancel());          // Already done.
}

TEST_F(TaskTest, CancelledBeforeItStartsTheBodyNeverRuns) {
  bool ran = false;
  auto body = [](bool& ran) -> Task<absl::Status> {
    ran = true;
    co_return absl::OkStatus();
  };
  Future<absl::Status> future = Spawn(*loop_, body(ran));
  future.Cancel();
  EXPECT_EQ(loop_->RunUntilComplete(future).code(),
            absl::StatusCode::kCancelled);
  EXPECT_FALSE(ran);
}

Task<absl::Status> NestedSleeper(EventLoop& loop, int depth,
                                 std::vector<std::string>& log) {
  if (depth == 0) {
    absl::Status slept = co_await loop.Sleep(absl::Hours(1));
    log.push_back("innermost: " + std::string(absl::StatusCodeToString(
                                      slept.code())));
    co_return slept;
  }
  absl::Status inner = co_await NestedSleeper(loop, depth - 1, log);
  log.push_back("level " + std::to_string(depth));
  co_return inner;
}

TEST_F(TaskTest, CancellationReachesTheInnermostAwait) {
  std::vector<std::string> log;
  Future<absl::Status> outer = Spawn(*loop_, NestedSleeper(*loop_, 3, log));
  loop_->CallLater(absl::Minutes(1), [&] { outer.Cancel(); });
  EXPECT_EQ(loop_->RunUntilComplete(outer).code(),
            absl::StatusCode::kCancelled);
  EXPECT_THAT(log, ElementsAre("innermost: CANCELLED", "level 1", "level 2",
                               "level 3"));
  EXPECT_EQ(Elapsed(), absl::Minutes(1));
}

Task<absl::Status> IgnoresCancellationOnce(EventLoop& loop, int& sleeps) {
  absl::Status first = co_await loop.Sleep(absl::Hours(1));
  ++sleeps;
  // The request was delivered once; the task may go on (asyncio semantics).
  absl::Status second = co_await loop.Sleep(absl::Seconds(1));
  ++sleeps;
  co_return second.ok() ? first : second;
}

TEST_F(TaskTest, CancellationIsDeliveredOnce) {
  int sleeps = 0;
  Future<absl::Status> task = Spawn(*loop_, IgnoresCancellationOnce(*loop_, sleeps));
  loop_->CallLater(absl::Seconds(10), [&] { task.Cancel(); });
  EXPECT_EQ(loop_->RunUntilComplete(task).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(sleeps, 2);
  EXPECT_EQ(Elapsed(), absl::Seconds(11));
}

Task<absl::StatusOr<int>> AwaitFuture(Future<absl::StatusOr<int>> future) {
  co_return co_await future;
}

TEST_F(TaskTest, CancellingATaskCancelsTheFutureItAwaits) {
  Future<absl::StatusOr<int>> never(*loop_);
  Future<absl::StatusOr<int>> waiter = Spawn(*loop_, AwaitFuture(never));
  loop_->RunUntilIdle();
  waiter.Cancel();
  absl::StatusOr<int> result = loop_->RunUntilComplete(waiter);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  ASSERT_TRUE(never.IsDone());
  EXPECT_EQ(never.Result().status().code(), absl::StatusCode::kCancelled);
}

TEST_F(TaskTest, ManyAwaitersOfOneFutureAllResumeInOrder) {
  Future<absl::StatusOr<int>> shared(*loop_);
  std::vector<int> order;
  std::vector<Future<absl::Status>> waiters;
  auto wait = [](Future<absl::StatusOr<int>> f, std::vector<int>& order,
                 int id) -> Task<absl::Status> {
    absl::StatusOr<int> value = co_await f;
    if (!value.ok()) co_return value.status();
    order.push_back(id * 100 + *value);
    co_return absl::OkStatus();
  };
  for (int id = 1; id <= 10; ++id) {
    waiters.push_back(Spawn(*loop_, wait(shared, order, id)));
  }
  loop_->RunUntilIdle();
  EXPECT_TRUE(order.empty());
  EXPECT_TRUE(shared.SetResult(7));
  EXPECT_FALSE(shared.SetResult(8));  // One-shot.
  EXPECT_TRUE(order.empty());         // Never resumed inside SetResult.
  loop_->RunUntilIdle();
  EXPECT_THAT(order, ElementsAre(107, 207, 307, 407, 507, 607, 707, 807, 907,
                                 1007));
}

TEST_F(TaskTest, DoneCallbacksRunOnALaterIteration) {
  Future<absl::StatusOr<std::string>> future(*loop_);
  std::vector<std::string> seen;
  future.AddDoneCallback([&](const absl::StatusOr<std::string>& value) {
    seen.push_back("early " + *value);
  });
  future.SetResult(std::string("x"));
  EXPECT_TRUE(seen.empty());
  loop_->RunUntilIdle();
  future.AddDoneCallback([&](const absl::StatusOr<std::string>& value) {
    seen.push_back("late " + *value);
  });
  EXPECT_EQ(seen.size(), 1u);
  loop_->RunUntilIdle();
  EXPECT_THAT(seen, ElementsAre("early x", "late x"));
}

TEST_F(TaskTest, CancellingAPlainFutureCompletesIt) {
  Future<absl::Status> future(*loop_);
  EXPECT_TRUE(future.Cancel());
  EXPECT_TRUE(future.IsDone());
  EXPECT_EQ(future.Result().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(future.Cancel());
}

Task<absl::StatusOr<std::unique_ptr<int>>> MakeUnique(
    Future<absl::StatusOr<std::unique_ptr<int>>> f) {
  co_return co_await std::move(f);
}

TEST_F(TaskTest, MoveOnlyResultsCanBeMovedOut) {
  Future<absl::StatusOr<std::unique_ptr<int>>> future(*loop_);
  future.SetResult(std::make_unique<int>(5));
  auto result = loop_->RunUntilComplete(MakeUnique(future));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(**result, 5);
}

TEST_F(TaskTest, RunUntilCompleteReportsAStoppedLoop) {
  Future<absl::Status> never(*loop_);
  loop_->CallSoon([&] { loop_->Stop(); });
  EXPECT_EQ(loop_->RunUntilComplete(never).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(TaskTest, DestroyingTheLoopDestroysSuspendedTasks) {
  struct Witness {
    explicit Witness(int& destroyed) : destroyed(destroyed) {}
    ~Witness() { ++destroyed; }
    int& destroyed;
  };
  int destroyed = 0;
  auto body = [](EventLoop& loop, int& destroyed) -> Task<absl::Status> {
    Witness witness(destroyed);
    co_return co_await loop.Sleep(absl::Hours(1));
  };
  auto future_body = [](Future<absl::Status> f, int& destroyed)
      -> Task<absl::Status> {
    Witness witness(destroyed);
    co_return co_await f;
  };
  Future<absl::Status> pending(*loop_);
  Spawn(*loop_, body(*loop_, destroyed));
  Spawn(*loop_, future_body(pending, destroyed));
  loop_->RunOnce(absl::ZeroDuration());
  Spawn(*loop_, body(*loop_, destroyed));  // Never started.
  loop_.reset();
  EXPECT_EQ(destroyed, 2);  // The unstarted one had no Witness yet.
}

TEST_F(TaskTest, AwaitingAnEmptyTaskIsAnError) {
  auto body = []() -> Task<absl::Status> {
    Task<absl::Status> empty;
    co_return co_await std::move(empty);
  };
  EXPECT_EQ(loop_->RunUntilComplete(body()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(loop_->RunUntilComplete(Task<absl::Status>()).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
