#include "framework/thread_pool.h"

#include <pthread.h>
#include <signal.h>

#include <utility>

#include "absl/cleanup/cleanup.h"

namespace sluice {

ThreadPool::~ThreadPool() {
  std::vector<std::thread> threads;
  std::deque<absl::AnyInvocable<void()>> unstarted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
    unstarted.swap(queue_);
  }
  wake_.notify_all();
  // Destroyed outside the lock: a destructor may submit again (and is then
  // dropped too).
  unstarted.clear();
  for (std::thread& thread : threads) thread.join();
}

void ThreadPool::Submit(absl::AnyInvocable<void()> work) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopping_) {
      lock.unlock();
      return;  // `work` is destroyed unrun, as queued work is.
    }
    queue_.push_back(std::move(work));
    // A new thread only when none is idle: blocking calls (a slow DNS
    // server) must not hold up the others.
    if (idle_ == 0 && threads_.size() < max_threads_) {
      // The thread inherits the mask in force when it is created.
      sigset_t all;
      sigset_t previous;
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &previous);
      absl::Cleanup restore = [&previous] {
        pthread_sigmask(SIG_SETMASK, &previous, nullptr);
      };
      threads_.emplace_back([this] { WorkerLoop(); });
      return;
    }
  }
  wake_.notify_one();
}

void ThreadPool::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    ++idle_;
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // Stopping, and nothing left to do.
    absl::AnyInvocable<void()> work = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    work();
    work = nullptr;  // Destroyed outside the lock too.
    lock.lock();
  }
}

}  // namespace sluice
