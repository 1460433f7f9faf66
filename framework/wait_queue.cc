#include "framework/wait_queue.h"

namespace sluice {

WaitQueue::Awaiter::~Awaiter() {
  if (!suspended_) return;
  // The waiting coroutine is destroyed while it waits.
  Unlink();
  resume_.Cancel();
  if (slot_ != nullptr) slot_->Clear();
}

bool WaitQueue::Awaiter::Suspend(std::coroutine_handle<> awaiting,
                                 CancelSlot* slot) {
  if (slot != nullptr && slot->TakePending()) {
    result_ = absl::CancelledError("wait cancelled");
    return false;
  }
  awaiting_ = awaiting;
  slot_ = slot;
  suspended_ = true;
  prev_ = queue_.last_;
  (prev_ != nullptr ? prev_->next_ : queue_.first_) = this;
  queue_.last_ = this;
  linked_ = true;
  if (slot_ != nullptr) {
    slot_->Install(
        [](void* self) {
          static_cast<Awaiter*>(self)->Wake(
              absl::CancelledError("wait cancelled"));
        },
        this);
  }
  return true;
}

absl::Status WaitQueue::Awaiter::await_resume() {
  if (suspended_) {
    suspended_ = false;
    if (slot_ != nullptr) slot_->Clear();
  }
  return result_;
}

void WaitQueue::Awaiter::Unlink() {
  if (!linked_) return;
  (prev_ != nullptr ? prev_->next_ : queue_.first_) = next_;
  (next_ != nullptr ? next_->prev_ : queue_.last_) = prev_;
  prev_ = next_ = nullptr;
  linked_ = false;
}

void WaitQueue::Awaiter::Wake(const absl::Status& status) {
  if (!linked_) return;  // Already woken: one resumption only.
  Unlink();
  // A cancellation from now on is for the next await.
  if (slot_ != nullptr) slot_->Clear();
  result_ = status;
  resume_ = queue_.loop_.CallSoon([this] { awaiting_.resume(); });
}

void WaitQueue::WakeAll(const absl::Status& status) {
  while (first_ != nullptr) first_->Wake(status);
}

}  // namespace sluice
