#include "framework/exceptions.h"
#include "framework/event_loop.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<EventLoop> NewLoop(Clock* clock = nullptr) {
  auto loop = EventLoop::Create(EventLoopOptions{.clock = clock});
  EXPECT_TRUE(loop.ok()) << loop.status();
  return std::move(loop).value();
}

// Fails the test and stops the loop if it is still running after `limit`:
// the bound on every test that waits for an event.
void StopAfter(EventLoop& loop, absl::Duration limit) {
  loop.CallLater(limit, [&loop, limit] {
    ADD_FAILURE() << "loop still running after " << limit;
    loop.Stop();
  });
}

int CountOpenFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (readdir(dir) != nullptr) ++count;
  closedir(dir);
  return count;
}

TEST(EventLoopTest, CallSoonRunsInFifoOrder) {
  auto loop = NewLoop();
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    loop->CallSoon([&order, i] { order.push_back(i); });
  }
  loop->RunUntilIdle();
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
}

TEST(EventLoopTest, CallbacksScheduledDuringAnIterationRunInTheNext) {
  auto loop = NewLoop();
  std::vector<std::string> order;
  loop->CallSoon([&] {
    order.push_back("a");
    loop->CallSoon([&] { order.push_back("c"); });
  });
  loop->CallSoon([&] { order.push_back("b"); });
  loop->RunOnce(absl::ZeroDuration());
  EXPECT_THAT(order, ElementsAre("a", "b"));
  loop->RunOnce(absl::ZeroDuration());
  EXPECT_THAT(order, ElementsAre("a", "b", "c"));
}

TEST(EventLoopTest, CancelledCallSoonNeverRuns) {
  auto loop = NewLoop();
  std::vector<int> order;
  loop->CallSoon([&] { order.push_back(1); });
  Handle second = loop->CallSoon([&] { order.push_back(2); });
  loop->CallSoon([&] { order.push_back(3); });
  second.Cancel();
  second.Cancel();  // Idempotent.
  loop->RunUntilIdle();
  EXPECT_THAT(order, ElementsAre(1, 3));
}

TEST(EventLoopTest, CancellingFromAnEarlierCallbackOfTheSameIteration) {
  auto loop = NewLoop();
  bool ran = false;
  Handle later;
  loop->CallSoon([&] { later.Cancel(); });
  later = loop->CallSoon([&] { ran = true; });
  loop->RunUntilIdle();
  EXPECT_FALSE(ran);
}

TEST(EventLoopTest, CancelAfterRunIsHarmless) {
  auto loop = NewLoop();
  int runs = 0;
  Handle handle = loop->CallSoon([&] { ++runs; });
  loop->RunUntilIdle();
  handle.Cancel();
  loop->CallSoon([&] { ++runs; });
  handle.Cancel();
  loop->RunUntilIdle();
  EXPECT_EQ(runs, 2);
  Handle empty;
  empty.Cancel();
}

TEST(EventLoopTest, TimersFireInDeadlineOrder) {
  VirtualClock clock;
  auto loop = NewLoop(&clock);
  std::vector<int> order;
  loop->CallLater(absl::Milliseconds(30), [&] { order.push_back(30); });
  loop->CallLater(absl::Milliseconds(10), [&] { order.push_back(10); });
  loop->CallLater(absl::Milliseconds(20), [&] { order.push_back(20); });
  loop->Run();
  EXPECT_THAT(order, ElementsAre(10, 20, 30));
  EXPECT_EQ(Difference(loop->Time(), MonotonicTime{}), absl::Milliseconds(30));
}

TEST(EventLoopTest, EqualDeadlinesFireInSchedulingOrder) {
  VirtualClock clock;
  auto loop = NewLoop(&clock);
  std::vector<int> order;
  MonotonicTime deadline = AddDuration(loop->Time(), absl::Seconds(1));
  for (int i = 0; i < 50; ++i) {
    loop->CallAt(deadline, [&order, i] { order.push_back(i); });
  }
  loop->Run();
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);
}

