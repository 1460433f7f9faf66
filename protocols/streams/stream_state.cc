#include "protocols/streams/stream_state.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "protocols/streams/stream_errors.h"

namespace sluice::streams_internal {

const char* ReadRequest::name() const {
  switch (kind_) {
    case Kind::kSome:
    case Kind::kToEof:
      return "Read()";
    case Kind::kExactly:
      return "ReadExactly()";
    case Kind::kUntil:
      return "ReadUntil()";
    case Kind::kLine:
      return "ReadLine()";
  }
  return "a read";
}

bool ReadRequest::Ready(const StreamState& state) {
  if (!state.exception().ok()) return true;
  switch (kind_) {
    case Kind::kSome:
      return size_ == 0 || state.buffered_size() > 0 || state.eof();
    case Kind::kToEof:
      return state.eof();
    case Kind::kExactly:
      return state.buffered_size() >= size_ || state.eof();
    case Kind::kUntil:
    case Kind::kLine: {
      std::string_view buffered = state.buffered();
      found_ = buffered.find(separator_, search_from_);
      if (found_ != std::string_view::npos) return true;
      search_from_ = buffered.size() + 1 > separator_.size()
                         ? buffered.size() + 1 - separator_.size()
                         : 0;
      // The limit counts the data without the separator (asyncio).
      return search_from_ > state.limit() || state.eof();
    }
  }
  return true;
}

absl::StatusOr<std::string> ReadRequest::Take(StreamState& state) {
  if (!state.exception().ok()) return state.exception();
  switch (kind_) {
    case Kind::kSome:
      return state.TakeFront(std::min(size_, state.buffered_size()));
    case Kind::kToEof:
      return state.TakeFront(state.buffered_size());
    case Kind::kExactly:
      if (state.buffered_size() < size_) {
        return IncompleteReadError(state.TakeFront(state.buffered_size()),
                                   size_);
      }
      return state.TakeFront(size_);
    case Kind::kUntil:
    case Kind::kLine:
      return TakeUntil(state);
  }
  return absl::InternalError("unknown read");
}

absl::StatusOr<std::string> ReadRequest::TakeUntil(StreamState& state) {
  const bool line = kind_ == Kind::kLine;
  // Data may have arrived between the wake-up and now: look again, so that
  // an over-long line is dropped only up to its separator, as asyncio does
  // with what is buffered when it looks.
  if (found_ == std::string::npos) Ready(state);
  if (found_ != std::string::npos && found_ <= state.limit()) {
    return state.TakeFront(found_ + separator_.size());
  }
  if (found_ != std::string::npos || search_from_ > state.limit()) {
    const bool separator_found = found_ != std::string::npos;
    const size_t consumed = separator_found ? found_ : search_from_;
    // ReadUntil leaves the data to the caller; ReadLine drops the line,
    // through its newline when it is there.
    if (line) {
      state.Consume(separator_found ? found_ + 1 : state.buffered_size());
    }
    return LimitOverrunError(
        separator_found ? "Separator is found, but chunk is longer than limit"
                        : "Separator is not found, and chunk exceed the limit",
        consumed);
  }
  // EOF without the separator.
  std::string partial = state.TakeFront(state.buffered_size());
  if (line) return partial;
  return IncompleteReadError(partial, std::nullopt);
}

StreamState::StreamState(EventLoop& loop, size_t limit)
    : loop_(loop),
      limit_(limit),
      data_waiter_(loop),
      drain_waiters_(loop),
      closed_(loop) {
  if (limit_ == 0) exception_ = InvalidLimitError();
}

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
  MaybeResumeReading();
}

std::string StreamState::TakeFront(size_t n) {
  // Handing over the buffer saves a copy, but the next data then needs a
  // new buffer: worth it for large reads only, where the copy costs more
  // than an allocation. Small reads copy into a string from malloc's
  // per-thread cache and the buffer keeps its capacity. Never when the
  // buffer is mostly spare capacity, which would stay with the caller.
  constexpr size_t kHandOverMin = 16 * 1024;
  if (n >= kHandOverMin && start_ == 0 && n == buffer_.size() &&
      buffer_.capacity() <= 2 * n) {
    std::string taken = std::exchange(buffer_, std::string());
    MaybeResumeReading();
    return taken;
  }
  std::string taken(buffered().substr(0, n));
  Consume(n);
  return taken;
}

void StreamState::MaybeResumeReading() {
  if (buffered_size() <= limit_) ResumeReadingIfPaused();
}

void StreamState::ResumeReadingIfPaused() {
  if (reading_paused_ && transport_ != nullptr) {
    reading_paused_ = false;
    transport_->ResumeReadingFor(ReadPause::kStreamReader);
  }
}

void StreamState::BeginRead(ReadRequest& request) {
  reader_ = &request;
  ResumeReadingIfPaused();
}

void StreamState::EndRead(const ReadRequest& request) {
  if (reader_ == &request) reader_ = nullptr;
}

absl::Status StreamState::LostError() const {
  if (!lost_status_.ok()) return lost_status_;
  return absl::UnavailableError("connection closed");
}

void StreamState::FeedData(std::string_view data) {
  if (data.empty()) return;
  buffer_.append(data);
  if (ReaderWaits()) {
    // A waiting read that still needs more keeps the transport reading.
    if (!reader_->Ready(*this)) return;
    data_waiter_.WakeAll();
  }
  MaybePauseReading();
}

void StreamState::MaybePauseReading() {
  if (transport_ != nullptr && !reading_paused_ &&
      buffered_size() > 2 * limit_) {
    reading_paused_ = true;
    transport_->PauseReadingFor(ReadPause::kStreamReader);
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

void StreamState::Detach(const absl::Status& why, bool transport_alive) {
  if (connection_lost_ || transport_ == nullptr) return;
  // The reader's pause is its own: the next protocol must not inherit it.
  if (transport_alive) ResumeReadingIfPaused();
  transport_ = nullptr;
  connection_lost_ = true;
  lost_status_ = why;
  SetException(why);
  drain_waiters_.WakeAll(why);
  closed_.SetResult(why);
}

}  // namespace sluice::streams_internal
