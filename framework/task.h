#ifndef SLUICE_FRAMEWORK_TASK_H_
#define SLUICE_FRAMEWORK_TASK_H_

#include <concepts>
#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "framework/cancellation.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/status_like.h"

namespace sluice {

template <StatusLike T>
class Task;

namespace internal {

// Turns an exception escaping a coroutine body into a status, so errors
// cross await points only as values.
absl::Status StatusFromCurrentException();

template <StatusLike T>
class TaskPromise {
 public:
  using Handle = std::coroutine_handle<TaskPromise>;

  Task<T> get_return_object() noexcept;
  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    std::coroutine_handle<> await_suspend(Handle self) noexcept {
      TaskPromise& promise = self.promise();
      if (promise.continuation_) return promise.continuation_;
      if (promise.on_detached_done_) {
        // Moved to the stack: it destroys the frame it was stored in.
        auto done = std::move(promise.on_detached_done_);
        done(self);
      }
      return std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  template <class U>
    requires std::convertible_to<U &&, T>
  void return_value(U&& value) {
    result_.emplace(std::forward<U>(value));
  }
  void unhandled_exception() noexcept {
    result_.emplace(T(StatusFromCurrentException()));
  }

  CancelSlot& cancel_slot() { return cancel_slot_; }

  std::optional<T> result_;
  // The coroutine awaiting this task, resumed when it finishes.
  std::coroutine_handle<> continuation_;
  // For a spawned task: hands the result on and destroys the frame.
  absl::AnyInvocable<void(Handle)> on_detached_done_;

 private:
  CancelSlot cancel_slot_;
};

}  // namespace internal

// A lazily started coroutine returning T (absl::Status or absl::StatusOr<U>).
//
// `co_await task` starts it inline and resumes the awaiter when it returns;
// Spawn(loop, task) runs it concurrently on the loop and returns a Future.
// Cancelling the awaiter of a task cancels the task: the await point it is
// suspended at resumes with kCancelled, which the body is expected to
// return. An exception escaping the body becomes a kInternal result.
//
// Destroying a Task destroys its coroutine frame, wherever it is suspended;
// every awaitable of the framework detaches itself when that happens.
template <StatusLike T>
class [[nodiscard]] Task {
 public:
  using promise_type = internal::TaskPromise<T>;
  using value_type = T;

  Task() = default;
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  ~Task() {
    if (handle_) handle_.destroy();
  }

  bool valid() const { return static_cast<bool>(handle_); }

  // Gives up ownership of the frame (for Spawn).
  typename promise_type::Handle Release() { return std::exchange(handle_, {}); }

  class Awaiter {
   public:
    explicit Awaiter(typename promise_type::Handle task) : task_(task) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (suspended_ && slot_ != nullptr) slot_->Clear();
    }

    bool await_ready() const noexcept { return !task_; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> awaiting) {
      slot_ = CancelSlotOf(awaiting);
      if (slot_ != nullptr && slot_->TakePending()) {
        // Cancelled before the await: the task never starts.
        cancelled_ = true;
        return false;
      }
      suspended_ = true;
      if (slot_ != nullptr) {
        slot_->Install(
            [](void* frame) {
              promise_type::Handle::from_address(frame)
                  .promise()
                  .cancel_slot()
                  .Cancel();
            },
            task_.address());
      }
      // Runs the task up to its first suspension. One that finishes without
      // suspending lets the awaiter go on without suspending either, so a
      // loop over synchronous completions runs in constant stack even where
      // the compiler does not turn symmetric transfer into a tail call
      // (gcc at -O0 and under sanitizers).
      task_.resume();
      if (task_.done()) return false;
      task_.promise().continuation_ = awaiting;
      return true;
    }

