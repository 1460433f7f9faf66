#ifndef SLUICE_TRANSPORTS_TRANSPORT_LAYER_H_
#define SLUICE_TRANSPORTS_TRANSPORT_LAYER_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/transport.h"
#include "transports/transport_core.h"

namespace sluice {

// A transport stacked on another (Twisted's TLSMemoryBIOProtocol, asyncio's
// SSLProtocol, Envoy's transport sockets): the protocol of the transport
// below it and a transport to the protocol above it. TLS is one; a user's
// framing or accounting layer can be another, written against this class.
//
// Ownership: the transport below owns the layer (it is its protocol), the
// layer owns the protocol above. ConnectionLost travels up inside the
// lower transport's: the layer's protocol gets it, exactly once, before the
// lower ConnectionLost returns, and the whole stack is destroyed together
// when the root transport is (one deferred deletion). A layer's own failure
// (ForceClose: a callback that throws, a protocol error) aborts the layer
// below and is what its protocol is told when the loss arrives.
//
// What this base does for every layer: read pauses of the protocol above
// pause the layer below (reason kUpperLayer) unless the layer itself needs
// to read (NeedsToRead); the layer below's pause becomes the write-pause
// reason kLowerTransport; GetWriteBufferSize counts the layer's own buffer
// plus everything below; addresses and the fd come from below.
class TransportLayer : public StreamTransportCore, public Protocol {
 public:
  ~TransportLayer() override;

  // Puts `layer`, made without a protocol, between `lower` and its protocol,
  // which the layer adopts (StartTls). The protocol is told nothing: it had
  // its ConnectionMade from `lower`, goes on through the layer (it must
  // write to the layer from now on) and gets its ConnectionLost from it.
  // The read pauses it set on `lower` and the write pause it was told of
  // move up with it. The layer's ConnectionMade(lower) runs inside. The
  // protocol must not be a layer itself (it holds on to `lower`).
  // kFailedPrecondition if `lower` is closing.
  static absl::Status Insert(Transport& lower,
                             std::unique_ptr<TransportLayer> layer);

  // The transport below: null before its ConnectionMade and after its
  // ConnectionLost.
  Transport* lower() const { return lower_; }

  // Transport (the side facing the protocol above).
  bool IsClosing() const override {
    return closing_ || lower_ == nullptr || lower_->IsClosing();
  }
  size_t GetWriteBufferSize() const override {
    return buffer_.accounted() +
           (lower_ != nullptr ? lower_->GetWriteBufferSize() : 0);
  }
  std::optional<SocketAddress> PeerAddress() const override {
    return lower_ != nullptr ? lower_->PeerAddress() : std::nullopt;
  }
  std::optional<SocketAddress> LocalAddress() const override {
    return lower_ != nullptr ? lower_->LocalAddress() : std::nullopt;
  }
  int Fd() const override { return lower_ != nullptr ? lower_->Fd() : -1; }
  // A layer that adds a kind answers for it and calls this for the rest.
  const void* QueryExtraInfo(ExtraInfoId id) const override {
    return lower_ != nullptr ? lower_->QueryExtraInfo(id) : nullptr;
  }

  // Protocol (the side facing the transport below). A layer that overrides
  // one of these calls the base's version.
  void ConnectionMade(Transport& lower) override;
  void PauseWriting() override { AddWritePause(WritePause::kLowerTransport); }
  void ResumeWriting() override {
    RemoveWritePause(WritePause::kLowerTransport);
  }
  void ConnectionHandedOver() override;
  void ConnectionLost(const absl::Status& status) override;

 protected:
  // `protocol` is null for a layer made to be Insert-ed.
  TransportLayer(EventLoop& loop, std::unique_ptr<Protocol> protocol)
      : StreamTransportCore(loop, std::move(protocol)) {}

  // The transport below is up (`lower()` is set): start the layer's own
  // work. The default makes the connection above at once (a pass-through);
  // TLS makes it when its handshake is done.
  virtual void OnLowerConnected() { MakeConnection(); }
  // Whether the layer must keep reading below although the protocol above
  // paused reading (a handshake, close_notify, a key update).
  virtual bool NeedsToRead() const { return false; }

  // Hands bytes for the protocol above to it, now or, while it has paused
  // reading, when it resumes (in order, with the EOF after them).
  void DeliverUp(std::string_view data);
  void DeliverEofUp();
  // Re-applies the pause of the layer below after NeedsToRead changed.
  void UpdateLowerReading();

  std::string Describe() const override;
  void ReadingChanged() override;
  void OnForceClose(const absl::Status& status) override;
  void ScheduleConnectionLost(absl::Status status) override;
  void OnConnectionLost() override {}

 private:
  void DeliverPending();

  Transport* lower_ = nullptr;
  bool lower_paused_by_us_ = false;
  // What the protocol above has not taken yet (it paused reading).
  std::string pending_;
  bool eof_pending_ = false;
  Handle deliver_pending_;
  bool pending_scheduled_ = false;
  // The status the protocol above is told when the loss arrives from
  // below: the layer's own failure, if it had one.
  std::optional<absl::Status> loss_;
};

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_TRANSPORT_LAYER_H_
