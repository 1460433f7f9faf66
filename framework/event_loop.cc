#include "framework/event_loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "framework/exceptions.h"

namespace sluice {
namespace {

// Timer heap compaction thresholds (asyncio's _MIN_SCHEDULED_TIMER_HANDLES
// and _MIN_CANCELLED_TIMER_HANDLES_FRACTION).
constexpr size_t kMinTimersForCompaction = 100;

// Upper bound of one wait, as asyncio's MAXIMUM_SELECT_TIMEOUT.
constexpr absl::Duration kMaxWait = absl::Hours(24);

constexpr int kMaxEventsPerWait = 256;

// Min-heap order on (deadline, id): std::*_heap build max-heaps, so the
// comparison is reversed.
struct LaterTimer {
  template <class Entry>
  bool operator()(const Entry& a, const Entry& b) const {
    if (a.deadline != b.deadline) return a.deadline > b.deadline;
    return a.id > b.id;
  }
};

uint32_t ToEpollEvents(uint32_t interest) {
  uint32_t events = 0;
  if (interest & kFdReadable) events |= EPOLLIN;
  if (interest & kFdWritable) events |= EPOLLOUT;
  return events;
}

int ToEpollTimeoutMs(absl::Duration wait) {
  if (wait <= absl::ZeroDuration()) return 0;
  if (wait >= kMaxWait) wait = kMaxWait;
  // Round up: waking a little late is fine, waking early would spin.
  return static_cast<int>(absl::ToInt64Milliseconds(
      absl::Ceil(wait, absl::Milliseconds(1))));
}

absl::Status ErrnoStatus(int error, absl::string_view what) {
  return absl::ErrnoToStatus(error, what);
}

}  // namespace

namespace event_loop_internal {

struct ThreadsafeQueue {
  explicit ThreadsafeQueue(int wakeup_fd) : wakeup_fd(wakeup_fd) {}
  ~ThreadsafeQueue() { close(wakeup_fd); }

  // Queues `callback` and wakes the loop; kFailedPrecondition once closed.
  absl::Status Post(Callback callback);

  // Closed by the loop's destructor; the fd stays open until the last
  // handle is gone, so a late writer never hits a reused descriptor.
  const int wakeup_fd;
  std::mutex mutex;
  std::vector<Callback> callbacks;  // Guarded by mutex.
  bool closed = false;              // Guarded by mutex.
};

absl::Status ThreadsafeQueue::Post(Callback callback) {
  bool was_empty;
  {
    std::unique_lock<std::mutex> lock(mutex);
    if (closed) {
      lock.unlock();
      callback = nullptr;  // Its destructor may post again: not under lock.
      return absl::FailedPreconditionError(
          "CallSoon from another thread: the event loop is closed");
    }
    was_empty = callbacks.empty();
    callbacks.push_back(std::move(callback));
  }
  // One wake-up per batch: the loop reads the eventfd before taking the
  // queue, so a push that finds the queue non-empty is covered by the
  // wake-up of the push that made it non-empty.
  if (was_empty) {
    uint64_t one = 1;
    ssize_t n = write(wakeup_fd, &one, sizeof(one));
    (void)n;  // EAGAIN means the counter is saturated: a wake-up is pending.
  }
  return absl::OkStatus();
}

}  // namespace event_loop_internal

absl::Status ThreadsafeHandle::CallSoon(
    absl::AnyInvocable<void()> callback) const {
  return queue_->Post(std::move(callback));
}

// Adapts asyncio-style AddReader/AddWriter callbacks to FdHandler.
class EventLoop::CallbackWatcher final : public FdHandler {
 public:
  explicit CallbackWatcher(EventLoop& loop) : loop_(loop) {}

  void OnFdReady(uint32_t ready) override {
    // A callback removed while it runs is kept alive by DeleteSoon, and so
    // is this watcher, so these pointers stay valid for the whole call.
    if ((ready & kFdReadable) && reader) {
      loop_.Invoke(*reader, "exception in reader callback");
    }
    if ((ready & kFdWritable) && writer) {
      loop_.Invoke(*writer, "exception in writer callback");
    }
  }

  uint32_t interest() const {
    return (reader ? kFdReadable : kFdNone) | (writer ? kFdWritable : kFdNone);
  }