    T await_resume() {
      if (suspended_) {
        suspended_ = false;
        if (slot_ != nullptr) slot_->Clear();
      }
      if (!task_) {
        return T(absl::FailedPreconditionError("awaiting an empty Task"));
      }
      if (cancelled_) return T(absl::CancelledError("task cancelled"));
      return std::move(*task_.promise().result_);
    }

   private:
    typename promise_type::Handle task_;
    CancelSlot* slot_ = nullptr;
    bool suspended_ = false;
    bool cancelled_ = false;
  };

  Awaiter operator co_await() && noexcept { return Awaiter(handle_); }

 private:
  friend class internal::TaskPromise<T>;
  explicit Task(typename promise_type::Handle handle) : handle_(handle) {}

  typename promise_type::Handle handle_;
};

template <StatusLike T>
Task<T> internal::TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(Handle::from_promise(*this));
}

// Runs `task` on the loop, concurrently with its caller (asyncio's
// create_task). It starts on the next iteration; the returned future
// completes with its result, and cancelling the future cancels the task (a
// task cancelled before it started never runs). The loop owns the frame
// while it runs and destroys it if the loop is destroyed first.
template <StatusLike T>
Future<T> Spawn(EventLoop& loop, Task<T> task) {
  Future<T> future(loop);
  auto handle = task.Release();
  if (!handle) {
    future.SetResult(T(absl::InvalidArgumentError("spawned an empty Task")));
    return future;
  }
  internal::CoroutineOwnership::Adopt(loop, handle);
  handle.promise().on_detached_done_ =
      [future](typename internal::TaskPromise<T>::Handle done) mutable {
        T result = std::move(*done.promise().result_);
        internal::CoroutineOwnership::Release(future.loop(), done);
        done.destroy();
        future.SetResult(std::move(result));
      };
  future.SetCancelHook(
      [handle] { handle.promise().cancel_slot().Cancel(); });
  loop.CallSoon([handle, future]() mutable {
    if (handle.promise().cancel_slot().TakePending()) {
      internal::CoroutineOwnership::Release(future.loop(), handle);
      handle.destroy();
      future.SetResult(T(absl::CancelledError("task cancelled")));
      return;
    }
    handle.resume();
  });
  return future;
}

// RunUntilComplete accepts a Task: it is spawned (see future.h).
template <StatusLike T>
Future<T> AsFuture(EventLoop& loop, Task<T> task) {
  return Spawn(loop, std::move(task));
}

namespace internal {

template <class A>
decltype(auto) GetAwaiter(A&& awaitable) {
  if constexpr (requires { std::forward<A>(awaitable).operator co_await(); }) {
    return std::forward<A>(awaitable).operator co_await();
  } else {
    return std::forward<A>(awaitable);
  }
}

template <class T>
struct IsTask : std::false_type {};
template <class T>
struct IsTask<Task<T>> : std::true_type {};

}  // namespace internal

// The result type of `co_await std::move(a)` for an awaitable `a`.
template <class A>
using AwaitResult =
    decltype(internal::GetAwaiter(std::declval<A>()).await_resume());

// Wraps any awaitable whose result is StatusLike in a Task.
template <class A>
  requires StatusLike<AwaitResult<A>>
Task<AwaitResult<A>> AwaitAsTask(A awaitable) {
  co_return co_await awaitable;
}

template <class A>
concept NonTaskAwaitable =
    !internal::IsTask<A>::value && StatusLike<AwaitResult<A>>;

// Spawn and RunUntilComplete take any such awaitable that can be moved (a
// read, a drain) as they take a Task.
template <NonTaskAwaitable A>
  requires std::move_constructible<A>
Future<AwaitResult<A>> Spawn(EventLoop& loop, A awaitable) {
  return Spawn(loop, AwaitAsTask(std::move(awaitable)));
}
template <NonTaskAwaitable A>
  requires std::move_constructible<A>
Future<AwaitResult<A>> AsFuture(EventLoop& loop, A awaitable) {
  return Spawn(loop, std::move(awaitable));
}

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_TASK_H_
