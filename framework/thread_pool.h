#ifndef SLUICE_FRAMEWORK_THREAD_POOL_H_
#define SLUICE_FRAMEWORK_THREAD_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace sluice {

// A fixed set of worker threads for blocking calls the loop must not make
// itself (getaddrinfo, file reads): asyncio's default executor. Threads
// start on first use, with every signal blocked, so that a process-directed
// signal reaches the thread that handles it. Destruction waits for the work
// that is running and drops (destroys unrun) the work still queued, so a
// backlog of slow lookups cannot hold up the loop's end.
class ThreadPool {
 public:
  explicit ThreadPool(size_t threads) : max_threads_(threads) {}
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs `work` on a worker thread. Thread-safe.
  void Submit(absl::AnyInvocable<void()> work);

 private:
  void WorkerLoop();

  const size_t max_threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<absl::AnyInvocable<void()>> queue_;  // Guarded by mutex_.
  size_t idle_ = 0;                                // Guarded by mutex_.
  bool stopping_ = false;                          // Guarded by mutex_.
  std::vector<std::thread> threads_;               // Guarded by mutex_.
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_THREAD_POOL_H_