TEST(EventLoopTest, CancelledTimersNeverFireAndTheRestKeepOrder) {
  VirtualClock clock;
  auto loop = NewLoop(&clock);
  std::vector<int> fired;
  std::vector<Handle> handles;
  // Enough cancelled timers to trigger a heap compaction.
  for (int i = 0; i < 1000; ++i) {
    handles.push_back(loop->CallLater(absl::Milliseconds(1000 - i),
                                      [&fired, i] { fired.push_back(i); }));
  }
  for (int i = 0; i < 1000; ++i) {
    if (i % 10 != 0) handles[i].Cancel();
  }
  loop->Run();
  ASSERT_EQ(fired.size(), 100u);
  for (size_t k = 1; k < fired.size(); ++k) {
    EXPECT_GT(fired[k - 1], fired[k]);  // Later index = earlier deadline.
    EXPECT_EQ(fired[k] % 10, 0);
  }
}

TEST(EventLoopTest, TimerCancelledByAnEarlierDueTimerDoesNotFire) {
  VirtualClock clock;
  auto loop = NewLoop(&clock);
  bool second_fired = false;
  Handle second;
  loop->CallLater(absl::Seconds(1), [&] { second.Cancel(); });
  second = loop->CallLater(absl::Seconds(1), [&] { second_fired = true; });
  loop->Run();
  EXPECT_FALSE(second_fired);
}

TEST(EventLoopTest, ZeroDelayTimerFromATimerRunsNextIteration) {
  VirtualClock clock;
  auto loop = NewLoop(&clock);
  std::vector<std::string> order;
  loop->CallLater(absl::ZeroDuration(), [&] {
    order.push_back("first");
    loop->CallLater(absl::ZeroDuration(), [&] { order.push_back("third"); });
    loop->CallSoon([&] { order.push_back("second"); });
  });
  loop->RunOnce(absl::ZeroDuration());
  EXPECT_THAT(order, ElementsAre("first"));
  loop->RunUntilIdle();
  EXPECT_THAT(order, ElementsAre("first", "second", "third"));
}

TEST(EventLoopTest, RealTimerDoesNotFireEarly) {
  auto loop = NewLoop();
  MonotonicTime start = loop->Time();
  MonotonicTime fired_at;
  loop->CallLater(absl::Milliseconds(20), [&] { fired_at = loop->Time(); });
  loop->Run();
  EXPECT_GE(Difference(fired_at, start), absl::Milliseconds(20));
}

TEST(EventLoopTest, VirtualClockAdvanceAndRunUntilIdle) {
  VirtualClock clock;
  auto loop = NewLoop(&clock);
  int fired = 0;
  loop->CallLater(absl::Seconds(5), [&] { ++fired; });
  loop->CallLater(absl::Seconds(10), [&] { ++fired; });
  loop->RunUntilIdle();
  EXPECT_EQ(fired, 0);  // RunUntilIdle never moves virtual time.
  clock.Advance(absl::Seconds(5));
  loop->RunUntilIdle();
  EXPECT_EQ(fired, 1);
  clock.Advance(absl::Seconds(4));
  loop->RunUntilIdle();
  EXPECT_EQ(fired, 1);
  clock.Advance(absl::Seconds(1));
  loop->RunUntilIdle();
  EXPECT_EQ(fired, 2);
}

TEST(EventLoopTest, InfiniteDelayNeverOverflows) {
  VirtualClock clock;
  auto loop = NewLoop(&clock);
  bool fired = false;
  Handle never = loop->CallLater(absl::InfiniteDuration(), [&] { fired = true; });
  clock.Advance(absl::Hours(24 * 365 * 100));
  loop->RunUntilIdle();
  EXPECT_FALSE(fired);
  never.Cancel();
}

TEST(EventLoopTest, CallSoonThreadsafeWakesABlockedLoop) {
  auto loop = NewLoop();
  StopAfter(*loop, absl::Seconds(30));
  std::atomic<bool> loop_blocked{false};
  // The helper thread waits until the loop has had a chance to block in
  // epoll_wait with nothing but the safety timer pending.
  loop->CallSoon([&] { loop_blocked = true; });
  std::thread waker([&] {
    while (!loop_blocked) std::this_thread::yield();
    loop->CallSoonThreadsafe([&] { loop->Stop(); });
  });
  MonotonicTime start = loop->Time();
  loop->RunForever();
  waker.join();
  EXPECT_LT(Difference(loop->Time(), start), absl::Seconds(30));
}