  std::unique_ptr<RepeatingCallback> reader;
  std::unique_ptr<RepeatingCallback> writer;

 private:
  EventLoop& loop_;
};

// Reads signalfd and runs the installed handlers.
class EventLoop::SignalWatcher final : public FdHandler {
 public:
  explicit SignalWatcher(EventLoop& loop) : loop_(loop) {
    sigemptyset(&blocked_by_us_);
  }

  void OnFdReady(uint32_t) override {
    std::array<signalfd_siginfo, 16> infos;
    while (fd >= 0) {
      ssize_t n = read(fd, infos.data(), sizeof(infos));
      if (n <= 0) return;  // EAGAIN: drained.
      for (size_t i = 0; i < n / sizeof(signalfd_siginfo); ++i) {
        auto it = handlers.find(static_cast<int>(infos[i].ssi_signo));
        if (it == handlers.end()) continue;
        // The handler stays alive if it removes itself (DeleteSoon).
        loop_.Invoke(*it->second, "exception in signal handler");
      }
    }
  }

  int fd = -1;
  absl::flat_hash_map<int, std::unique_ptr<RepeatingCallback>> handlers;
  // Signals that were unblocked before a handler was installed, to unblock
  // again when it is removed.
  sigset_t blocked_by_us_;

 private:
  EventLoop& loop_;
};

// Drains the eventfd that CallSoonThreadsafe writes to.
class EventLoop::WakeupWatcher final : public FdHandler {
 public:
  explicit WakeupWatcher(EventLoop& loop) : loop_(loop) {}
  void OnFdReady(uint32_t) override { loop_.DrainThreadsafeQueue(); }

 private:
  EventLoop& loop_;
};

void Handle::Cancel() {
  if (loop_ != nullptr) loop_->Cancel(id_, is_timer_);
}

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create(
    EventLoopOptions options) {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return ErrnoStatus(errno, "epoll_create1");
  int wakeup_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeup_fd < 0) {
    int error = errno;
    close(epoll_fd);
    return ErrnoStatus(error, "eventfd");
  }
  Clock& clock = options.clock != nullptr ? *options.clock : SystemClock();
  std::unique_ptr<EventLoop> loop(new EventLoop(
      clock, epoll_fd,
      std::make_shared<event_loop_internal::ThreadsafeQueue>(wakeup_fd)));
  absl::Status watched =
      loop->WatchFd(wakeup_fd, *loop->wakeup_, kFdReadable);
  if (!watched.ok()) return watched;
  return loop;
}

EventLoop::EventLoop(
    Clock& clock, int epoll_fd,
    std::shared_ptr<event_loop_internal::ThreadsafeQueue> threadsafe)
    : clock_(&clock),
      epoll_fd_(epoll_fd),
      wakeup_(std::make_unique<WakeupWatcher>(*this)),
      threadsafe_(std::move(threadsafe)) {}

EventLoop::~EventLoop() {
  // Closed to other threads first: from here on a post is refused rather
  // than accepted and silently dropped.
  std::vector<Callback> unrun;
  {
    std::lock_guard<std::mutex> lock(threadsafe_->mutex);
    threadsafe_->closed = true;
    unrun.swap(threadsafe_->callbacks);
  }
  // Outside the lock: a callback's destructor may post (and is refused).
  unrun.clear();
  // Then the workers: they post into the loop.
  executor_.reset();
  // Suspended coroutines first: their destructors cancel handles and unwatch
  // fds, which needs the rest of the loop intact. Everything is moved out
  // before it is destroyed, so that destructors calling back into the loop
  // find consistent, empty containers.
  while (!coroutines_.empty()) {
    auto frames = std::move(coroutines_);
    coroutines_.clear();
    for (void* frame : frames) {
      std::coroutine_handle<>::from_address(frame).destroy();
    }
  }
  // Then the objects it owns (live transports), which unwatch their fds.
  while (!owned_.empty()) {
    auto owned = std::move(owned_);
    owned_.clear();
  }
  while (!ready_.empty() || !timer_callbacks_.empty() ||
         !deferred_deletions_.empty() || !callback_watchers_.empty()) {
    auto ready = std::move(ready_);
    ready_.clear();
    auto timers = std::move(timer_callbacks_);
    timer_callbacks_.clear();
    auto deferred = std::move(deferred_deletions_);
    deferred_deletions_.clear();
    auto watchers = std::move(callback_watchers_);
    callback_watchers_.clear();
  }
  if (signals_ != nullptr) {
    pthread_sigmask(SIG_UNBLOCK, &signals_->blocked_by_us_, nullptr);
    close(signals_->fd);
  }
  close(epoll_fd_);
}

