#ifndef SLUICE_PROTOCOLS_STREAMS_STREAM_READER_H_
#define SLUICE_PROTOCOLS_STREAMS_STREAM_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/task.h"
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
// One coroutine may wait for data at a time: a second gets
// kFailedPrecondition. A read cancelled while waiting returns kCancelled
// and leaves the buffer as it was.
class StreamReader {
 public:
  explicit StreamReader(std::shared_ptr<streams_internal::StreamState> state)
      : state_(std::move(state)) {}

  // Up to `n` bytes, waiting only if none are buffered; "" at EOF. With
  // n < 0, everything up to EOF.
  Task<absl::StatusOr<std::string>> Read(int64_t n = -1);
  // Exactly `n` bytes; at EOF first, IncompleteReadError (stream_errors.h)
  // carrying the bytes that were there.
  Task<absl::StatusOr<std::string>> ReadExactly(int64_t n);
  // Bytes up to and including `separator`. LimitOverrunError if it is not
  // within the limit (the data stays buffered), IncompleteReadError at EOF
  // without it.
  Task<absl::StatusOr<std::string>> ReadUntil(std::string separator = "\n");
  // A line with its "\n", or the last unterminated bytes at EOF, or "" at
  // EOF. A line over the limit is dropped (up to its newline, when there is
  // one) and reported as LimitOverrunError.
  Task<absl::StatusOr<std::string>> ReadLine();

  // EOF was received and everything was read.
  bool AtEof() const { return state_->eof() && state_->buffered_size() == 0; }
  // The error the connection ended with, OK if none.
  absl::Status Exception() const { return state_->exception(); }

 private:
  std::shared_ptr<streams_internal::StreamState> state_;
};

}  // namespace sluice

#endif  // SLUICE_PROTOCOLS_STREAMS_STREAM_READER_H_
