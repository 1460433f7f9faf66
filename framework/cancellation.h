#ifndef SLUICE_FRAMEWORK_CANCELLATION_H_
#define SLUICE_FRAMEWORK_CANCELLATION_H_

#include <coroutine>
#include <utility>

#include "absl/functional/any_invocable.h"

namespace sluice {

// Where a coroutine's current await point listens for cancellation.
//
// Every Task owns one. An awaitable that can be interrupted installs a
// handler when it suspends and clears it when it resumes; Cancel() runs that
// handler once (which arranges for the await to resume with kCancelled). A
// request that arrives while no handler is installed (the task is running,
// or waits on something that cannot be interrupted) stays pending and is
// taken by the next cancellable await, as asyncio delivers a pending
// CancelledError at the task's next step.
class CancelSlot {
 public:
  CancelSlot() = default;
  CancelSlot(const CancelSlot&) = delete;
  CancelSlot& operator=(const CancelSlot&) = delete;

  void Cancel() {
    if (handler_) {
      // Moved out first: the handler may install a new one.
      auto handler = std::move(handler_);
      handler_ = nullptr;
      handler();
    } else {
      pending_ = true;
    }
  }

  // Returns whether a cancellation request was pending, and clears it.
  bool TakePending() { return std::exchange(pending_, false); }

  void Install(absl::AnyInvocable<void()> handler) {
    handler_ = std::move(handler);
  }
  void Clear() { handler_ = nullptr; }

 private:
  absl::AnyInvocable<void()> handler_;
  bool pending_ = false;
};

// The CancelSlot of the coroutine behind `h`, or nullptr when its promise
// type has none (a coroutine type other than Task).
template <class Promise>
CancelSlot* CancelSlotOf(std::coroutine_handle<Promise> h) {
  if constexpr (requires { h.promise().cancel_slot(); }) {
    return &h.promise().cancel_slot();
  } else {
    return nullptr;
  }
}

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_CANCELLATION_H_
