#ifndef SLUICE_PROTOCOLS_STREAMS_STREAM_READER_H_
#define SLUICE_PROTOCOLS_STREAMS_STREAM_READER_H_

#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/wait_queue.h"
#include "protocols/streams/stream_state.h"

namespace sluice {

// The reading half of a stream connection (asyncio.StreamReader). A cheap
// handle: copies share one stream, which stays valid after the connection
// is gone (reads then return what is left, then EOF or the error).
//
// Data is buffered as it arrives. When more than 2 x limit bytes are
// waiting, the transport stops reading until the buffer is back to the
// limit (default 64 KiB), so a slow consumer bounds memory.
//
// Each read returns a ReadAwaiter: `co_await` it (or Spawn it). A read
// that can complete does so without suspending or allocating; one that
// waits is woken once, when it can finish. One read may be in progress at
// a time: another gets kFailedPrecondition. A read cancelled while waiting
// returns kCancelled and leaves the buffer as it was.
class StreamReader {
 public:
  explicit StreamReader(std::shared_ptr<streams_internal::StreamState> state)
      : state_(std::move(state)) {}

  // Each completes with absl::StatusOr<std::string>.
  class ReadAwaiter;

  // Up to `n` bytes, waiting only if none are buffered; "" at EOF. With
  // n < 0, everything up to EOF.
  ReadAwaiter Read(int64_t n = -1);
  // Exactly `n` bytes; at EOF first, IncompleteReadError (stream_errors.h)
  // carrying the bytes that were there.
  ReadAwaiter ReadExactly(int64_t n);
  // Bytes up to and including `separator`. LimitOverrunError if it is not
  // within the limit (the data stays buffered), IncompleteReadError at EOF
  // without it.
  ReadAwaiter ReadUntil(std::string separator = "\n");
  // A line with its "\n", or the last unterminated bytes at EOF, or "" at
  // EOF. A line over the limit is dropped (up to its newline, when there is
  // one) and reported as LimitOverrunError.
  ReadAwaiter ReadLine();

  // Bytes received and not yet read.
  size_t BufferedSize() const { return state_->buffered_size(); }
  // EOF was received and everything was read.
  bool AtEof() const { return state_->eof() && state_->buffered_size() == 0; }
  // The error the connection ended with, OK if none.
  absl::Status Exception() const { return state_->exception(); }

 private:
  std::shared_ptr<streams_internal::StreamState> state_;
};

class StreamReader::ReadAwaiter {
 public:
  ReadAwaiter(std::shared_ptr<streams_internal::StreamState> state,
              streams_internal::ReadRequest request)
      : state_(std::move(state)), request_(std::move(request)) {}
  // A read rejected before it starts (an invalid argument).
  ReadAwaiter(std::shared_ptr<streams_internal::StreamState> state,
              absl::Status rejected);
  // Movable until awaited (Spawn and WithTimeout take it by value).
  ReadAwaiter(ReadAwaiter&& other) noexcept;
  ReadAwaiter& operator=(ReadAwaiter&&) = delete;
  ~ReadAwaiter();

  bool await_ready();
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> awaiting) {
    state_->BeginRead(request_);
    waiter_.emplace(state_->data_waiter());
    return waiter_->await_suspend(awaiting);
  }
  absl::StatusOr<std::string> await_resume();

 private:
  // Keeps the stream alive across the wait, whatever happens to the reader.
  std::shared_ptr<streams_internal::StreamState> state_;
  streams_internal::ReadRequest request_;
  std::optional<absl::StatusOr<std::string>> result_;
  std::optional<WaitQueue::Awaiter> waiter_;
};

}  // namespace sluice

#endif  // SLUICE_PROTOCOLS_STREAMS_STREAM_READER_H_
