#include "protocols/streams/stream_state.h"

#include "absl/strings/str_cat.h"

namespace sluice::streams_internal {

void StreamState::Consume(size_t n) {
  start_ += n;
  if (start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  } else if (start_ > buffer_.size() / 2) {
    // Amortized compaction: each byte moves at most once more.
    buffer_.erase(0, start_);
    start_ = 0;
  }
  if (reading_paused_ && buffered_size() <= limit_ && transport_ != nullptr) {
    reading_paused_ = false;
    transport_->ResumeReading();
  }
}

WaitQueue::Awaiter StreamState::WaitForData(const char* caller) {
  if (!data_waiter_.empty()) {
    return WaitQueue::Awaiter(
        data_waiter_,
        absl::FailedPreconditionError(absl::StrCat(
            caller, " called while another coroutine is already waiting for "
                    "incoming data")));
  }
  // A reader that needs more than the buffer may hold must let the
  // transport read again, or it would wait forever.
  if (reading_paused_ && transport_ != nullptr) {
    reading_paused_ = false;
    transport_->ResumeReading();
  }
  return data_waiter_.Wait();
}

absl::Status StreamState::LostError() const {
  if (!lost_status_.ok()) return lost_status_;
  return absl::UnavailableError("connection closed");
}

void StreamState::FeedData(std::string_view data) {
  if (data.empty()) return;
  buffer_.append(data);
  data_waiter_.WakeAll();
  if (transport_ != nullptr && !reading_paused_ &&
      buffered_size() > 2 * limit_) {
    reading_paused_ = true;
    transport_->PauseReading();
  }
}

void StreamState::FeedEof() {
  eof_ = true;
  data_waiter_.WakeAll();
}

void StreamState::SetException(const absl::Status& status) {
  exception_ = status;
  data_waiter_.WakeAll(status);
}

void StreamState::ResumeWriting() {
  write_paused_ = false;
  drain_waiters_.WakeAll();
}

void StreamState::ConnectionLost(const absl::Status& status) {
  transport_ = nullptr;
  connection_lost_ = true;
  lost_status_ = status;
  if (status.ok()) {
    FeedEof();
  } else {
    SetException(status);
  }
  drain_waiters_.WakeAll(LostError());
  closed_.SetResult(status);
}

}  // namespace sluice::streams_internal
