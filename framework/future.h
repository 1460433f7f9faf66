#ifndef SLUICE_FRAMEWORK_FUTURE_H_
#define SLUICE_FRAMEWORK_FUTURE_H_

#include <coroutine>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "framework/cancellation.h"
#include "framework/event_loop.h"
#include "framework/status_like.h"

namespace sluice {

// A loop-affine, one-shot result slot, shared by whoever holds a copy
// (asyncio.Future). T is absl::Status or absl::StatusOr<U>, so that
// cancellation is an ordinary result: kCancelled.
//
// Completion is delivered on a later loop iteration, never inside SetResult:
// awaiting coroutines resume, and done callbacks run, from the loop, in the
// order they started waiting.
//
// Cancelling a task that awaits a future cancels the future (as asyncio
// does); for a future that stands for a spawned task, that cancels the task,
// and the await completes when the task has finished.
//
// All copies share one state; the loop must outlive it.
template <StatusLike T>
class Future {
 public:
  using value_type = T;

  explicit Future(EventLoop& loop) : state_(std::make_shared<State>(loop)) {}

  EventLoop& loop() const { return *state_->loop; }
  bool IsDone() const { return state_->result.has_value(); }

  // Completes the future. Returns false (and drops `value`) if it was done.
  bool SetResult(T value) { return Complete(*state_, std::move(value)); }

  // Requests cancellation. A plain future completes with kCancelled at once;
  // one with a cancel hook (a spawned task) forwards the request and
  // completes when the task does. Returns false if already done.
  bool Cancel() { return CancelState(*state_); }

  // The result; requires IsDone().
  const T& Result() const& { return *state_->result; }
  // Moves the result out; requires IsDone() and no other reader.
  T TakeResult() { return std::move(*state_->result); }

  // Runs `callback` with the result on the loop once the future is done (on
  // a later iteration even if it is done already).
  void AddDoneCallback(absl::AnyInvocable<void(const T&)> callback) {
    if (IsDone()) {
      ScheduleCallback(state_, std::move(callback));
    } else {
      state_->callbacks.push_back(std::move(callback));
    }
  }

  // Replaces what Cancel() does while the future is pending: for producers
  // that must wind down before the result is known (Spawn, WhenAll).
  void SetCancelHook(absl::AnyInvocable<void()> hook) {
    state_->cancel_hook = std::move(hook);
  }

  class Awaiter;
  // `co_await future` copies the result; `co_await std::move(future)` moves
  // it out. A move-only result is always moved out: it has one reader.
  Awaiter operator co_await() const& { return Awaiter(state_, false); }
  Awaiter operator co_await() && { return Awaiter(std::move(state_), true); }

 private:
  struct State : std::enable_shared_from_this<State> {
    explicit State(EventLoop& loop) : loop(&loop) {}
    EventLoop* loop;
    std::optional<T> result;
    Awaiter* first_waiter = nullptr;  // Intrusive list, in arrival order.
    Awaiter* last_waiter = nullptr;
    std::vector<absl::AnyInvocable<void(const T&)>> callbacks;
    absl::AnyInvocable<void()> cancel_hook;
  };

  static bool Complete(State& state, T value) {
    if (state.result.has_value()) return false;
    state.result.emplace(std::move(value));
    // Dropped after the waiters are scheduled: it may own the producer.
    auto hook = std::move(state.cancel_hook);
    state.cancel_hook = nullptr;
    while (state.first_waiter != nullptr) {
      Awaiter* waiter = state.first_waiter;
      waiter->Unlink();
      waiter->ScheduleResume();
    }
    auto callbacks = std::move(state.callbacks);
    state.callbacks.clear();
    if (!callbacks.empty()) {
      // The callbacks keep the state alive until they ran.
      std::shared_ptr<State> shared = state.shared_from_this();
      for (auto& callback : callbacks) {
        ScheduleCallback(shared, std::move(callback));
      }
    }
    return true;
  }

