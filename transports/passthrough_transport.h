#ifndef SLUICE_TRANSPORTS_PASSTHROUGH_TRANSPORT_H_
#define SLUICE_TRANSPORTS_PASSTHROUGH_TRANSPORT_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/transport.h"
#include "transports/transport_layer.h"

namespace sluice {

// A layer that adds nothing (Envoy's PassthroughSocket, Netty's pass-through
// handler): bytes, EOF, pauses and closes go straight through. It proves
// that stacking keeps every Transport contract (the conformance suite runs
// over it, and over two of it) and is the skeleton of a real layer. It
// holds no buffer of its own, so its write-buffer limits are those of the
// transport below.
//
//   // A server whose connections each get a pass-through under the app:
//   auto factory = [&loop] {
//     return std::make_unique<PassthroughTransport>(
//         loop, std::make_unique<MyProtocol>());
//   };
class PassthroughTransport final : public TransportLayer {
 public:
  PassthroughTransport(EventLoop& loop, std::unique_ptr<Protocol> protocol)
      : TransportLayer(loop, std::move(protocol)) {}

  // Transport.
  void Close() override;
  void Abort() override { ForceClose(absl::OkStatus()); }
  absl::Status SetWriteBufferLimits(
      std::optional<size_t> high = std::nullopt,
      std::optional<size_t> low = std::nullopt) override;
  WriteBufferLimits GetWriteBufferLimits() const override;
  void Write(std::string_view data) override;
  void Writev(std::span<const std::string_view> buffers) override;
  void WriteEof() override;
  bool CanWriteEof() const override;

  // Protocol.
  void DataReceived(std::string_view data) override { DeliverUp(data); }
  bool EofReceived() override;
};

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_PASSTHROUGH_TRANSPORT_H_
