#ifndef SLUICE_TRANSPORTS_TRANSPORT_CORE_H_
#define SLUICE_TRANSPORTS_TRANSPORT_CORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/read_pauses.h"
#include "framework/transport.h"
#include "framework/watermark_buffer.h"
#include "transports/protocol_call.h"

namespace sluice {

// Why a transport's protocol is paused for writing. The protocol sees one
// PauseWriting when the set becomes non-empty and one ResumeWriting when it
// empties, whatever the mix of reasons.
enum class WritePause : uint32_t {
  // The transport's own buffer is above its high watermark.
  kOwnBuffer = 1u << 0,
  // The transport below a layer paused the layer (TLS over TCP).
  kLowerTransport = 1u << 1,
  // The layer cannot send application data yet (a TLS handshake).
  kHandshake = 1u << 2,
};

// The lifecycle every transport carries, in one place (asyncio's
// _SelectorTransport, Twisted's abstract.FileDescriptor): the protocol and
// its guarded calls, ConnectionMade once and first, ConnectionLost once and
// last, closing and forced closing, the write buffer with its watermarks
// and the write-pause reasons, and the report of dropped writes. `Interface`
// is Transport or DatagramTransport, `P` its protocol.
//
// A root transport (one with an fd, or the in-memory one) is owned by the
// loop: it derives from LoopOwned, is started by AdoptAndStart and releases
// itself after ConnectionLost. A layer (Passthrough, TLS) is the protocol of
// the transport below it, owned by that transport, and delivers its own
// ConnectionLost inside the lower one's: see TransportLayer.
template <class Interface, class P>
class TransportCore : public Interface {
 public:
  // BaseTransport.
  EventLoop& loop() const override { return loop_; }
  bool IsClosing() const override { return closing_; }
  absl::Status SetWriteBufferLimits(std::optional<size_t> high,
                                    std::optional<size_t> low) override {
    return buffer_.SetLimits(high, low);
  }
  WriteBufferLimits GetWriteBufferLimits() const override {
    return buffer_.limits();
  }
  size_t GetWriteBufferSize() const override { return buffer_.accounted(); }

  // Whether the protocol is between PauseWriting and ResumeWriting.
  bool write_paused() const { return write_pauses_ != 0; }

  // The hard limit above high: a protocol that keeps writing past it (it
  // ignores PauseWriting, or its peer never reads) has the transport
  // closed with kResourceExhausted. 0 (the default): no limit.
  // kInvalidArgument unless above the high watermark.
  absl::Status SetWriteBufferOverflowLimit(size_t bytes) {
    return buffer_.SetOverflowLimit(bytes);
  }

 protected:
  TransportCore(EventLoop& loop, std::unique_ptr<P> protocol)
      : loop_(loop),
        protocol_(std::move(protocol)),
        buffer_(WatermarkBuffer::Callbacks{
            .above_high = [this] { AddWritePause(WritePause::kOwnBuffer); },
            .below_low = [this] { RemoveWritePause(WritePause::kOwnBuffer); },
            .above_overflow = [this] { BufferOverflowed(); }}) {}

  // Who the transport talks to, for messages ("127.0.0.1:80").
  virtual std::string Describe() const = 0;
  // ForceClose(status) ran (the buffer is already cleared): stop waiting
  // for I/O, fail what waits for the transport.
  virtual void OnForceClose(const absl::Status& /*status*/) {}
  // The protocol's ConnectionLost has returned (or was skipped because
  // ConnectionMade never ran): close the fd, unlink, release.
  virtual void OnConnectionLost() = 0;
  // How the loss reaches the protocol after ForceClose or a finished Close:
  // a root transport calls it on a later iteration (the default); a layer
  // when the layer below reports its own loss.
  virtual void ScheduleConnectionLost(absl::Status status) {
    loop_.CallSoon([this, status = std::move(status)] {
      DeliverConnectionLost(status);
    });
  }
  // ConnectionMade has run and the transport may start reading.
  virtual void StartReading() {}

