#ifndef SLUICE_FRAMEWORK_TRANSPORT_H_
#define SLUICE_FRAMEWORK_TRANSPORT_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"

namespace sluice {

// A transport's write watermarks (asyncio's get_write_buffer_limits, but
// named so the order cannot be confused).
struct WriteBufferLimits {
  size_t low;
  size_t high;
};

// Why a transport is not reading. The reasons are independent (Envoy's
// counted readDisable, Twisted's producer membrane): a transport reads only
// while none is set, so the streams reader's limit and an application that
// pauses and resumes never undo each other.
enum class ReadPause : uint32_t {
  // PauseReading() / ResumeReading(): the application.
  kApplication = 1u << 0,
  // The streams adapter: more than 2 x limit bytes buffered, unread.
  kStreamReader = 1u << 1,
  // A layer stacked above this transport (TLS) that has stopped reading.
  kUpperLayer = 1u << 2,
};

// Names a kind of typed extra information (see BaseTransport::GetExtraInfo)
// without RTTI: one id per type, the address of a per-type tag.
class ExtraInfoId {
 public:
  template <class Info>
  static ExtraInfoId Of() {
    // Writable, so that identical-constant folding cannot merge two tags.
    static char tag;
    return ExtraInfoId(&tag);
  }
  bool operator==(const ExtraInfoId& other) const = default;

 private:
  explicit ExtraInfoId(const void* tag) : tag_(tag) {}
  const void* tag_;
};

// What every transport offers (asyncio.BaseTransport plus its write-side
// flow control). Loop-affine. The loop owns live transports: a transport
// stays valid until its protocol's ConnectionLost has returned and is
// destroyed after that, by the loop.
class BaseTransport {
 public:
  virtual ~BaseTransport() = default;

  virtual EventLoop& loop() const = 0;

  // Stops reading, flushes buffered data, then closes; the protocol gets
  // ConnectionLost(OK) once the buffer is empty. Idempotent.
  virtual void Close() = 0;
  // Closes now, discarding buffered data; ConnectionLost(OK) follows on a
  // later iteration. Idempotent.
  virtual void Abort() = 0;
  // True once Close, Abort or a fatal error began closing the transport.
  virtual bool IsClosing() const = 0;

  // Typed extra information (asyncio's get_extra_info).
  virtual std::optional<SocketAddress> PeerAddress() const = 0;
  virtual std::optional<SocketAddress> LocalAddress() const = 0;
  // The socket, or -1 (in-memory transports, or after close).
  virtual int Fd() const = 0;

  // Typed extra information beyond addresses and the fd (asyncio's
  // get_extra_info('ssl_object') and the like, gRPC's QueryExtension): a
  // layer answers for the kinds it adds (TLS: its TlsInfo) and forwards the
  // rest to the transport below. Null if no layer of the stack has `Info`;
  // valid while the transport is.
  template <class Info>
  const Info* GetExtraInfo() const {
    return static_cast<const Info*>(QueryExtraInfo(ExtraInfoId::Of<Info>()));
  }
  // What GetExtraInfo asks: the `Info` for `id`, or null.
  virtual const void* QueryExtraInfo(ExtraInfoId /*id*/) const {
    return nullptr;
  }

  // Write flow control. With neither given: high 64 KiB, low high/4; only
  // `low`: high = 4 * low; only `high`: low = high / 4. kInvalidArgument if
  // low > high. The new limits apply at once: a buffer already above the
  // new high pauses the protocol before this returns.
  virtual absl::Status SetWriteBufferLimits(
      std::optional<size_t> high = std::nullopt,
      std::optional<size_t> low = std::nullopt) = 0;
  virtual WriteBufferLimits GetWriteBufferLimits() const = 0;
  // Bytes buffered in user space, not yet handed to the kernel.
  virtual size_t GetWriteBufferSize() const = 0;
};

// A stream transport: TCP, Unix, TLS, in-memory (asyncio.Transport).
class Transport : public BaseTransport {
 public:
  // Sends `data`, or buffers what the kernel does not take at once; never
  // blocks, and never calls DataReceived or ConnectionLost from inside (a
  // send error closes the transport and reports through ConnectionLost on
  // a later iteration). May call PauseWriting. The bytes are copied as
  // needed: the caller may reuse its memory right away. Writes after
  // Close, Abort or WriteEof are dropped and reported to the loop's error
  // handler (once per transport).
  virtual void Write(std::string_view data) = 0;
  // Writes several buffers in order, in one system call where possible.
  virtual void Writev(std::span<const std::string_view> buffers) = 0;

  // Closes the sending side once the buffer is flushed; reading goes on.
  virtual void WriteEof() = 0;
  virtual bool CanWriteEof() const = 0;

  // Stops (resumes) calling DataReceived for `reason`; reading goes on only
  // once no reason is left. Idempotent per reason; ignored while closing.
  // While paused no data reaches the protocol, including bytes the
  // transport already holds (asyncio's pause_reading).
  virtual void PauseReadingFor(ReadPause reason) = 0;
  virtual void ResumeReadingFor(ReadPause reason) = 0;
  // The application's reason (asyncio's pause_reading / resume_reading).
  void PauseReading() { PauseReadingFor(ReadPause::kApplication); }
  void ResumeReading() { ResumeReadingFor(ReadPause::kApplication); }
  // Whether the transport delivers data: not closing, not past the peer's
  // EOF, no pause reason set.
  virtual bool IsReading() const = 0;
  // Whether `reason` is among the read-pause reasons set.
  virtual bool IsReadingPausedFor(ReadPause reason) const = 0;

  // Whether the protocol is between PauseWriting and ResumeWriting.
  virtual bool IsWritingPaused() const = 0;

  // Hands the connection to another protocol (asyncio's set_protocol, used
  // by StartTls); returns the previous one. The new protocol gets no
  // ConnectionMade. If the transport is paused for writing, the new
  // protocol's PauseWriting runs before this returns, so that Pause and
  // Resume alternate for it from the start (cpython#109051). The previous
  // protocol gets ConnectionHandedOver, inside this call, and nothing after
  // it: the transport never touches the returned protocol again, so the
  // caller may destroy it at once, even from inside one of that protocol's
  // callbacks (provided that callback touches nothing of itself
  // afterwards). A null protocol is refused: reported to the loop, nothing
  // changes, and null is returned.
  virtual std::unique_ptr<Protocol> SetProtocol(
      std::unique_ptr<Protocol> protocol) = 0;
  // For a layer that goes between this transport and its protocol
  // (StartTls; see TransportLayer::Insert): `layer` becomes the protocol
  // and the previous one is returned, told nothing, for the layer to adopt:
  // to it the connection goes on, through the layer. The layer is told
  // nothing either: it inherits the write-pause state the previous protocol
  // was told. Null is refused as by SetProtocol.
  virtual std::unique_ptr<Protocol> ReplaceProtocolWithLayer(
      std::unique_ptr<Protocol> layer) = 0;
  virtual Protocol& GetProtocol() const = 0;
};

// A datagram endpoint (asyncio.DatagramTransport).
class DatagramTransport : public BaseTransport {
 public:
  // Sends one datagram to `to`, or to the connected peer when `to` is
  // empty. A connected endpoint refuses another address (kInvalidArgument
  // reported through ErrorReceived); errors from the kernel go to
  // ErrorReceived and the endpoint stays open.
  virtual void SendTo(std::string_view data,
                      std::optional<SocketAddress> to = std::nullopt) = 0;
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_TRANSPORT_H_
