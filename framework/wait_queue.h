#ifndef SLUICE_FRAMEWORK_WAIT_QUEUE_H_
#define SLUICE_FRAMEWORK_WAIT_QUEUE_H_

#include <coroutine>
#include <cstddef>
#include <utility>

#include "absl/status/status.h"
#include "framework/cancellation.h"
#include "framework/event_loop.h"

namespace sluice {

// Coroutines waiting for an event that someone else signals, with a status
// (the drain waiters of a stream, a reader waiting for data). Loop-affine.
//
//   absl::Status woken = co_await queue.Wait();
//
// completes with the status given to WakeAll, or kCancelled when the
// waiting task is cancelled first. Resumption happens from the loop, never
// inside WakeAll. A waiter whose coroutine is destroyed leaves the queue.
// The queue must outlive its waiters.
class WaitQueue {
 public:
  explicit WaitQueue(EventLoop& loop) : loop_(loop) {}
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;

  class Awaiter {
   public:
    explicit Awaiter(WaitQueue& queue) : queue_(queue) {}
    // Completes at once with `status`, without waiting.
    Awaiter(WaitQueue& queue, absl::Status status)
        : queue_(queue), result_(std::move(status)), ready_(true) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter();

    bool await_ready() const noexcept { return ready_; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> awaiting) {
      return Suspend(awaiting, CancelSlotOf(awaiting));
    }
    absl::Status await_resume();

   private:
    friend class WaitQueue;
    bool Suspend(std::coroutine_handle<> awaiting, CancelSlot* slot);
    void Unlink();
    void Wake(const absl::Status& status);

    WaitQueue& queue_;
    std::coroutine_handle<> awaiting_;
    CancelSlot* slot_ = nullptr;
    Handle resume_;
    absl::Status result_;
    Awaiter* prev_ = nullptr;
    Awaiter* next_ = nullptr;
    bool linked_ = false;
    bool suspended_ = false;
    bool ready_ = false;
  };

  Awaiter Wait() { return Awaiter(*this); }

  // Wakes every current waiter with `status`, in the order they came.
  void WakeAll(const absl::Status& status = absl::OkStatus());

  bool empty() const { return first_ == nullptr; }

 private:
  EventLoop& loop_;
  Awaiter* first_ = nullptr;
  Awaiter* last_ = nullptr;
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_WAIT_QUEUE_H_