Handle EventLoop::CallSoon(Callback callback) {
  uint64_t id = next_id_++;
  ready_.push_back(ReadyEntry{id, std::move(callback)});
  return Handle(this, id, /*is_timer=*/false);
}

Handle EventLoop::CallAt(MonotonicTime deadline, Callback callback) {
  uint64_t id = next_id_++;
  timer_callbacks_.emplace(id, std::move(callback));
  timer_heap_.push_back(TimerEntry{deadline, id});
  std::push_heap(timer_heap_.begin(), timer_heap_.end(), LaterTimer());
  return Handle(this, id, /*is_timer=*/true);
}

Handle EventLoop::CallLater(absl::Duration delay, Callback callback) {
  return CallAt(AddDuration(Time(), delay), std::move(callback));
}

void EventLoop::CallSoonThreadsafe(Callback callback) {
  // Refused only once the loop is being destroyed, which the caller rules
  // out (see the header).
  threadsafe_->Post(std::move(callback)).IgnoreError();
}

void EventLoop::DrainThreadsafeQueue() {
  uint64_t count;
  ssize_t n = read(threadsafe_->wakeup_fd, &count, sizeof(count));
  (void)n;  // EAGAIN: a spurious wake-up; the queue is checked regardless.
  std::vector<Callback> batch;
  {
    std::lock_guard<std::mutex> lock(threadsafe_->mutex);
    batch.swap(threadsafe_->callbacks);
  }
  for (Callback& callback : batch) CallSoon(std::move(callback));
}

void EventLoop::Cancel(uint64_t id, bool is_timer) {
  if (is_timer) {
    auto it = timer_callbacks_.find(id);
    if (it == timer_callbacks_.end()) return;
    // Destroyed after the erase, in case its destructor re-enters the loop.
    Callback doomed = std::move(it->second);
    timer_callbacks_.erase(it);
    return;
  }
  // Ready entries hold increasing ids, so one is still pending exactly when
  // its id lies between the queue's ends.
  if (!ready_.empty() && id >= ready_.front().id && id <= ready_.back().id) {
    cancelled_ready_.insert(id);
  }
}

absl::Status EventLoop::WatchFd(int fd, FdHandler& handler,
                                uint32_t interest) {
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat("invalid fd ", fd));
  }
  if (static_cast<size_t>(fd) >= fds_.size()) fds_.resize(fd + 1);
  FdEntry& entry = fds_[fd];
  if (entry.handler != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("fd ", fd, " is already watched by the loop"));
  }
  uint32_t generation = next_generation_++;
  if (interest != kFdNone) {
    epoll_event event{};
    event.events = ToEpollEvents(interest);
    event.data.u64 = (static_cast<uint64_t>(generation) << 32) |
                     static_cast<uint32_t>(fd);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
      return ErrnoStatus(errno, absl::StrCat("epoll_ctl(ADD, fd ", fd, ")"));
    }
  }
  entry = FdEntry{&handler, generation, interest};
  ++watched_fd_count_;
  return absl::OkStatus();
}

absl::Status EventLoop::SetFdInterest(int fd, uint32_t interest) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() ||
      fds_[fd].handler == nullptr) {
    return absl::NotFoundError(absl::StrCat("fd ", fd, " is not watched"));
  }
  FdEntry& entry = fds_[fd];
  if (entry.interest == interest) return absl::OkStatus();
  // An fd without interest leaves the epoll set: level-triggered epoll
  // reports hang-ups even for an empty event mask, which would spin.
  int op;
  if (interest == kFdNone) {
    op = EPOLL_CTL_DEL;
  } else if (entry.interest == kFdNone) {
    op = EPOLL_CTL_ADD;
  } else {
    op = EPOLL_CTL_MOD;
  }
  epoll_event event{};
  event.events = ToEpollEvents(interest);
  event.data.u64 = (static_cast<uint64_t>(entry.generation) << 32) |
                   static_cast<uint32_t>(fd);
  if (epoll_ctl(epoll_fd_, op, fd, &event) != 0) {
    return ErrnoStatus(errno, absl::StrCat("epoll_ctl(fd ", fd, ")"));
  }
  entry.interest = interest;
  return absl::OkStatus();
}

