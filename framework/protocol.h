#ifndef SLUICE_FRAMEWORK_PROTOCOL_H_
#define SLUICE_FRAMEWORK_PROTOCOL_H_

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "framework/socket_address.h"

namespace sluice {

class Transport;
class DatagramTransport;
class BufferedProtocol;

// The callbacks every protocol receives (asyncio.BaseProtocol).
//
// A transport calls them on its loop, never from inside a call the protocol
// made into the transport, with these exceptions: PauseWriting may run
// inside Transport::Write (or SetWriteBufferLimits), when that call first
// lifts the buffer above the high watermark, and inside SetProtocol for the
// protocol it installs; SetProtocol also calls the previous protocol's
// ConnectionHandedOver. A callback that throws is reported to the loop's error handler
// and aborts the connection with kInternal, except PauseWriting and
// ResumeWriting, whose failures are only reported (as in asyncio).
class BaseProtocol {
 public:
  virtual ~BaseProtocol() = default;

  // Called exactly once, last. OK means a clean close (by either side, or
  // Abort); otherwise the error, e.g. kUnavailable for a peer reset. The
  // transport stays valid until this returns, and not after.
  virtual void ConnectionLost(const absl::Status& /*status*/) {}

  // The transport's write buffer rose above its high watermark: stop
  // writing until ResumeWriting. The two alternate strictly, Pause first.
  virtual void PauseWriting() {}
  // The write buffer fell to the low watermark or below.
  virtual void ResumeWriting() {}
};

// A stream protocol (asyncio.Protocol). Callback order, and no other:
// ConnectionMade -> DataReceived* -> EofReceived? -> ConnectionLost.
class Protocol : public BaseProtocol {
 public:
  // The connection is up. `transport` stays valid until ConnectionLost
  // returns.
  virtual void ConnectionMade(Transport& /*transport*/) {}

  // Bytes from the peer. `data` is valid only during the call: it is lent
  // from a receive buffer that every transport of the thread shares, which
  // nothing else uses while a DataReceived is on the stack (SendFile, for
  // one, reads files into a buffer of its own). Copy what you keep.
  virtual void DataReceived(std::string_view /*data*/) {}

  // The peer closed its sending side. Return true to keep the transport
  // half-open (the protocol closes it later, and may still write); false
  // closes it.
  virtual bool EofReceived() { return false; }

  // Transport::SetProtocol replaced this protocol: it gets no callback
  // after this one, and must let go of the transport, which is valid
  // during this call (and is the new protocol's now). Runs inside
  // SetProtocol; the protocol may be destroyed as soon as it returns.
  virtual void ConnectionHandedOver() {}

  // Non-null for protocols that receive into memory they lend.
  virtual BufferedProtocol* AsBufferedProtocol() { return nullptr; }
};

// A stream protocol that receives into memory it provides, saving a copy
// (asyncio.BufferedProtocol): ConnectionMade -> (GetBuffer ->
// BufferUpdated?)* -> EofReceived? -> ConnectionLost.
class BufferedProtocol : public Protocol {
 public:
  // Memory for the next read, at least 1 byte; `size_hint` is how much the
  // transport would like (0: any size). Valid until BufferUpdated or the
  // next GetBuffer. An empty span aborts the connection.
  virtual std::span<char> GetBuffer(size_t size_hint) = 0;
  // `size` bytes were written at the start of the last buffer.
  virtual void BufferUpdated(size_t size) = 0;

  // For transports that receive bytes, not reads (TLS, in-memory): copies
  // `data` through GetBuffer/BufferUpdated until all of it is delivered.
  void DataReceived(std::string_view data) final;
  BufferedProtocol* AsBufferedProtocol() final { return this; }
};

// A datagram protocol (asyncio.DatagramProtocol).
class DatagramProtocol : public BaseProtocol {
 public:
  virtual void ConnectionMade(DatagramTransport& /*transport*/) {}
  // One datagram; `data` is valid only during the call, lent like
  // DataReceived's (see there).
  virtual void DatagramReceived(std::string_view /*data*/,
                                const SocketAddress& /*from*/) {}
  // A send or receive failed without closing the endpoint, e.g. an ICMP
  // port-unreachable (kUnavailable) on a connected endpoint.
  virtual void ErrorReceived(const absl::Status& /*error*/) {}
};

// Makes one protocol per connection (servers) or for one connection
// (clients).
using ProtocolFactory = absl::AnyInvocable<std::unique_ptr<Protocol>()>;
using DatagramProtocolFactory =
    absl::AnyInvocable<std::unique_ptr<DatagramProtocol>()>;

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_PROTOCOL_H_
