#ifndef SLUICE_FRAMEWORK_EVENT_LOOP_H_
#define SLUICE_FRAMEWORK_EVENT_LOOP_H_

#include <sys/types.h>

#include <coroutine>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/cancellation.h"
#include "framework/clock.h"
#include "framework/thread_pool.h"

namespace sluice {

class EventLoop;
template <class Interface, class P>
class TransportCore;

namespace internal {
// Spawn's access to the loop's ownership of coroutine frames (task.h).
struct CoroutineOwnership {
  static void Adopt(EventLoop& loop, std::coroutine_handle<> handle);
  static void Release(EventLoop& loop, std::coroutine_handle<> handle);
};
}  // namespace internal

// A callback scheduled on the loop. Invoked at most once.
using Callback = absl::AnyInvocable<void()>;

// A callback that the loop may invoke many times (fd readiness, signals).
using RepeatingCallback = absl::AnyInvocable<void()>;

// A reference to a callback scheduled with CallSoon, CallLater or CallAt, to
// cancel it before it runs (asyncio's Handle / TimerHandle). Cheap to copy.
// A default-constructed Handle refers to nothing. Must not be used after its
// loop is destroyed.
class Handle {
 public:
  Handle() = default;

  // Prevents the callback from running. No-op if it already ran or was
  // cancelled. The callback object is destroyed no later than when the loop
  // would have run it.
  void Cancel();

 private:
  friend class EventLoop;
  Handle(EventLoop* loop, uint64_t id, bool is_timer)
      : loop_(loop), id_(id), is_timer_(is_timer) {}

  EventLoop* loop_ = nullptr;
  uint64_t id_ = 0;
  bool is_timer_ = false;
};

// What EventLoop::ReportError hands to the error handler: asyncio's
// call_exception_handler context, typed.
struct LoopError {
  // What failed, e.g. "exception in callback" or
  // "protocol PauseWriting() failed".
  std::string message;
  // The error itself.
  absl::Status status;
};

using ErrorHandler = absl::AnyInvocable<void(const LoopError&)>;

// Readiness interest for EventLoop::WatchFd, a bit set.
enum FdInterest : uint32_t {
  kFdNone = 0,
  kFdReadable = 1,
  kFdWritable = 2,
};

// Receives readiness of an fd registered with EventLoop::WatchFd; the
// low-level path that transports use (one object per fd, no allocation per
// event).
class FdHandler {
 public:
  // `ready` has kFdReadable and/or kFdWritable set for each registered
  // direction that is ready; errors and hang-ups are reported as readiness
  // of every registered direction, so the next read or write sees them.
  virtual void OnFdReady(uint32_t ready) = 0;

 protected:
  ~FdHandler() = default;
};

// An object whose lifetime the loop manages, such as a live transport: the
// loop destroys it when it is released, or when the loop is destroyed.
class LoopOwned {
 public:
  virtual ~LoopOwned() = default;
};

namespace event_loop_internal {
struct ThreadsafeQueue;
}  // namespace event_loop_internal

// Posts callbacks to a loop from other threads, and may outlive the loop
// (asyncio raises "Event loop is closed" in that case; this returns it).
// Copyable and thread-safe; from EventLoop::GetThreadsafeHandle.
class ThreadsafeHandle {
 public:
  // Schedules `callback` on the loop like CallSoon and wakes the loop if it
  // is waiting. kFailedPrecondition once the loop is destroyed (or being
  // destroyed): `callback` is then destroyed here, unrun. Never blocks on
  // the loop.
  absl::Status CallSoon(absl::AnyInvocable<void()> callback) const;

 private:
  friend class EventLoop;
  explicit ThreadsafeHandle(
      std::shared_ptr<event_loop_internal::ThreadsafeQueue> queue)
      : queue_(std::move(queue)) {}

  // Shared by the loop and every handle: a thread that posts after the
  // loop's end finds it closed, not freed, and its eventfd still open.
  std::shared_ptr<event_loop_internal::ThreadsafeQueue> queue_;
};

struct EventLoopOptions {
  // The loop's time source; must outlive the loop. nullptr: SystemClock().
  Clock* clock = nullptr;
};

// A single-threaded event loop on epoll, in the shape of asyncio's: a FIFO of
// ready callbacks, timers on a monotonic clock, fd readiness, signals through
// signalfd and a thread-safe wake-up through eventfd.
//
// Every method is loop-affine (call it from the thread that runs the loop)
// except CallSoonThreadsafe, the one cross-thread entry point.
//
// One iteration (RunOnce) runs, in order: the ready callbacks that were queued
// before it started, a wait for events (none if callbacks are ready), the
// I/O callbacks of fds found ready, then the timers that are due, then the
// deferred deletions. Callbacks scheduled with CallSoon during an iteration
// run in the next one; a zero-delay timer scheduled from a ready or I/O
// callback runs in the same iteration's timer phase.
// A callback that throws is reported to the error handler and the loop goes
// on.
class EventLoop {
 public:
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create(
      EventLoopOptions options = {});