  // Hands a new root transport to `loop` and schedules its start in
  // asyncio's order: ConnectionMade on the next iteration, then reading
  // (unless the protocol paused it meanwhile); a creator's waiter scheduled
  // afterwards comes last. A transport whose construction failed
  // (FailConstruction) gets ConnectionMade, then ConnectionLost(error).
  template <class T>
  static T& AdoptAndStart(EventLoop& loop, T* transport) {
    loop.Adopt(std::unique_ptr<LoopOwned>(transport));
    loop.CallSoon([transport] { transport->MakeConnection(); });
    loop.CallSoon([transport] {
      if (!transport->lost_) transport->StartReading();
    });
    return *transport;
  }

  // The constructor could not set the transport up: the failure is
  // delivered as ConnectionLost(status) right after ConnectionMade.
  void FailConstruction(absl::Status status) {
    start_error_ = std::move(status);
    closing_ = true;
  }

  // A root transport gives itself back to the loop after its loss: it is
  // destroyed at the end of the iteration.
  void ReleaseFromLoop(LoopOwned* self) { loop_.Release(self); }

  // Runs ConnectionMade once (a layer calls it when its connection is up).
  void MakeConnection() {
    if (connection_made_ || lost_) return;
    connection_made_ = true;
    if (!Call("protocol ConnectionMade() failed",
              [this] { protocol_->ConnectionMade(*this); })) {
      return;
    }
    if (!start_error_.ok()) {
      ForceClose(start_error_);
    } else {
      // Paused before the protocol was connected: it learns it now.
      TellWritePause();
    }
  }

  // Runs a protocol callback. One that throws is reported to the loop and
  // closes the transport with kInternal; returns false then.
  bool Call(const char* what, absl::FunctionRef<void()> callback) {
    absl::Status called =
        CallProtocol(loop_, what, [this] { return Describe(); }, callback);
    if (called.ok()) return true;
    ForceClose(called);
    return false;
  }

  // Closes now: the buffer is discarded, and ConnectionLost(status) follows
  // (see ScheduleConnectionLost). Idempotent.
  void ForceClose(const absl::Status& status) {
    if (lost_) return;
    lost_ = true;
    closing_ = true;
    buffer_.Clear();
    OnForceClose(status);
    ScheduleConnectionLost(status);
  }

  // A graceful close has finished flushing: ConnectionLost(OK) follows.
  // `now` (from the loop, when the last byte went) delivers it at once, as
  // asyncio does; otherwise on a later iteration.
  void FinishClose(bool now) {
    if (lost_) return;
    lost_ = true;
    if (now) {
      DeliverConnectionLost(absl::OkStatus());
    } else {
      ScheduleConnectionLost(absl::OkStatus());
    }
  }

  // Tells the protocol, once, that the connection is gone.
  void DeliverConnectionLost(const absl::Status& status) {
    if (connection_lost_delivered_) return;
    connection_lost_delivered_ = true;
    if (connection_made_) {
      // Reported if it throws; the transport is going anyway.
      CallProtocol(
          loop_, "protocol ConnectionLost() failed",
          [this] { return Describe(); },
          [&] { protocol_->ConnectionLost(status); })
          .IgnoreError();
    }
    OnConnectionLost();
  }

  // True (and reported once per transport) if bytes are written after the
  // transport stopped sending: Close, Abort, a fatal error, or `eof_sent`.
  bool DropWriteIfClosed(size_t size, bool eof_sent = false) {
    if (!closing_ && !eof_sent) return false;
    if (!dropped_write_reported_) {
      dropped_write_reported_ = true;
      loop_.ReportError(LoopError{
          "write dropped",
          absl::FailedPreconditionError(absl::StrCat(
              "dropped a write of ", size, " bytes to ", Describe(), " after ",
              closing_ ? "Close/Abort" : "WriteEof",
              " (further dropped writes are not reported)"))});
    }
    return true;
  }

  // Pause reasons: the protocol hears of the first and of the last.
  // Before ConnectionMade (a layer below pausing during a handshake) the
  // reasons are kept and the protocol hears of them once it is connected.
  void AddWritePause(WritePause reason) {
    write_pauses_ |= static_cast<uint32_t>(reason);
    TellWritePause();
  }
  void RemoveWritePause(WritePause reason) {
    if ((write_pauses_ & static_cast<uint32_t>(reason)) == 0) return;
    write_pauses_ &= ~static_cast<uint32_t>(reason);
    TellWritePause();
  }
  // Brings the protocol's view (what it was last told) to the reasons'
  // state: one PauseWriting or ResumeWriting per change, none before
  // ConnectionMade or after the loss. The view changes before the call, so
  // a callback that writes (and pauses or resumes again) stays in step.
  void TellWritePause() {
    if (lost_ || !connection_made_ || write_paused() == told_paused_) return;
    told_paused_ = write_paused();
    // Failures of PauseWriting and ResumeWriting are only reported (as in
    // asyncio): the state has changed all the same.
    CallProtocol(
        loop_,
        told_paused_ ? "protocol PauseWriting() failed"
                     : "protocol ResumeWriting() failed",
        [this] { return Describe(); },
        [this] {
          if (told_paused_) {
            protocol_->PauseWriting();
          } else {
            protocol_->ResumeWriting();
          }
        })
        .IgnoreError();
  }