void EventLoop::UnwatchFd(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size()) return;
  FdEntry& entry = fds_[fd];
  if (entry.handler == nullptr) return;
  if (entry.interest != kFdNone) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  }
  // Clearing the entry also invalidates events of this iteration that are
  // still to be dispatched: their generation no longer matches.
  entry = FdEntry{};
  --watched_fd_count_;
}

absl::Status EventLoop::AddReader(int fd, RepeatingCallback callback) {
  return AddCallbackWatch(fd, kFdReadable, std::move(callback));
}

absl::Status EventLoop::AddWriter(int fd, RepeatingCallback callback) {
  return AddCallbackWatch(fd, kFdWritable, std::move(callback));
}

bool EventLoop::RemoveReader(int fd) {
  return RemoveCallbackWatch(fd, kFdReadable);
}

bool EventLoop::RemoveWriter(int fd) {
  return RemoveCallbackWatch(fd, kFdWritable);
}

absl::Status EventLoop::AddCallbackWatch(int fd, uint32_t direction,
                                         RepeatingCallback callback) {
  auto it = callback_watchers_.find(fd);
  CallbackWatcher* watcher;
  if (it == callback_watchers_.end()) {
    auto owned = std::make_unique<CallbackWatcher>(*this);
    absl::Status watched = WatchFd(fd, *owned, kFdNone);
    if (!watched.ok()) return watched;
    watcher = owned.get();
    callback_watchers_.emplace(fd, std::move(owned));
  } else {
    watcher = it->second.get();
  }
  std::unique_ptr<RepeatingCallback>& slot =
      direction == kFdReadable ? watcher->reader : watcher->writer;
  // The replaced callback may be the one running now.
  if (slot != nullptr) DeleteSoon(std::move(slot));
  slot = std::make_unique<RepeatingCallback>(std::move(callback));
  absl::Status updated = SetFdInterest(fd, watcher->interest());
  if (!updated.ok()) {
    DeleteSoon(std::move(slot));
    if (watcher->interest() == kFdNone) RemoveCallbackWatch(fd, direction);
  }
  return updated;
}

bool EventLoop::RemoveCallbackWatch(int fd, uint32_t direction) {
  auto it = callback_watchers_.find(fd);
  if (it == callback_watchers_.end()) return false;
  CallbackWatcher& watcher = *it->second;
  std::unique_ptr<RepeatingCallback>& slot =
      direction == kFdReadable ? watcher.reader : watcher.writer;
  bool had_callback = slot != nullptr;
  if (had_callback) DeleteSoon(std::move(slot));
  if (watcher.interest() == kFdNone) {
    UnwatchFd(fd);
    DeleteSoon(std::move(it->second));
    callback_watchers_.erase(it);
  } else {
    // Only narrows the interest of a registered fd, which cannot fail.
    SetFdInterest(fd, watcher.interest()).IgnoreError();
  }
  return had_callback;
}

absl::Status EventLoop::AddSignalHandler(int signo,
                                         RepeatingCallback callback) {
  if (signo <= 0 || signo >= SIGRTMAX + 1 || signo == SIGKILL ||
      signo == SIGSTOP) {
    return absl::InvalidArgumentError(
        absl::StrCat("signal ", signo, " cannot be handled"));
  }
  if (signals_ == nullptr) {
    signals_ = std::make_unique<SignalWatcher>(*this);
  }
  auto [it, inserted] = signals_->handlers.try_emplace(signo);
  if (!inserted) DeleteSoon(std::move(it->second));
  it->second = std::make_unique<RepeatingCallback>(std::move(callback));
  absl::Status updated = UpdateSignalMask();
  if (!updated.ok()) RemoveSignalHandler(signo);
  return updated;
}