TEST(EventLoopTest, CallSoonThreadsafeFromManyThreadsKeepsPerThreadOrder) {
  auto loop = NewLoop();
  StopAfter(*loop, absl::Seconds(60));
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  std::vector<std::vector<int>> seen(kThreads);
  int total = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        loop->CallSoonThreadsafe([&, t, i] {
          seen[t].push_back(i);
          if (++total == kThreads * kPerThread) loop->Stop();
        });
      }
    });
  }
  loop->RunForever();
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(total, kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) ASSERT_EQ(seen[t][i], i);
  }
}

TEST(EventLoopTest, StopFinishesTheCurrentIteration) {
  auto loop = NewLoop();
  std::vector<std::string> order;
  loop->CallSoon([&] {
    order.push_back("stop");
    loop->Stop();
    loop->CallSoon([&] { order.push_back("next iteration"); });
  });
  loop->CallSoon([&] { order.push_back("same iteration"); });
  loop->RunForever();
  EXPECT_THAT(order, ElementsAre("stop", "same iteration"));
  EXPECT_FALSE(loop->IsRunning());
  // The loop can run again and picks up where it stopped.
  loop->RunUntilIdle();
  EXPECT_THAT(order, ElementsAre("stop", "same iteration", "next iteration"));
}

TEST(EventLoopTest, StopBeforeRunRunsOneIteration) {
  auto loop = NewLoop();
  int runs = 0;
  loop->CallSoon([&] {
    ++runs;
    loop->CallSoon([&] { ++runs; });
  });
  loop->Stop();
  loop->RunForever();
  EXPECT_EQ(runs, 1);
}

TEST(EventLoopTest, RunReturnsWhenNothingIsLeft) {
  VirtualClock clock;
  auto loop = NewLoop(&clock);
  int runs = 0;
  loop->CallLater(absl::Seconds(1), [&] {
    ++runs;
    loop->CallSoon([&] { ++runs; });
  });
  loop->Run();
  EXPECT_EQ(runs, 2);
}

TEST(EventLoopTest, RunUntilStopsWhenDone) {
  VirtualClock clock;
  auto loop = NewLoop(&clock);
  int ticks = 0;
  std::function<void()> tick = [&] {
    ++ticks;
    loop->CallLater(absl::Seconds(1), tick);
  };
  tick();
  EXPECT_TRUE(loop->RunUntil([&] { return ticks >= 5; }));
  EXPECT_EQ(ticks, 5);
}

TEST(EventLoopTest, NestedRunIsRefusedAndReported) {
  auto loop = NewLoop();
  std::vector<LoopError> errors;
  loop->SetErrorHandler([&](const LoopError& e) { errors.push_back(e); });
  loop->CallSoon([&] { loop->RunForever(); });
  loop->RunUntilIdle();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].status.code(), absl::StatusCode::kFailedPrecondition);
}

#if SLUICE_HAS_EXCEPTIONS
TEST(EventLoopTest, ThrowingCallbackIsReportedAndTheLoopGoesOn) {
  auto loop = NewLoop();
  std::vector<LoopError> errors;
  loop->SetErrorHandler([&](const LoopError& e) { errors.push_back(e); });
  bool after = false;
  loop->CallSoon([] { throw std::runtime_error("boom"); });
  loop->CallLater(absl::ZeroDuration(),
                  [] { throw std::runtime_error("timer boom"); });
  loop->CallSoon([&] { after = true; });
  loop->Run();
  EXPECT_TRUE(after);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_THAT(errors[0].message, HasSubstr("callback"));
  EXPECT_THAT(errors[0].status.message(), HasSubstr("boom"));
  EXPECT_EQ(errors[0].status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(errors[1].message, HasSubstr("timer"));
}
#endif  // SLUICE_HAS_EXCEPTIONS

class Pipe {
 public:
  Pipe() { EXPECT_EQ(pipe2(fds_, O_NONBLOCK | O_CLOEXEC), 0); }
  ~Pipe() {
    close(fds_[0]);
    close(fds_[1]);
  }
  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }

 private:
  int fds_[2];
};