  // Destroys the coroutines the loop runs (Spawn), drops pending callbacks
  // without running them, restores signal masks and closes the loop's fds.
  ~EventLoop();

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The loop's clock reading.
  MonotonicTime Time() const { return clock_->Now(); }
  Clock& clock() const { return *clock_; }

  // Schedules `callback` to run on the next iteration, after every callback
  // scheduled before it (FIFO).
  Handle CallSoon(Callback callback);

  // Schedules `callback` at `deadline` (CallAt) or after `delay` (CallLater;
  // zero or negative: as soon as possible). Timers run in deadline order;
  // equal deadlines in the order they were scheduled.
  Handle CallAt(MonotonicTime deadline, Callback callback);
  Handle CallLater(absl::Duration delay, Callback callback);

  // Schedules `callback` like CallSoon, from any thread, and wakes the loop
  // if it is blocked waiting for events. The loop must outlive the call: a
  // thread that may outlive the loop posts through GetThreadsafeHandle().
  void CallSoonThreadsafe(Callback callback);
  // A handle to post from threads that may outlive the loop.
  ThreadsafeHandle GetThreadsafeHandle() const {
    return ThreadsafeHandle(threadsafe_);
  }

  // asyncio's add_reader/add_writer: `callback` runs on every iteration in
  // which `fd` is readable (writable) until removed. Replaces an earlier
  // callback for the same fd and direction. kInvalidArgument for a negative
  // fd; kAlreadyExists if the fd is registered through WatchFd; epoll's own
  // error otherwise (kPermissionDenied for a regular file).
  absl::Status AddReader(int fd, RepeatingCallback callback);
  absl::Status AddWriter(int fd, RepeatingCallback callback);
  // Returns whether a callback was registered. Safe from inside the callback.
  bool RemoveReader(int fd);
  bool RemoveWriter(int fd);

  // The allocation-free path for transports: `handler` receives readiness of
  // `fd` for `interest` until UnwatchFd. The handler must stay alive until
  // UnwatchFd returns; after that it is never called again, even for events
  // already collected in the current iteration.
  absl::Status WatchFd(int fd, FdHandler& handler, uint32_t interest);
  absl::Status SetFdInterest(int fd, uint32_t interest);
  void UnwatchFd(int fd);

  // Runs `callback` on the loop each time signal `signo` arrives (signalfd).
  // The signal is blocked in the calling thread while a handler is
  // installed; threads started afterwards inherit that mask, so install
  // handlers before starting threads. kInvalidArgument for a signal that
  // cannot be caught (SIGKILL, SIGSTOP) or is out of range.
  absl::Status AddSignalHandler(int signo, RepeatingCallback callback);
  // Returns whether a handler was installed; restores the signal's mask.
  bool RemoveSignalHandler(int signo);

  // Runs iterations until Stop() is called.
  void RunForever();
  // Runs iterations until Stop() is called or nothing is left that could
  // produce work: no ready callbacks, no timers, no watched fds and no
  // signal handlers (libuv's uv_run).
  void Run();
  // Runs iterations without blocking until no callback is ready and no timer
  // is due. Never moves a virtual clock. For tests.
  void RunUntilIdle();
  // Runs iterations until `done()` returns true or Stop() is called. Returns
  // whether `done()` became true.
  bool RunUntil(absl::FunctionRef<bool()> done);
  // Spawns `awaitable` (a Task or a Future), runs the loop until it
  // completes and returns its result; a kFailedPrecondition result if Stop()
  // ended the loop first. Defined in framework/future.h (a Future) and
  // framework/task.h (a Task).
  template <class Awaitable>
  auto RunUntilComplete(Awaitable awaitable);
  // One iteration, waiting for events at most `max_wait`.
  void RunOnce(absl::Duration max_wait = absl::InfiniteDuration());

  // Asks a running loop to return after the current iteration. If the loop
  // is not running, the next RunForever/Run/RunUntil runs one iteration and
  // returns (asyncio's stop()).
  void Stop() { stopping_ = true; }
  bool IsRunning() const { return running_; }

  // An awaitable that completes after `delay` with OkStatus, or with
  // kCancelled when the awaiting task is cancelled first. A zero or negative
  // delay yields once: the task resumes after the callbacks queued before
  // it (asyncio's sleep(0)).
  class SleepAwaiter;
  SleepAwaiter Sleep(absl::Duration delay);

  // Replaces the handler that receives errors no caller can receive: a
  // callback that threw, a protocol callback that failed. The default writes
  // one line to stderr.
  void SetErrorHandler(ErrorHandler handler);
  void ReportError(const LoopError& error);

  // Destroys `object` at the end of the current iteration, so that an object
  // can be released from inside one of its own callbacks (Envoy's deferred
  // deletion). Deletions deferred by those destructors run then too.
  template <class T>
  void DeleteSoon(std::unique_ptr<T> object) {
    deferred_deletions_.push_back([object = std::move(object)] {});
  }

  // Runs blocking `work` on a worker thread (asyncio's run_in_executor);
  // `work` reports back with CallSoonThreadsafe. The loop's destructor waits
  // for running work to finish.
  void RunInExecutor(absl::AnyInvocable<void()> work);

