#ifndef SLUICE_FRAMEWORK_CANCELLATION_H_
#define SLUICE_FRAMEWORK_CANCELLATION_H_

#include <coroutine>
#include <utility>

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
    if (handler_ != nullptr) {
      // Taken out first: the handler may install a new one.
      Handler handler = std::exchange(handler_, nullptr);
      handler(argument_);
    } else {
      pending_ = true;
    }
  }

  // Returns whether a cancellation request was pending, and clears it.
  bool TakePending() { return std::exchange(pending_, false); }

  // A function and its argument (the awaiter, the frame), not a closure:
  // every cancellable suspension installs one and clears it, so this is two
  // stores rather than a type-erased callable's construction and teardown.
  using Handler = void (*)(void* argument);
  void Install(Handler handler, void* argument) {
    handler_ = handler;
    argument_ = argument;
  }
  void Clear() { handler_ = nullptr; }

 private:
  Handler handler_ = nullptr;
  void* argument_ = nullptr;
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
