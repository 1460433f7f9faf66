#include "transports/testing/tls_flavour.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/transport.h"
#include "gtest/gtest.h"
#include "transports/memory_transport.h"
#include "transports/tls/testing/test_pki.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice::transport_testing {
namespace {

struct Contexts {
  TlsContext client;
  TlsContext server;
};

const Contexts& TestContexts() {
  static const Contexts* contexts =
      new Contexts{.client = tls_testing::ClientContext(),
                   .server = tls_testing::ServerContext()};
  return *contexts;
}

// What the far end learns; shared with its protocol, which goes with its
// connection.
struct FarState {
  Transport* tls = nullptr;  // The far TLS transport while connected.
  MemoryTransport* near_root = nullptr;  // Until its ConnectionLost.
  MemoryTransport* far_root = nullptr;   // Likewise.
  std::string unsent;  // Written before the far handshake finished.
  bool eof_requested = false;
  bool shutdown_requested = false;
  bool closed = false;
  std::string received;
  bool saw_eof = false;
  absl::Status error;
};

class FarProtocol final : public Protocol {
 public:
  explicit FarProtocol(std::shared_ptr<FarState> state)
      : state_(std::move(state)) {}
  void ConnectionMade(Transport& transport) override {
    // What the test asked of the peer before its handshake finished.
    state_->tls = &transport;
    if (!state_->unsent.empty()) transport.Write(std::exchange(state_->unsent, ""));
    if (state_->eof_requested) transport.WriteEof();
    if (state_->shutdown_requested) transport.Close();
  }
  void DataReceived(std::string_view data) override {
    state_->received.append(data);
  }
  // Answers close_notify with its own, as TLS peers do (OpenSSL's s_server,
  // Python's ssl).
  bool EofReceived() override {
    state_->saw_eof = true;
    return false;
  }
  void ConnectionLost(const absl::Status& status) override {
    if (!status.ok()) state_->error = status;
    state_->tls = nullptr;
  }

 private:
  std::shared_ptr<FarState> state_;
};

class TlsPeer final : public Peer {
 public:
  TlsPeer(std::shared_ptr<FarState> state, SocketAddress local,
          SocketAddress remote)
      : state_(std::move(state)), local_(local), remote_(remote) {}

  void Write(std::string_view data) override {
    if (state_->closed) return;
    if (state_->tls != nullptr) {
      state_->tls->Write(data);
    } else {
      state_->unsent.append(data);
    }
  }
  // Its close_notify; it goes on reading.
  void ShutdownWrite() override {
    if (state_->tls != nullptr) {
      state_->tls->WriteEof();
    } else {
      state_->eof_requested = true;
    }
  }
  // At the bottom of the far stack, as a socket peer stops reading its
  // socket: it works at once, during the far handshake too.
  void StopReading() override {
    if (state_->far_root != nullptr) state_->far_root->PauseReading();
  }
  void StartReading() override {
    if (state_->far_root != nullptr) state_->far_root->ResumeReading();
  }
  const std::string& received() const override { return state_->received; }
  bool saw_eof() const override { return state_->saw_eof; }
  absl::Status error() const override { return state_->error; }
  bool AllWritesDelivered() override {
    return state_->tls == nullptr || state_->near_root == nullptr ||
           (state_->unsent.empty() && state_->tls->GetWriteBufferSize() == 0) ||
           !state_->near_root->IsReading();
  }
  void Close() override {
    if (state_->closed) return;
    state_->closed = true;
    if (state_->tls != nullptr) {
      state_->tls->Close();
    } else {
      state_->shutdown_requested = true;
    }
  }
  void Reset() override { ADD_FAILURE() << "the in-memory pair has no reset"; }
  std::optional<SocketAddress> LocalAddress() const override { return local_; }
  std::optional<SocketAddress> RemoteAddress() const override {
    return remote_;
  }

 private:
  std::shared_ptr<FarState> state_;
  SocketAddress local_;
  SocketAddress remote_;
};

std::unique_ptr<Protocol> Wrap(EventLoop& loop, const TlsContext& context,
                               TlsOptions options,
                               std::unique_ptr<Protocol> protocol, int layers) {
  for (int i = 0; i < layers; ++i) {
    protocol = TlsTransport::Create(loop, context, options, std::move(protocol))
                   .value();
  }
  return protocol;
}

}  // namespace

TransportFactory TlsOverMemoryPair(int layers) {
  TransportFactory factory;
  factory.name = "MemoryPair";
  for (int i = 0; i < layers; ++i) factory.name = "Tls_" + factory.name;
  factory.supports_reset = false;
  factory.supports_half_close = false;
  factory.has_fd = false;
  factory.connect = [layers](EventLoop& loop, std::unique_ptr<Protocol> protocol)
      -> absl::StatusOr<std::unique_ptr<Peer>> {
    const Contexts& contexts = TestContexts();
    SocketAddress here = SocketAddress::FromIp("127.0.0.1", 1000).value();
    SocketAddress there = SocketAddress::FromIp("127.0.0.1", 2000).value();
    auto state = std::make_shared<FarState>();
    MemoryTransport::Options ours;
    ours.local_address = here;
    ours.peer_address = there;
    ours.on_lost = [state] { state->near_root = nullptr; };
    MemoryTransport::Options theirs;
    theirs.local_address = there;
    theirs.peer_address = here;
    theirs.on_lost = [state] { state->far_root = nullptr; };
    auto [near_root, far_root] = ConnectInMemory(
        loop,
        Wrap(loop, contexts.server, {}, std::move(protocol), layers),
        // A peer whose close_notify goes unanswered gives up soon and
        // drops the connection, as a socket peer that closed resets one
        // that keeps writing.
        Wrap(loop, contexts.client,
             {.server_name = "localhost",
              .shutdown_timeout = absl::Milliseconds(300)},
             std::make_unique<FarProtocol>(state), layers),
        std::move(ours), std::move(theirs));
    state->near_root = near_root;
    state->far_root = far_root;
    return std::make_unique<TlsPeer>(state, there, here);
  };
  return factory;
}

}  // namespace sluice::transport_testing