  // The loop's ownership of root transports and spawned coroutines is not
  // API: a user who released a live transport would destroy it without its
  // ConnectionLost. Only the transport core and Spawn reach it.
  template <class Interface, class P>
  friend class TransportCore;
  friend struct internal::CoroutineOwnership;

 private:
  friend class Handle;

  // Takes ownership of `object` until Release(object) or the loop's end.
  LoopOwned& Adopt(std::unique_ptr<LoopOwned> object);
  // Destroys an adopted object at the end of the current iteration (it may
  // be the caller). No-op for an object the loop does not own.
  void Release(LoopOwned* object);

  // The loop owns the frames of spawned coroutines and destroys those
  // still suspended when it is destroyed.
  void AdoptCoroutine(std::coroutine_handle<> handle);
  void ReleaseCoroutine(std::coroutine_handle<> handle);

  struct ReadyEntry {
    uint64_t id;
    Callback callback;
  };
  struct TimerEntry {
    MonotonicTime deadline;
    uint64_t id;
  };
  struct FdEntry {
    FdHandler* handler = nullptr;
    uint32_t generation = 0;
    uint32_t interest = kFdNone;
  };
  class CallbackWatcher;
  class SignalWatcher;
  class WakeupWatcher;

  EventLoop(Clock& clock, int epoll_fd,
            std::shared_ptr<event_loop_internal::ThreadsafeQueue> threadsafe);

  void Cancel(uint64_t id, bool is_timer);
  absl::Status AddCallbackWatch(int fd, uint32_t direction,
                                RepeatingCallback callback);
  bool RemoveCallbackWatch(int fd, uint32_t direction);
  absl::Status UpdateSignalMask();
  void DrainThreadsafeQueue();
  // Destroys the deferred deletions, and those their destructors defer, in
  // FIFO order.
  void RunDeferredDeletions();
  // Runs `callback`, reporting an exception it throws.
  void Invoke(Callback& callback, const char* what);
  void RunReady(size_t count);
  void DispatchIo(int ready_count);
  void RunDueTimers();
  void CompactTimers();
  bool HasTimers() const { return !timer_callbacks_.empty(); }
  // The earliest live timer's deadline; requires HasTimers().
  MonotonicTime NextDeadline();
  bool HasWork() const;
  void RunLoop(absl::FunctionRef<bool()> keep_going);
  // One iteration; returns before waiting for events if `keep_going()`
  // turned false while the ready callbacks ran.
  void Iterate(absl::Duration max_wait, absl::FunctionRef<bool()> keep_going);

  Clock* clock_;
  // Joined first in the destructor: workers post into the loop.
  std::unique_ptr<ThreadPool> executor_;
  const int epoll_fd_;

  uint64_t next_id_ = 1;
  std::deque<ReadyEntry> ready_;
  // Ids of ready entries cancelled before they ran.
  absl::flat_hash_set<uint64_t> cancelled_ready_;
  // Min-heap on (deadline, id); entries whose callback was cancelled stay
  // until they reach the top or a compaction.
  std::vector<TimerEntry> timer_heap_;
  absl::flat_hash_map<uint64_t, Callback> timer_callbacks_;

  std::vector<FdEntry> fds_;
  uint32_t next_generation_ = 1;
  size_t watched_fd_count_ = 0;
  absl::flat_hash_map<int, std::unique_ptr<CallbackWatcher>> callback_watchers_;

  std::unique_ptr<SignalWatcher> signals_;
  std::unique_ptr<WakeupWatcher> wakeup_;

  // The CallSoonThreadsafe queue and its eventfd.
  std::shared_ptr<event_loop_internal::ThreadsafeQueue> threadsafe_;

  // Objects released during an iteration, destroyed at its end.
  std::vector<Callback> deferred_deletions_;
  absl::flat_hash_set<void*> coroutines_;
  absl::flat_hash_map<LoopOwned*, std::unique_ptr<LoopOwned>> owned_;

  ErrorHandler error_handler_;
  bool running_ = false;
  bool stopping_ = false;
};

// The awaitable of EventLoop::Sleep.
class EventLoop::SleepAwaiter {
 public:
  SleepAwaiter(EventLoop& loop, absl::Duration delay)
      : loop_(&loop), delay_(delay) {}
  SleepAwaiter(SleepAwaiter&& other) noexcept
      : loop_(other.loop_), delay_(other.delay_) {}
  SleepAwaiter& operator=(SleepAwaiter&&) = delete;
  ~SleepAwaiter();

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> awaiting) {
    return Suspend(awaiting, CancelSlotOf(awaiting));
  }
  absl::Status await_resume();

 private:
  bool Suspend(std::coroutine_handle<> awaiting, CancelSlot* slot);

  EventLoop* loop_;
  absl::Duration delay_;
  std::coroutine_handle<> awaiting_;
  CancelSlot* slot_ = nullptr;
  Handle timer_;
  Handle resume_;
  bool suspended_ = false;
  absl::Status result_;
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_EVENT_LOOP_H_
