#include "transports/testing/memory_flavours.h"

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

// The far end of a ConnectInMemory pair: the other transport, with a
// protocol that records what arrives.
struct PairState {
  std::string received;
  bool saw_eof = false;
  absl::Status error;
  bool closed = false;
  // Null once the other transport's ConnectionLost ran (it is gone then).
  MemoryTransport* other = nullptr;
  // The transport under test, likewise.
  MemoryTransport* ours = nullptr;
};

class PairPeerProtocol final : public Protocol {
 public:
  explicit PairPeerProtocol(std::shared_ptr<PairState> state)
      : state_(std::move(state)) {}
  void DataReceived(std::string_view data) override {
    state_->received.append(data);
  }
  // A socket peer may still write after the transport's FIN.
  bool EofReceived() override {
    state_->saw_eof = true;
    return true;
  }
  void ConnectionLost(const absl::Status& status) override {
    if (!status.ok()) state_->error = status;
    state_->other = nullptr;
  }

 private:
  std::shared_ptr<PairState> state_;
};

class PairPeer final : public Peer {
 public:
  PairPeer(std::shared_ptr<PairState> state, SocketAddress local,
           SocketAddress remote)
      : state_(std::move(state)), local_(local), remote_(remote) {}

  void Write(std::string_view data) override {
    if (state_->other != nullptr && !state_->closed) state_->other->Write(data);
  }
  void ShutdownWrite() override {
    if (state_->other != nullptr) state_->other->WriteEof();
  }
  void StopReading() override {
    if (state_->other != nullptr) state_->other->PauseReading();
  }
  void StartReading() override {
    if (state_->other != nullptr) state_->other->ResumeReading();
  }
  const std::string& received() const override { return state_->received; }
  bool saw_eof() const override { return state_->saw_eof; }
  absl::Status error() const override { return state_->error; }
  // Handed over once the other end's buffer is empty; held back there
  // while the transport under test does not read, as bytes wait in its
  // socket buffer.
  bool AllWritesDelivered() override {
    return state_->other == nullptr || state_->ours == nullptr ||
           state_->other->GetWriteBufferSize() == 0 ||
           !state_->ours->IsReading();
  }
  void Close() override {
    state_->closed = true;
    if (state_->other != nullptr) state_->other->Close();
  }
  void Reset() override { ADD_FAILURE() << "the in-memory pair has no reset"; }
  std::optional<SocketAddress> LocalAddress() const override { return local_; }
  std::optional<SocketAddress> RemoteAddress() const override {
    return remote_;
  }

 private:
  std::shared_ptr<PairState> state_;
  SocketAddress local_;
  SocketAddress remote_;
};

}  // namespace

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

TransportFactory MemoryPair() {
  TransportFactory factory;
  factory.name = "MemoryPair";
  factory.supports_reset = false;
  factory.has_fd = false;
  factory.connect = [](EventLoop& loop, std::unique_ptr<Protocol> protocol)
      -> absl::StatusOr<std::unique_ptr<Peer>> {
    SocketAddress here = SocketAddress::FromIp("127.0.0.1", 1000).value();
    SocketAddress there = SocketAddress::FromIp("127.0.0.1", 2000).value();
    auto state = std::make_shared<PairState>();
    MemoryTransport::Options ours;
    ours.local_address = here;
    ours.peer_address = there;
    ours.on_lost = [state] { state->ours = nullptr; };
    MemoryTransport::Options theirs;
    theirs.local_address = there;
    theirs.peer_address = here;
    auto [transport, other] =
        ConnectInMemory(loop, std::move(protocol),
                        std::make_unique<PairPeerProtocol>(state),
                        std::move(ours), std::move(theirs));
    state->ours = transport;
    state->other = other;
    return std::make_unique<PairPeer>(state, there, here);
  };
  return factory;
}

}  // namespace sluice::transport_testing