TEST(EventLoopTest, ReaderRunsWhileReadableAndCanRemoveItself) {
  auto loop = NewLoop();
  StopAfter(*loop, absl::Seconds(30));
  Pipe pipe;
  std::string received;
  ASSERT_TRUE(loop->AddReader(pipe.read_end(), [&] {
                    char buf[16];
                    ssize_t n = read(pipe.read_end(), buf, sizeof(buf));
                    ASSERT_GT(n, 0);
                    received.append(buf, n);
                    if (received.size() >= 6) {
                      EXPECT_TRUE(loop->RemoveReader(pipe.read_end()));
                    }
                  }).ok());
  ASSERT_EQ(write(pipe.write_end(), "abc", 3), 3);
  loop->RunOnce(absl::Seconds(10));
  EXPECT_EQ(received, "abc");
  ASSERT_EQ(write(pipe.write_end(), "def", 3), 3);
  EXPECT_TRUE(loop->RunUntil([&] { return received.size() >= 6; }));
  EXPECT_EQ(received, "abcdef");
  EXPECT_FALSE(loop->RemoveReader(pipe.read_end()));
}

TEST(EventLoopTest, ReaderAndWriterOnOneFd) {
  auto loop = NewLoop();
  StopAfter(*loop, absl::Seconds(30));
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  int writable = 0;
  int readable = 0;
  ASSERT_TRUE(loop->AddWriter(sv[0], [&] {
                    ++writable;
                    ASSERT_EQ(write(sv[0], "x", 1), 1);
                    loop->RemoveWriter(sv[0]);
                  }).ok());
  ASSERT_TRUE(loop->AddReader(sv[1], [&] {
                    char c;
                    ASSERT_EQ(read(sv[1], &c, 1), 1);
                    ++readable;
                    loop->RemoveReader(sv[1]);
                  }).ok());
  EXPECT_TRUE(loop->RunUntil([&] { return writable + readable == 2; }));
  loop->RunUntilIdle();
  EXPECT_EQ(writable, 1);
  EXPECT_EQ(readable, 1);
  close(sv[0]);
  close(sv[1]);
}