  static bool CancelState(State& state) {
    if (state.result.has_value()) return false;
    if (state.cancel_hook) {
      state.cancel_hook();
      return true;
    }
    return Complete(state, T(absl::CancelledError("future cancelled")));
  }

  static void ScheduleCallback(std::shared_ptr<State> state,
                               absl::AnyInvocable<void(const T&)> callback) {
    EventLoop* loop = state->loop;
    loop->CallSoon([state = std::move(state),
                    callback = std::move(callback)]() mutable {
      callback(*state->result);
    });
  }

  std::shared_ptr<State> state_;
};

// The awaiter of `co_await future`. Lives in the awaiting coroutine's frame;
// if that frame is destroyed while waiting, it unlinks itself.
template <StatusLike T>
class Future<T>::Awaiter {
 public:
  Awaiter(std::shared_ptr<State> state, bool take)
      : state_(std::move(state)), take_(take) {}
  Awaiter(const Awaiter&) = delete;
  Awaiter& operator=(const Awaiter&) = delete;
  ~Awaiter() {
    if (!suspended_) return;
    Unlink();
    resume_.Cancel();
    if (slot_ != nullptr) slot_->Clear();
  }

  bool await_ready() const noexcept { return state_->result.has_value(); }

  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> awaiting) {
    CancelSlot* slot = CancelSlotOf(awaiting);
    if (slot != nullptr && slot->TakePending()) {
      cancelled_ = true;
      return false;
    }
    awaiting_ = awaiting;
    slot_ = slot;
    suspended_ = true;
    Link();
    if (slot_ != nullptr) {
      slot_->Install(
          [](void* state) { CancelState(*static_cast<State*>(state)); },
          state_.get());
    }
    return true;
  }

  T await_resume() {
    if (suspended_) {
      suspended_ = false;
      if (slot_ != nullptr) slot_->Clear();
    }
    if (cancelled_) return T(absl::CancelledError("await cancelled"));
    if constexpr (std::is_copy_constructible_v<T>) {
      if (!take_) return *state_->result;
    }
    return std::move(*state_->result);
  }

 private:
  friend class Future;

  void Link() {
    prev_ = state_->last_waiter;
    if (prev_ != nullptr) {
      prev_->next_ = this;
    } else {
      state_->first_waiter = this;
    }
    state_->last_waiter = this;
    linked_ = true;
  }

  void Unlink() {
    if (!linked_) return;
    (prev_ != nullptr ? prev_->next_ : state_->first_waiter) = next_;
    (next_ != nullptr ? next_->prev_ : state_->last_waiter) = prev_;
    prev_ = next_ = nullptr;
    linked_ = false;
  }

  void ScheduleResume() {
    resume_ = state_->loop->CallSoon([this] { awaiting_.resume(); });
  }

  std::shared_ptr<State> state_;
  bool take_;
  bool cancelled_ = false;
  bool suspended_ = false;
  bool linked_ = false;
  Awaiter* prev_ = nullptr;
  Awaiter* next_ = nullptr;
  std::coroutine_handle<> awaiting_;
  CancelSlot* slot_ = nullptr;
  Handle resume_;
};

// What EventLoop::RunUntilComplete runs: a Future as it is (task.h adds an
// overload that spawns a Task). Found by argument-dependent lookup.
template <StatusLike T>
Future<T> AsFuture(EventLoop&, Future<T> future) {
  return future;
}

template <class Awaitable>
auto EventLoop::RunUntilComplete(Awaitable awaitable) {
  auto future = AsFuture(*this, std::move(awaitable));
  using Result = typename decltype(future)::value_type;
  if (!RunUntil([&future] { return future.IsDone(); })) {
    return Result(absl::FailedPreconditionError(
        "the event loop stopped before the task completed"));
  }
  return future.TakeResult();
}

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_FUTURE_H_
