#ifndef SLUICE_PROTOCOLS_STREAMS_STREAM_STATE_H_
#define SLUICE_PROTOCOLS_STREAMS_STREAM_STATE_H_

// Internal to the streams adapter: the state a StreamReader, a StreamWriter
// and their StreamReaderProtocol share. The protocol may go (with its
// transport, after ConnectionLost) while coroutines still hold the reader
// and writer, hence shared ownership; the transport is reached only through
// `transport`, which ConnectionLost clears.

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/transport.h"
#include "framework/wait_queue.h"

namespace sluice::streams_internal {

class StreamState {
 public:
  StreamState(EventLoop& loop, size_t limit)
      : loop_(loop), limit_(limit), data_waiter_(loop), drain_waiters_(loop),
        closed_(loop) {}

  EventLoop& loop() const { return loop_; }
  size_t limit() const { return limit_; }

  // The transport while connected; null from ConnectionLost on.
  Transport* transport() const { return transport_; }

  // Reader side.
  std::string_view buffered() const {
    return std::string_view(buffer_).substr(start_);
  }
  size_t buffered_size() const { return buffer_.size() - start_; }
  // Drops `n` bytes from the front and resumes a paused transport once the
  // buffer is down to the limit.
  void Consume(size_t n);
  bool eof() const { return eof_; }
  const absl::Status& exception() const { return exception_; }
  // Waits until data, EOF or an exception arrive. kFailedPrecondition if
  // another coroutine already waits (asyncio allows one reader at a time).
  // An awaitable, not a Task: no coroutine frame per wait.
  WaitQueue::Awaiter WaitForData(const char* caller);

  // Writer side.
  bool write_paused() const { return write_paused_; }
  bool connection_lost() const { return connection_lost_; }
  // What a writer gets once the connection is gone: the loss status, or
  // kUnavailable "connection closed" after a clean close.
  absl::Status LostError() const;
  WaitQueue& drain_waiters() { return drain_waiters_; }
  Future<absl::Status> closed() const { return closed_; }

  // Fed by the protocol.
  void ConnectionMade(Transport& transport) { transport_ = &transport; }
  void FeedData(std::string_view data);
  void FeedEof();
  void SetException(const absl::Status& status);
  void PauseWriting() { write_paused_ = true; }
  void ResumeWriting();
  void ConnectionLost(const absl::Status& status);

 private:
  EventLoop& loop_;
  const size_t limit_;
  Transport* transport_ = nullptr;
  std::string buffer_;
  size_t start_ = 0;  // Bytes of buffer_ already consumed.
  bool eof_ = false;
  absl::Status exception_;
  bool reading_paused_ = false;
  WaitQueue data_waiter_;
  bool write_paused_ = false;
  bool connection_lost_ = false;
  absl::Status lost_status_;
  WaitQueue drain_waiters_;
  Future<absl::Status> closed_;
};

}  // namespace sluice::streams_internal

#endif  // SLUICE_PROTOCOLS_STREAMS_STREAM_STATE_H_