bool EventLoop::RemoveSignalHandler(int signo) {
  if (signals_ == nullptr) return false;
  auto it = signals_->handlers.find(signo);
  if (it == signals_->handlers.end()) return false;
  DeleteSoon(std::move(it->second));
  signals_->handlers.erase(it);
  UpdateSignalMask().IgnoreError();
  return true;
}

absl::Status EventLoop::UpdateSignalMask() {
  SignalWatcher& signals = *signals_;
  sigset_t wanted;
  sigemptyset(&wanted);
  for (const auto& [signo, handler] : signals.handlers) {
    sigaddset(&wanted, signo);
  }
  // Block newly handled signals (remembering which were not blocked yet)
  // and unblock the ones we blocked that are no longer handled.
  sigset_t current;
  pthread_sigmask(SIG_BLOCK, nullptr, &current);
  sigset_t to_unblock;
  sigemptyset(&to_unblock);
  for (int signo = 1; signo <= SIGRTMAX; ++signo) {
    bool want = sigismember(&wanted, signo) == 1;
    if (want && sigismember(&current, signo) != 1) {
      sigaddset(&signals.blocked_by_us_, signo);
    } else if (!want && sigismember(&signals.blocked_by_us_, signo) == 1) {
      sigdelset(&signals.blocked_by_us_, signo);
      sigaddset(&to_unblock, signo);
    }
  }
  pthread_sigmask(SIG_BLOCK, &wanted, nullptr);
  int fd = signalfd(signals.fd, &wanted, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "signalfd");
  if (signals.fd < 0) {
    signals.fd = fd;
    absl::Status watched = WatchFd(fd, signals, kFdReadable);
    if (!watched.ok()) return watched;
  }
  if (signals.handlers.empty()) {
    UnwatchFd(signals.fd);
    close(signals.fd);
    signals.fd = -1;
  }
  // After the signalfd stopped listening, so a pending instance does not
  // take its default action before the mask says so.
  pthread_sigmask(SIG_UNBLOCK, &to_unblock, nullptr);
  return absl::OkStatus();
}

void EventLoop::Invoke(Callback& callback, const char* what) {
#if SLUICE_HAS_EXCEPTIONS
  try {
    callback();
  } catch (const std::exception& e) {
    ReportError(LoopError{what, absl::InternalError(e.what())});
  } catch (...) {
    ReportError(LoopError{what, absl::InternalError("unknown exception")});
  }
#else
  (void)what;
  callback();
#endif
}

void EventLoop::SetErrorHandler(ErrorHandler handler) {
  error_handler_ = std::move(handler);
}

void EventLoop::ReportError(const LoopError& error) {
  if (error_handler_) {
#if SLUICE_HAS_EXCEPTIONS
    try {
      error_handler_(error);
      return;
    } catch (...) {
      absl::FPrintF(stderr, "sluice: the error handler threw\n");
    }
#else
    error_handler_(error);
    return;
#endif
  }
  absl::FPrintF(stderr, "sluice: %s: %s\n", error.message,
                error.status.ToString());
}

void EventLoop::RunInExecutor(absl::AnyInvocable<void()> work) {
  // Enough threads for a burst of name lookups, as asyncio's default
  // executor (min(32, cpus + 4)).
  constexpr size_t kExecutorThreads = 8;
  if (executor_ == nullptr) {
    executor_ = std::make_unique<ThreadPool>(kExecutorThreads);
  }
  executor_->Submit(std::move(work));
}

LoopOwned& EventLoop::Adopt(std::unique_ptr<LoopOwned> object) {
  LoopOwned& adopted = *object;
  owned_.emplace(&adopted, std::move(object));
  return adopted;
}

void EventLoop::Release(LoopOwned* object) {
  auto it = owned_.find(object);
  if (it == owned_.end()) return;
  DeleteSoon(std::move(it->second));
  owned_.erase(it);
}

void internal::CoroutineOwnership::Adopt(EventLoop& loop,
                                         std::coroutine_handle<> handle) {
  loop.AdoptCoroutine(handle);
}

void internal::CoroutineOwnership::Release(EventLoop& loop,
                                           std::coroutine_handle<> handle) {
  loop.ReleaseCoroutine(handle);
}

