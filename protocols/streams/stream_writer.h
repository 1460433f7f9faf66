#ifndef SLUICE_PROTOCOLS_STREAMS_STREAM_WRITER_H_
#define SLUICE_PROTOCOLS_STREAMS_STREAM_WRITER_H_

#include <coroutine>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/socket_address.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "framework/wait_queue.h"
#include "protocols/streams/stream_state.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice {

// The writing half of a stream connection (asyncio.StreamWriter). A cheap
// handle: copies share one stream. It may outlive the connection: then
// writes are dropped and Drain reports the error; it never touches a
// transport that is gone.
//
// Write never blocks and never fails: it hands the bytes to the transport,
// which sends what it can and buffers the rest. Back-pressure comes from
//
//   writer.Write(chunk);
//   if (absl::Status drained = co_await writer.Drain(); !drained.ok()) ...
//
// Drain returns at once while the transport's buffer is below its high
// watermark, and otherwise waits until it has drained to the low one
// (ResumeWriting), so a producer that drains after each write holds at most
// about the high watermark plus one write in memory per connection.
class StreamWriter {
 public:
  explicit StreamWriter(std::shared_ptr<streams_internal::StreamState> state)
      : state_(std::move(state)) {}

  void Write(std::string_view data);
  // The same; once the transport has the bytes, a large buffer goes back to
  // the reader's pool, so that an echo or a proxy that writes what it read,
  // `writer.Write(*std::move(data))`, receives into the same memory again
  // instead of allocating and zero-filling a new buffer per read.
  void Write(std::string&& data);
  void Write(const char* data) { Write(std::string_view(data)); }
  // Several buffers in order, one system call where possible.
  void Writelines(std::span<const std::string_view> buffers);
  void WriteEof();
  bool CanWriteEof() const;
  // Flushes, then closes (Transport::Close). Idempotent.
  void Close();
  bool IsClosing() const;
  // Completes once the connection is gone: OK after a clean close, else the
  // error it ended with.
  Future<absl::Status> WaitClosed() const { return state_->closed(); }

  // Waits for the transport's write buffer to drain (see the class
  // comment). The order of checks is asyncio's: the reader's error; a
  // closing transport yields once (so that a loss being reported is seen)
  // and then fails; a lost connection fails with its error (kUnavailable
  // "connection closed" after a clean close); not paused returns at once
  // without suspending; paused waits for ResumeWriting or the loss. Any
  // number of coroutines may drain at once.
  // An awaitable that completes without suspending or allocating when the
  // buffer is not paused. Spawn takes it too.
  class DrainAwaiter;
  DrainAwaiter Drain() const;
  // The same for callback code: `done` runs on the loop with the result.
  void Drain(absl::AnyInvocable<void(absl::Status)> done);

  // asyncio's StreamWriter.start_tls (STARTTLS): drains, then upgrades the
  // connection to TLS (TlsTransport::Upgrade), as a client or a server
  // according to `context`; the reader and this writer go through TLS from
  // then on (what the reader buffered before stays readable, in order).
  // Completes once the handshake has: OK, or why it failed (the connection
  // is closed then, and reads and drains fail with that error). Upgrade
  // once the peer has been told, before it sends its hello.
  //
  //   writer.Write("220 ready to start TLS\r\n");
  //   absl::Status secured = co_await writer.StartTls(context);
  Task<absl::Status> StartTls(const TlsContext& context,
                              TlsOptions options = {});

  // The transport while the connection lasts; null afterwards.
  Transport* transport() const { return state_->transport(); }
  std::optional<SocketAddress> PeerAddress() const;
  std::optional<SocketAddress> LocalAddress() const;

 private:
  std::shared_ptr<streams_internal::StreamState> state_;
};

class StreamWriter::DrainAwaiter {
 public:
  explicit DrainAwaiter(std::shared_ptr<streams_internal::StreamState> state)
      : state_(std::move(state)) {}
  // Movable until awaited (Spawn and WithTimeout take it by value).
  DrainAwaiter(DrainAwaiter&& other) noexcept
      : state_(std::move(other.state_)) {}
  DrainAwaiter& operator=(DrainAwaiter&&) = delete;

  bool await_ready();
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> awaiting) {
    if (yield_) {
      yield_once_.emplace(state_->loop(), absl::ZeroDuration());
      return yield_once_->await_suspend(awaiting);
    }
    resumed_.emplace(state_->drain_waiters());
    return resumed_->await_suspend(awaiting);
  }
  absl::Status await_resume();

 private:
  std::shared_ptr<streams_internal::StreamState> state_;
  absl::Status result_;
  bool yield_ = false;
  std::optional<EventLoop::SleepAwaiter> yield_once_;
  std::optional<WaitQueue::Awaiter> resumed_;
};

}  // namespace sluice

#endif  // SLUICE_PROTOCOLS_STREAMS_STREAM_WRITER_H_
