#include "framework/thread_pool.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "gtest/gtest.h"

namespace sluice {
namespace {

// A one-shot event with a bounded wait.
class Latch {
 public:
  void Release() {
    std::lock_guard<std::mutex> lock(mutex_);
    released_ = true;
    changed_.notify_all();
  }
  bool WaitFor(std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, limit, [this] { return released_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool released_ = false;
};

TEST(ThreadPoolTest, RunsSubmittedWork) {
  Latch done;
  ThreadPool pool(2);
  std::atomic<int> runs{0};
  for (int i = 0; i < 10; ++i) {
    pool.Submit([&] {
      if (++runs == 10) done.Release();
    });
  }
  ASSERT_TRUE(done.WaitFor(std::chrono::seconds(10)));
  EXPECT_EQ(runs.load(), 10);
}

TEST(ThreadPoolTest, WorkersBlockEverySignal) {
  // A process-directed signal must reach the thread that handles it (the
  // loop's signalfd), never a worker where it takes its default action.
  Latch done;
  sigset_t worker_mask;
  sigemptyset(&worker_mask);
  {
    ThreadPool pool(1);
    pool.Submit([&] {
      pthread_sigmask(SIG_BLOCK, nullptr, &worker_mask);
      done.Release();
    });
    ASSERT_TRUE(done.WaitFor(std::chrono::seconds(10)));
  }
  EXPECT_EQ(sigismember(&worker_mask, SIGTERM), 1);
  EXPECT_EQ(sigismember(&worker_mask, SIGINT), 1);
  EXPECT_EQ(sigismember(&worker_mask, SIGPIPE), 1);
  // The creating thread's own mask is untouched.
  sigset_t own_mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &own_mask);
  EXPECT_EQ(sigismember(&own_mask, SIGTERM), 0);
}

TEST(ThreadPoolTest, DestructionDropsWorkThatHasNotStarted) {
  auto pool = std::make_unique<ThreadPool>(1);
  Latch started;
  Latch dropped;
  bool released_by_drop = false;
  std::atomic<bool> queued_ran{false};
  // Occupies the only worker until the queued item is dropped (or 10 s).
  pool->Submit([&] {
    started.Release();
    released_by_drop = dropped.WaitFor(std::chrono::seconds(10));
  });
  // Releases the latch when destroyed without running.
  struct ReleaseOnDestruction {
    explicit ReleaseOnDestruction(Latch& latch) : latch(&latch) {}
    ReleaseOnDestruction(ReleaseOnDestruction&& other) : latch(other.latch) {
      other.latch = nullptr;
    }
    ~ReleaseOnDestruction() {
      if (latch != nullptr) latch->Release();
    }
    Latch* latch;
  };
  pool->Submit([&queued_ran, guard = ReleaseOnDestruction(dropped)] {
    queued_ran = true;
  });
  ASSERT_TRUE(started.WaitFor(std::chrono::seconds(10)));
  pool.reset();  // Waits for the running item only.
  EXPECT_TRUE(released_by_drop);
  EXPECT_FALSE(queued_ran.load());
}

}  // namespace
}  // namespace sluice