TEST(EventLoopTest, AddReaderRejectsBadFds) {
  auto loop = NewLoop();
  EXPECT_EQ(loop->AddReader(-1, [] {}).code(),
            absl::StatusCode::kInvalidArgument);
  int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(file, 0);
  // epoll refuses regular files.
  EXPECT_EQ(loop->AddReader(file, [] {}).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(loop->RemoveReader(file));
  close(file);
}

class CountingHandler : public FdHandler {
 public:
  explicit CountingHandler(std::function<void()> on_ready = nullptr)
      : on_ready_(std::move(on_ready)) {}
  void OnFdReady(uint32_t) override {
    ++calls;
    if (on_ready_) on_ready_();
  }
  int calls = 0;

 private:
  std::function<void()> on_ready_;
};

TEST(EventLoopTest, UnwatchedFdIsNotDispatchedLaterInTheSameBatch) {
  auto loop = NewLoop();
  Pipe a;
  Pipe b;
  // Both fds are ready in the same epoll batch; whichever handler runs
  // first unwatches the other, which then must not be called.
  CountingHandler on_a([&] { loop->UnwatchFd(b.read_end()); });
  CountingHandler on_b([&] { loop->UnwatchFd(a.read_end()); });
  ASSERT_TRUE(loop->WatchFd(a.read_end(), on_a, kFdReadable).ok());
  ASSERT_TRUE(loop->WatchFd(b.read_end(), on_b, kFdReadable).ok());
  ASSERT_EQ(write(a.write_end(), "x", 1), 1);
  ASSERT_EQ(write(b.write_end(), "x", 1), 1);
  loop->RunOnce(absl::Seconds(10));
  EXPECT_EQ(on_a.calls + on_b.calls, 1);
  loop->UnwatchFd(a.read_end());
  loop->UnwatchFd(b.read_end());
}

TEST(EventLoopTest, WatchFdTwiceIsRefused) {
  auto loop = NewLoop();
  Pipe pipe;
  CountingHandler handler;
  ASSERT_TRUE(loop->WatchFd(pipe.read_end(), handler, kFdReadable).ok());
  EXPECT_EQ(loop->WatchFd(pipe.read_end(), handler, kFdReadable).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(loop->AddReader(pipe.read_end(), [] {}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(loop->SetFdInterest(pipe.write_end(), kFdWritable).code(),
            absl::StatusCode::kNotFound);
  loop->UnwatchFd(pipe.read_end());
}

TEST(EventLoopTest, HangUpWithoutInterestDoesNotSpin) {
  auto loop = NewLoop();
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  CountingHandler handler;
  ASSERT_TRUE(loop->WatchFd(fds[0], handler, kFdReadable).ok());
  ASSERT_TRUE(loop->SetFdInterest(fds[0], kFdNone).ok());
  close(fds[1]);  // The read end now reports EPOLLHUP.
  for (int i = 0; i < 3; ++i) loop->RunOnce(absl::ZeroDuration());
  EXPECT_EQ(handler.calls, 0);
  ASSERT_TRUE(loop->SetFdInterest(fds[0], kFdReadable).ok());
  loop->RunOnce(absl::Seconds(10));
  EXPECT_EQ(handler.calls, 1);  // The hang-up is reported as readable.
  loop->UnwatchFd(fds[0]);
  close(fds[0]);
}

TEST(EventLoopTest, SignalsAreDeliveredAsCallbacks) {
  auto loop = NewLoop();
  StopAfter(*loop, absl::Seconds(30));
  int usr1 = 0;
  int usr2 = 0;
  ASSERT_TRUE(loop->AddSignalHandler(SIGUSR1, [&] {
                    // Standard signals do not queue: the second is raised
                    // only after the first was read.
                    if (++usr1 == 1) {
                      raise(SIGUSR1);
                    } else {
                      loop->Stop();
                    }
                  }).ok());
  ASSERT_TRUE(loop->AddSignalHandler(SIGUSR2, [&] { ++usr2; }).ok());
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  EXPECT_EQ(sigismember(&mask, SIGUSR1), 1);
  raise(SIGUSR2);
  raise(SIGUSR1);
  loop->RunForever();
  EXPECT_EQ(usr1, 2);
  EXPECT_EQ(usr2, 1);
  EXPECT_TRUE(loop->RemoveSignalHandler(SIGUSR1));
  EXPECT_TRUE(loop->RemoveSignalHandler(SIGUSR2));
  EXPECT_FALSE(loop->RemoveSignalHandler(SIGUSR2));
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  EXPECT_EQ(sigismember(&mask, SIGUSR1), 0);  // The mask is restored.
}

TEST(EventLoopTest, UncatchableSignalsAreRejected) {
  auto loop = NewLoop();
  EXPECT_EQ(loop->AddSignalHandler(SIGKILL, [] {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loop->AddSignalHandler(0, [] {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loop->AddSignalHandler(10000, [] {}).code(),
            absl::StatusCode::kInvalidArgument);
}

// Sets its flag when destroyed.
struct Tracked {
  explicit Tracked(bool& destroyed) : destroyed(destroyed) {}
  ~Tracked() { destroyed = true; }
  bool& destroyed;
};

TEST(EventLoopTest, DeleteSoonDefersToTheEndOfTheIteration) {
  auto loop = NewLoop();
  bool destroyed = false;
  bool destroyed_during_iteration = true;
  loop->CallSoon([&] {
    loop->DeleteSoon(std::make_unique<Tracked>(destroyed));
    destroyed_during_iteration = destroyed;
  });
  loop->RunOnce(absl::ZeroDuration());
  EXPECT_FALSE(destroyed_during_iteration);
  EXPECT_TRUE(destroyed);
}

TEST(EventLoopTest, DeletionsDeferredByADestructorAlsoRun) {
  auto loop = NewLoop();
  // Enough deferrals from one destructor to make the list reallocate while
  // it is being emptied.
  constexpr int kChildren = 100;
  int destroyed = 0;
  struct Child {
    explicit Child(int& destroyed) : destroyed(destroyed) {}
    ~Child() { ++destroyed; }
    int& destroyed;
  };
  struct Parent {
    Parent(EventLoop& loop, int& destroyed) : loop(loop), destroyed(destroyed) {}
    ~Parent() {
      ++destroyed;
      for (int i = 0; i < kChildren; ++i) {
        loop.DeleteSoon(std::make_unique<Child>(destroyed));
      }
    }
    EventLoop& loop;
    int& destroyed;
  };
  loop->CallSoon(
      [&] { loop->DeleteSoon(std::make_unique<Parent>(*loop, destroyed)); });
  loop->RunOnce(absl::ZeroDuration());
  EXPECT_EQ(destroyed, kChildren + 1);
}

TEST(EventLoopTest, RunUntilDoneInTheReadyCallbacksStillRunsDeletions) {
  auto loop = NewLoop();
  bool destroyed = false;
  bool released = false;
  loop->CallSoon([&] {
    loop->DeleteSoon(std::make_unique<Tracked>(destroyed));
    released = true;
  });
  EXPECT_TRUE(loop->RunUntil([&] { return released; }));
  // The iteration that released it ended, so it is gone; a later RunUntil
  // waiting for that on an idle loop would otherwise never return.
  EXPECT_TRUE(destroyed);
}

TEST(EventLoopTest, ThreadsafeHandleFailsOnceTheLoopIsGone) {
  auto loop = NewLoop();
  ThreadsafeHandle handle = loop->GetThreadsafeHandle();
  bool ran = false;
  ASSERT_TRUE(handle.CallSoon([&ran] { ran = true; }).ok());
  loop->RunUntilIdle();
  loop->RunOnce(absl::ZeroDuration());
  EXPECT_TRUE(ran);
  loop.reset();
  bool destroyed = false;
  struct SetOnDestruction {
    explicit SetOnDestruction(bool& flag) : flag(&flag) {}
    SetOnDestruction(SetOnDestruction&& other) : flag(other.flag) {
      other.flag = nullptr;
    }
    ~SetOnDestruction() {
      if (flag != nullptr) *flag = true;
    }
    bool* flag;
  };
  absl::Status posted =
      handle.CallSoon([guard = SetOnDestruction(destroyed)] {});
  EXPECT_EQ(posted.code(), absl::StatusCode::kFailedPrecondition) << posted;
  EXPECT_THAT(posted.message(), HasSubstr("closed"));
  EXPECT_TRUE(destroyed);  // The refused callback is not kept.
}

TEST(EventLoopTest, QueuedThreadsafeCallbackMayPostFromItsDestructor) {
  auto loop = NewLoop();
  ThreadsafeHandle handle = loop->GetThreadsafeHandle();
  absl::Status posted_from_destructor;
  struct PostOnDestruction {
    PostOnDestruction(ThreadsafeHandle handle, absl::Status& result)
        : handle(std::move(handle)), result(&result) {}
    PostOnDestruction(PostOnDestruction&& other)
        : handle(other.handle), result(other.result) {
      other.result = nullptr;
    }
    ~PostOnDestruction() {
      if (result != nullptr) *result = handle.CallSoon([] {});
    }
    ThreadsafeHandle handle;
    absl::Status* result;
  };
  ASSERT_TRUE(
      handle
          .CallSoon([guard = PostOnDestruction(handle, posted_from_destructor)] {})
          .ok());
  // Destroyed with the callback still queued: its destructor posts again,
  // which must fail rather than deadlock on the queue's lock.
  loop.reset();
  EXPECT_EQ(posted_from_destructor.code(),
            absl::StatusCode::kFailedPrecondition);
}

// Posts race with the loop's destruction by design: every post is either
// accepted or refused, and TSAN (which CI runs this under) checks that the
// two sides synchronise.
TEST(EventLoopTest, ThreadsPostingWhileTheLoopIsDestroyed) {
  auto loop = NewLoop();
  ThreadsafeHandle handle = loop->GetThreadsafeHandle();
  std::atomic<int> accepted{0};
  std::atomic<int> refused{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, handle] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 2000; ++i) {
        if (handle.CallSoon([] {}).ok()) {
          ++accepted;
        } else {
          ++refused;
        }
      }
    });
  }
  go = true;
  // Destroyed once posts are flowing, while they go on.
  while (accepted.load() == 0) std::this_thread::yield();
  loop.reset();
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(accepted + refused, 4 * 2000);
  EXPECT_GT(accepted.load(), 0);
}

TEST(EventLoopTest, DestroyingTheLoopLeaksNoFds) {
  int before = CountOpenFds();
  {
    auto loop = NewLoop();
    Pipe pipe;
    ASSERT_TRUE(loop->AddReader(pipe.read_end(), [] {}).ok());
    ASSERT_TRUE(loop->AddSignalHandler(SIGUSR1, [] {}).ok());
    loop->CallSoonThreadsafe([] {});
    loop->CallLater(absl::Hours(1), [] {});
    loop->RunOnce(absl::ZeroDuration());
  }
  EXPECT_EQ(CountOpenFds(), before);
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  EXPECT_EQ(sigismember(&mask, SIGUSR1), 0);
}

}  // namespace
}  // namespace sluice