void EventLoop::AdoptCoroutine(std::coroutine_handle<> handle) {
  coroutines_.insert(handle.address());
}

void EventLoop::ReleaseCoroutine(std::coroutine_handle<> handle) {
  coroutines_.erase(handle.address());
}

MonotonicTime EventLoop::NextDeadline() {
  // Cancelled entries on top are dropped here so the answer is live.
  while (!timer_callbacks_.contains(timer_heap_.front().id)) {
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), LaterTimer());
    timer_heap_.pop_back();
  }
  return timer_heap_.front().deadline;
}

void EventLoop::CompactTimers() {
  size_t stale = timer_heap_.size() - timer_callbacks_.size();
  if (timer_heap_.size() <= kMinTimersForCompaction ||
      stale * 2 <= timer_heap_.size()) {
    return;
  }
  std::erase_if(timer_heap_, [this](const TimerEntry& entry) {
    return !timer_callbacks_.contains(entry.id);
  });
  std::make_heap(timer_heap_.begin(), timer_heap_.end(), LaterTimer());
}

void EventLoop::RunOnce(absl::Duration max_wait) {
  Iterate(max_wait, [] { return true; });
}

void EventLoop::Iterate(absl::Duration max_wait,
                        absl::FunctionRef<bool()> keep_going) {
  // The callbacks queued before this iteration run first, then the loop
  // polls: a coroutine resumed by the previous iteration's I/O runs (and
  // sends) before the next wait, without an extra zero-timeout poll.
  RunReady(ready_.size());
  // What the caller waits for may have happened: do not block on it.
  if (!keep_going()) {
    RunDeferredDeletions();
    return;
  }
  CompactTimers();
  absl::Duration wait = max_wait;
  if (!ready_.empty() || stopping_) {
    wait = absl::ZeroDuration();
  } else if (HasTimers()) {
    // A virtual clock does not pass while we wait: poll, then jump.
    absl::Duration until_timer =
        clock_->IsVirtual() ? absl::ZeroDuration()
                            : Difference(NextDeadline(), Time());
    wait = std::min(wait, until_timer);
  }
  std::array<epoll_event, kMaxEventsPerWait> events;
  int timeout_ms = wait == absl::InfiniteDuration() ? -1
                                                    : ToEpollTimeoutMs(wait);
  int n = epoll_wait(epoll_fd_, events.data(), kMaxEventsPerWait, timeout_ms);
  if (n < 0) n = 0;  // EINTR: an ordinary early wake-up.
  if (n == 0 && ready_.empty() && !stopping_ && clock_->IsVirtual() &&
      HasTimers() && max_wait > absl::ZeroDuration()) {
    clock_->AdvanceTo(std::min(NextDeadline(), AddDuration(Time(), max_wait)));
  }

  for (int i = 0; i < n; ++i) {
    const uint64_t data = events[i].data.u64;
    const int fd = static_cast<int>(data & 0xffffffffu);
    const uint32_t generation = static_cast<uint32_t>(data >> 32);
    // The entry is looked up afresh for each event: an earlier callback of
    // this batch may have unwatched or replaced it.
    if (static_cast<size_t>(fd) >= fds_.size()) continue;
    const FdEntry& entry = fds_[fd];
    if (entry.handler == nullptr || entry.generation != generation) continue;
    const uint32_t happened = events[i].events;
    const bool failed = (happened & (EPOLLERR | EPOLLHUP)) != 0;
    uint32_t ready = kFdNone;
    if ((entry.interest & kFdReadable) && (failed || (happened & EPOLLIN))) {
      ready |= kFdReadable;
    }
    if ((entry.interest & kFdWritable) && (failed || (happened & EPOLLOUT))) {
      ready |= kFdWritable;
    }
    if (ready != kFdNone) entry.handler->OnFdReady(ready);
  }
  RunDueTimers();
  RunDeferredDeletions();
}

void EventLoop::RunDeferredDeletions() {
  // Swapped out first: a destructor may defer more (Envoy's
  // clearDeferredDeleteList), which then waits for the next round.
  while (!deferred_deletions_.empty()) {
    std::vector<Callback> doomed;
    doomed.swap(deferred_deletions_);
    for (Callback& deletion : doomed) deletion = nullptr;
  }
}