  // The buffer passed its overflow limit: a protocol that ignored
  // PauseWriting, or a peer that never reads.
  void BufferOverflowed() {
    ForceClose(absl::ResourceExhaustedError(absl::StrCat(
        "write buffer to ", Describe(), " passed its overflow limit of ",
        buffer_.overflow_limit(), " bytes: the peer is not reading")));
  }

  EventLoop& loop_;
  std::unique_ptr<P> protocol_;
  WatermarkBuffer buffer_;
  uint32_t write_pauses_ = 0;
  bool told_paused_ = false;  // What the protocol was last told.
  absl::Status start_error_;
  bool connection_made_ = false;
  bool closing_ = false;  // Close, Abort or a fatal error began.
  bool lost_ = false;     // ConnectionLost is scheduled or ran.
  bool connection_lost_delivered_ = false;
  bool dropped_write_reported_ = false;
};

// The core of a stream transport: read-pause reasons, SetProtocol with its
// guarantees (see Transport::SetProtocol), WriteEof bookkeeping, and the
// delivery of received bytes to a Protocol or a BufferedProtocol.
class StreamTransportCore : public TransportCore<Transport, Protocol> {
 public:
  void PauseReadingFor(ReadPause reason) override {
    if (closing_) return;
    if (read_pauses_.Add(reason)) ReadingChanged();
  }
  void ResumeReadingFor(ReadPause reason) override {
    if (closing_) return;
    if (read_pauses_.Remove(reason)) ReadingChanged();
  }
  bool IsReading() const override {
    return read_pauses_.empty() && !closing_ && !read_eof_;
  }
  bool IsReadingPausedFor(ReadPause reason) const override {
    return read_pauses_.Has(reason);
  }
  bool IsWritingPaused() const override { return write_paused(); }
  std::unique_ptr<Protocol> SetProtocol(
      std::unique_ptr<Protocol> protocol) override;
  std::unique_ptr<Protocol> ReplaceProtocolWithLayer(
      std::unique_ptr<Protocol> layer) override;
  Protocol& GetProtocol() const override { return *protocol_; }

 protected:
  StreamTransportCore(EventLoop& loop, std::unique_ptr<Protocol> protocol)
      : TransportCore(loop, std::move(protocol)),
        buffered_(protocol_ != nullptr ? protocol_->AsBufferedProtocol()
                                       : nullptr) {}

  // The read-pause set went from empty to non-empty or back.
  virtual void ReadingChanged() {}

  // Hands `data` to the protocol: DataReceived, or a BufferedProtocol's
  // GetBuffer / BufferUpdated, the current protocol for every piece (one
  // may swap itself out in BufferUpdated). Returns how much was
  // delivered: all of it, unless reading stopped in the middle (the caller
  // keeps the rest) or a callback failed (the transport is closing).
  size_t DeliverData(std::string_view data);
  // The peer's EOF: EofReceived, then Close unless the protocol keeps the
  // transport half-open. Reading stops for good.
  void DeliverEof();
  // Asks a BufferedProtocol for memory to read `size_hint` bytes into (0:
  // any amount). An empty span is a protocol bug, like a callback that
  // throws: reported, and the transport closes with kInternal. Returns the
  // span, empty if the transport is closing now.
  std::span<char> LendBuffer(BufferedProtocol& buffered, size_t size_hint);

  // protocol_ if it lends its memory (kept in step by SetProtocol).
  BufferedProtocol* buffered_;
  ReadPauses read_pauses_;
  bool read_eof_ = false;       // The peer's EOF was delivered.
  bool eof_requested_ = false;  // WriteEof was called.
};

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_TRANSPORT_CORE_H_
