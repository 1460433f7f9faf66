#ifndef SLUICE_PROTOCOLS_STREAMS_STREAM_STATE_H_
#define SLUICE_PROTOCOLS_STREAMS_STREAM_STATE_H_

// Internal to the streams adapter: the state a StreamReader, a StreamWriter
// and their StreamReaderProtocol share. The protocol may go (with its
// transport, after ConnectionLost) while coroutines still hold the reader
// and writer, hence shared ownership; the transport is reached only through
// `transport`, which ConnectionLost clears.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/transport.h"
#include "framework/wait_queue.h"

namespace sluice::streams_internal {

class StreamState;

// Large read buffers, recycled per thread. A string that a read handed over
// whole (StreamState::TakeFront) and that StreamWriter::Write(std::string&&)
// has finished with comes back here, so that the next large read lands in
// memory that is allocated, sized and in cache: a fresh buffer costs a
// zero-fill and, as malloc returns memory to the system between reads,
// page faults. Netty's pooled buffers, for std::string.
class ReadBufferPool {
 public:
  // The most recently given buffer with a capacity of `min_capacity` to
  // twice that, or an empty string. Its contents are garbage.
  static std::string Take(size_t min_capacity);
  // Keeps `buffer` if it is a size reads use, dropping the oldest buffers
  // beyond kMaxBytes.
  static void Give(std::string&& buffer);

  static constexpr size_t kMinCapacity = 16 * 1024;
  static constexpr size_t kMaxCapacity = 512 * 1024;
  // Enough for every connection of one loop iteration's reads to be in
  // flight at once (100 connections of 100 KiB messages need ~13 MiB; with
  // 16 buffers, most reads got fresh memory and the streams echo cost 1.5x
  // the Protocol echo's CPU).
  static constexpr size_t kMaxBytes = 16 * 1024 * 1024;
};

// What one StreamReader call needs before it can complete. A waiting read
// is woken once, when it can finish, so it never loops through the event
// loop for data that is not yet enough.
class ReadRequest {
 public:
  enum class Kind {
    kSome,     // Read(n): up to n bytes, waiting for at least one.
    kToEof,    // Read(-1): everything up to EOF.
    kExactly,  // ReadExactly(n).
    kUntil,    // ReadUntil(separator).
    kLine,     // ReadLine(): ReadUntil("\n") with asyncio's error handling.
  };

  ReadRequest(Kind kind, size_t size, std::string separator = {})
      : kind_(kind), size_(size), separator_(std::move(separator)) {}

  Kind kind() const { return kind_; }
  // Read(n) and ReadExactly(n): n.
  size_t size() const { return size_; }

  // The method's name, for error messages.
  const char* name() const;
  // Whether Take can complete now: enough data, EOF or an error are there.
  bool Ready(const StreamState& state);
  // Consumes and returns the result; after Ready() returned true, with no
  // data consumed since (the reader is exclusive while a read waits).
  absl::StatusOr<std::string> Take(StreamState& state);

 private:
  absl::StatusOr<std::string> TakeUntil(StreamState& state);

  Kind kind_;
  size_t size_;
  std::string separator_;
  // ReadUntil: where the next search starts (bytes before it cannot begin
  // the separator), and where the separator was found.
  size_t search_from_ = 0;
  size_t found_ = std::string::npos;
};

class StreamState {
 public:
  // A `limit` of 0 fails every read with kInvalidArgument (asyncio refuses
  // it with ValueError).
  StreamState(EventLoop& loop, size_t limit);

  EventLoop& loop() const { return loop_; }
  size_t limit() const { return limit_; }

  // The transport while connected; null from ConnectionLost on.
  Transport* transport() const { return transport_; }

  // Reader side.
  std::string_view buffered() const {
    return std::string_view(buffer_.data() + start_, end_ - start_);
  }
  size_t buffered_size() const { return end_ - start_; }
  // Drops `n` bytes from the front and resumes a paused transport once the
  // buffer is down to the limit.
  void Consume(size_t n);
  // Removes and returns the first `n` bytes; the whole buffer is handed
  // over without a copy when that is what is taken.
  std::string TakeFront(size_t n);
  bool eof() const { return eof_; }
  const absl::Status& exception() const { return exception_; }

  // The read in progress, from the moment it waits until it has resumed;
  // asyncio allows one reader at a time.
  const ReadRequest* reader() const { return reader_; }
  // `request` waits: woken through data_waiter() once Ready. A paused
  // transport reads again, or a read needing more than the buffer may hold
  // would wait forever.
  void BeginRead(ReadRequest& request);
  void EndRead(const ReadRequest& request);
  WaitQueue& data_waiter() { return data_waiter_; }

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
  // The transport receives straight into the reader's buffer
  // (BufferedProtocol): no copy between the socket and a Read's result.
  // `size_hint` > 0: that many bytes are waiting (a layer delivering what
  // it holds); 0: a socket read, sized by what reads have been returning.
  std::span<char> GetBuffer(size_t size_hint);
  // Wakes a waiting read once the data lets it finish; like EOF, errors
  // and drains, it resumes from the loop, never inside the call.
  void BufferUpdated(size_t size);
  void FeedEof();
  void SetException(const absl::Status& status);
  void PauseWriting() { write_paused_ = true; }
  void ResumeWriting();
  void ConnectionLost(const absl::Status& status);
  // The protocol was replaced (SetProtocol) or destroyed before
  // ConnectionLost: the state lifts its read pause (if the transport is
  // still alive: not when the protocol dies with it), lets go of the
  // transport, and fails what waits, and everything later, with `why`.
  void Detach(const absl::Status& why, bool transport_alive);

 private:
  bool ReaderWaits() const { return reader_ != nullptr && !data_waiter_.empty(); }
  size_t NextReadSize(size_t size_hint) const;
  void AdaptReadSize(size_t received);
  void MaybePauseReading();
  void MaybeResumeReading();
  void ResumeReadingIfPaused();

  EventLoop& loop_;
  const size_t limit_;
  Transport* transport_ = nullptr;
  // Unread bytes are buffer_[start_, end_); the transport receives into
  // buffer_[end_, size()). std::string zero-fills what it grows by (C++20
  // has no uninitialized resize), once per byte of the buffer's life, and
  // a large read takes the whole string without a copy (TakeFront).
  std::string buffer_;
  size_t start_ = 0;
  size_t end_ = 0;
  // How much a socket read asks for: it grows when a read fills what was
  // lent and shrinks after reads that used half of it or less (Netty's
  // AdaptiveRecvByteBufAllocator), so that small messages keep a small
  // buffer and large ones are received in few reads.
  // Socket reads ask for kMinReadSize..kMaxReadSize bytes (the largest is
  // what a Protocol's DataReceived gets at most).
  static constexpr size_t kMinReadSize = 2 * 1024;
  static constexpr size_t kMaxReadSize = 256 * 1024;
  size_t read_size_ = 4 * 1024;
  int short_reads_ = 0;
  bool lent_for_socket_ = false;
  size_t lent_ = 0;
  bool eof_ = false;
  absl::Status exception_;
  bool reading_paused_ = false;
  ReadRequest* reader_ = nullptr;
  WaitQueue data_waiter_;
  bool write_paused_ = false;
  bool connection_lost_ = false;
  absl::Status lost_status_;
  WaitQueue drain_waiters_;
  Future<absl::Status> closed_;
};

}  // namespace sluice::streams_internal

#endif  // SLUICE_PROTOCOLS_STREAMS_STREAM_STATE_H_
