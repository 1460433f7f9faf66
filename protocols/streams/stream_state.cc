#include "protocols/streams/stream_state.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

#include "protocols/streams/stream_errors.h"

namespace sluice::streams_internal {
namespace {

struct PooledBuffers {
  std::vector<std::string> buffers;  // Oldest first.
  size_t bytes = 0;
};

PooledBuffers& ThreadPool() {
  thread_local PooledBuffers pool;
  return pool;
}

}  // namespace

std::string ReadBufferPool::Take(size_t min_capacity) {
  PooledBuffers& pool = ThreadPool();
  std::vector<std::string>& buffers = pool.buffers;
  for (auto it = buffers.rbegin(); it != buffers.rend(); ++it) {
    // Not much larger either: a read takes its buffer whole only when the
    // data fills half of it or more.
    if (it->capacity() >= min_capacity && it->capacity() <= 2 * min_capacity) {
      std::string buffer = std::move(*it);
      buffers.erase(std::next(it).base());
      pool.bytes -= buffer.capacity();
      return buffer;
    }
  }
  return std::string();
}

void ReadBufferPool::Give(std::string&& buffer) {
  if (buffer.capacity() < kMinCapacity || buffer.capacity() > kMaxCapacity) {
    return;
  }
  PooledBuffers& pool = ThreadPool();
  size_t dropped = 0;
  while (pool.bytes + buffer.capacity() > kMaxBytes) {
    pool.bytes -= pool.buffers[dropped++].capacity();
  }
  pool.buffers.erase(pool.buffers.begin(), pool.buffers.begin() + dropped);
  pool.bytes += buffer.capacity();
  pool.buffers.push_back(std::move(buffer));
}

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
  if (start_ == end_) start_ = end_ = 0;
  MaybeResumeReading();
}

std::string StreamState::TakeFront(size_t n) {
  // Handing over the buffer saves a copy, but the next data then needs a
  // new buffer: worth it for large reads only, where the copy costs more
  // than an allocation and a zero-fill. Small reads copy into a string
  // from malloc's per-thread cache and the buffer is kept. Never when the
  // buffer is mostly spare capacity, which would stay with the caller
  // (GetBuffer sizes large buffers to what reads return, within 2x, and
  // socket reads adapt to the data within 2x again).
  constexpr size_t kHandOverMin = 16 * 1024;
  if (n >= kHandOverMin && start_ == 0 && n == end_ &&
      buffer_.capacity() <= 4 * n) {
    buffer_.resize(n);  // Shrinks in place.
    std::string taken = std::exchange(buffer_, std::string());
    end_ = 0;
    MaybeResumeReading();
    return taken;
  }
  std::string taken(buffered().substr(0, n));
  Consume(n);
  return taken;
}

size_t StreamState::NextReadSize(size_t size_hint) const {
  size_t size = size_hint > 0 ? std::min(size_hint, kMaxReadSize) : read_size_;
  if (!ReaderWaits()) return size;
  switch (reader_->kind()) {
    case ReadRequest::Kind::kSome:
      // No more than the read takes, so that it can take the whole buffer.
      return std::min(size, reader_->size());
    case ReadRequest::Kind::kExactly:
      return std::max(size, std::min(reader_->size() - buffered_size(),
                                     kMaxReadSize));
    default:
      return size;
  }
}

std::span<char> StreamState::GetBuffer(size_t size_hint) {
  const size_t wanted = NextReadSize(size_hint);
  const size_t unread = end_ - start_;
  if (unread == 0) {
    // A large read lands in a buffer of about its size, which the read can
    // then take whole; a small one keeps a small buffer. Buffers of other
    // sizes go back to the pool, and one of the right size comes from it
    // when it has one.
    const size_t capacity = buffer_.capacity();
    const bool fits = wanted >= ReadBufferPool::kMinCapacity
                          ? capacity >= wanted && capacity <= 2 * wanted
                          : capacity <= 4 * std::max(wanted, kMinReadSize);
    if (!fits) {
      ReadBufferPool::Give(
          std::exchange(buffer_, ReadBufferPool::Take(wanted)));
    }
  }
  if (buffer_.size() - end_ < wanted) {
    // Move the unread bytes to the front when no more was consumed before
    // them than they are (each byte then moves at most once more), else
    // grow, geometrically (std::string's growth).
    if (start_ > 0 && start_ >= unread) {
      std::memmove(buffer_.data(), buffer_.data() + start_, unread);
      start_ = 0;
      end_ = unread;
    }
    if (buffer_.size() - end_ < wanted) buffer_.resize(end_ + wanted);
  }
  lent_for_socket_ = size_hint == 0;
  lent_ = wanted;
  return std::span<char>(buffer_.data() + end_, wanted);
}

void StreamState::AdaptReadSize(size_t received) {
  if (received >= lent_) {
    short_reads_ = 0;
    read_size_ = std::min(4 * read_size_, kMaxReadSize);
  } else if (received <= read_size_ / 2 && read_size_ > kMinReadSize) {
    if (++short_reads_ == 2) {
      short_reads_ = 0;
      read_size_ = std::max(read_size_ / 2, kMinReadSize);
    }
  } else {
    short_reads_ = 0;
  }
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

void StreamState::BufferUpdated(size_t size) {
  if (lent_for_socket_) AdaptReadSize(size);
  end_ += std::min(size, lent_);
  lent_ = 0;
  if (size == 0) return;
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
