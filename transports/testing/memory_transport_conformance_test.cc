// The Transport conformance suite, run against MemoryTransport driven by a
// test peer: the testing kit keeps the contracts of a real transport.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/transport.h"
#include "gtest/gtest.h"
#include "transports/memory_transport.h"
#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {
namespace {

// What the peer learns from the transport; shared with the transport's
// sinks, which may outlive the Peer (or the other way round).
struct PeerState {
  std::string received;
  bool saw_eof = false;
  bool closed = false;
  // The transport is gone after its ConnectionLost; the peer then only
  // reports what it saw.
  bool transport_gone = false;
};

class MemoryPeer final : public Peer {
 public:
  MemoryPeer(MemoryTransport& transport, std::shared_ptr<PeerState> state,
             SocketAddress local, SocketAddress remote)
      : transport_(&transport),
        state_(std::move(state)),
        local_(local),
        remote_(remote) {}

  void Write(std::string_view data) override {
    if (live() != nullptr && !state_->closed) live()->DeliverFromPeer(data);
  }
  void ShutdownWrite() override {
    if (live() != nullptr) live()->DeliverEofFromPeer();
  }
  void StopReading() override {
    if (live() != nullptr) live()->SetPeerReading(false);
  }
  void StartReading() override {
    if (live() != nullptr) live()->SetPeerReading(true);
  }
  const std::string& received() const override { return state_->received; }
  bool saw_eof() const override { return state_->saw_eof; }
  absl::Status error() const override { return absl::OkStatus(); }
  // Bytes go straight into the transport's incoming queue.
  bool AllWritesDelivered() override { return true; }
  void Close() override {
    ShutdownWrite();
    state_->closed = true;
  }
  void Reset() override {
    state_->closed = true;
    if (live() != nullptr) {
      live()->ResetFromPeer(
          absl::UnavailableError("connection reset by the in-memory peer"));
    }
  }
  std::optional<SocketAddress> LocalAddress() const override { return local_; }
  std::optional<SocketAddress> RemoteAddress() const override {
    return remote_;
  }

 private:
  MemoryTransport* live() const {
    return state_->transport_gone ? nullptr : transport_;
  }

  MemoryTransport* transport_;
  std::shared_ptr<PeerState> state_;
  SocketAddress local_;
  SocketAddress remote_;
};

TransportFactory Memory() {
  TransportFactory factory;
  factory.name = "Memory";
  factory.supports_reset = true;
  factory.has_fd = false;
  factory.connect = [](EventLoop& loop, std::unique_ptr<Protocol> protocol)
      -> absl::StatusOr<std::unique_ptr<Peer>> {
    SocketAddress here = SocketAddress::FromIp("127.0.0.1", 1000).value();
    SocketAddress there = SocketAddress::FromIp("127.0.0.1", 2000).value();
    auto state = std::make_shared<PeerState>();
    MemoryTransport::Options options;
    options.local_address = here;
    options.peer_address = there;
    options.on_sent = [state](std::string_view data) {
      if (!state->closed) state->received.append(data);
    };
    options.on_eof = [state] { state->saw_eof = true; };
    options.on_lost = [state] { state->transport_gone = true; };
    MemoryTransport& transport =
        MemoryTransport::Create(loop, std::move(protocol), std::move(options));
    return std::make_unique<MemoryPeer>(transport, state, there, here);
  };
  return factory;
}

INSTANTIATE_TEST_SUITE_P(MemoryTransport, TransportConformanceTest,
                         ::testing::Values(Memory()),
                         TransportConformanceTest::Name);

}  // namespace
}  // namespace sluice::transport_testing