void EventLoop::RunReady(size_t count) {
  for (size_t i = 0; i < count && !ready_.empty(); ++i) {
    ReadyEntry entry = std::move(ready_.front());
    ready_.pop_front();
    if (!cancelled_ready_.empty() && cancelled_ready_.erase(entry.id) > 0) {
      continue;
    }
    Invoke(entry.callback, "exception in callback");
  }
}

void EventLoop::RunDueTimers() {
  const MonotonicTime now = Time();
  // Timers scheduled while this runs wait for the next iteration, even when
  // already due (asyncio moves due timers to the ready queue first).
  const uint64_t first_new_id = next_id_;
  while (!timer_heap_.empty()) {
    const TimerEntry top = timer_heap_.front();
    auto it = timer_callbacks_.find(top.id);
    if (it != timer_callbacks_.end() &&
        (top.deadline > now || top.id >= first_new_id)) {
      break;
    }
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), LaterTimer());
    timer_heap_.pop_back();
    if (it == timer_callbacks_.end()) continue;  // Cancelled.
    Callback callback = std::move(it->second);
    timer_callbacks_.erase(it);
    Invoke(callback, "exception in timer callback");
  }
}

bool EventLoop::HasWork() const {
  // The wake-up eventfd is always watched and does not count.
  return !ready_.empty() || HasTimers() || watched_fd_count_ > 1;
}

void EventLoop::RunLoop(absl::FunctionRef<bool()> keep_going) {
  if (running_) {
    ReportError(LoopError{"cannot run the event loop",
                          absl::FailedPreconditionError(
                              "the event loop is already running")});
    return;
  }
  running_ = true;
  while (keep_going()) {
    Iterate(absl::InfiniteDuration(), keep_going);
    if (stopping_) break;
  }
  stopping_ = false;
  running_ = false;
}

void EventLoop::RunForever() {
  RunLoop([] { return true; });
}

void EventLoop::Run() {
  RunLoop([this] { return HasWork(); });
}

bool EventLoop::RunUntil(absl::FunctionRef<bool()> done) {
  RunLoop([&done] { return !done(); });
  return done();
}

void EventLoop::RunUntilIdle() {
  if (running_) return;
  running_ = true;
  do {
    RunOnce(absl::ZeroDuration());
  } while (!stopping_ &&
           (!ready_.empty() || (HasTimers() && NextDeadline() <= Time())));
  stopping_ = false;
  running_ = false;
}

EventLoop::SleepAwaiter EventLoop::Sleep(absl::Duration delay) {
  return SleepAwaiter(*this, delay);
}

EventLoop::SleepAwaiter::~SleepAwaiter() {
  if (!suspended_) return;
  // The awaiting coroutine is destroyed while asleep.
  timer_.Cancel();
  resume_.Cancel();
  if (slot_ != nullptr) slot_->Clear();
}

bool EventLoop::SleepAwaiter::Suspend(std::coroutine_handle<> awaiting,
                                      CancelSlot* slot) {
  if (slot != nullptr && slot->TakePending()) {
    result_ = absl::CancelledError("sleep cancelled");
    return false;
  }
  awaiting_ = awaiting;
  slot_ = slot;
  suspended_ = true;
  // Sleep(0) is a bare yield (asyncio's sleep(0)): after the callbacks
  // already queued, not in this iteration's timer phase.
  if (delay_ <= absl::ZeroDuration()) {
    timer_ = loop_->CallSoon([this] { awaiting_.resume(); });
  } else {
    timer_ = loop_->CallLater(delay_, [this] { awaiting_.resume(); });
  }
  if (slot_ != nullptr) {
    slot_->Install(
        [](void* self) {
          auto* sleep = static_cast<SleepAwaiter*>(self);
          sleep->timer_.Cancel();
          sleep->result_ = absl::CancelledError("sleep cancelled");
          sleep->resume_ =
              sleep->loop_->CallSoon([sleep] { sleep->awaiting_.resume(); });
        },
        this);
  }
  return true;
}

absl::Status EventLoop::SleepAwaiter::await_resume() {
  if (suspended_) {
    suspended_ = false;
    if (slot_ != nullptr) slot_->Clear();
  }
  return result_;
}

}  // namespace sluice
