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
#include "transports/socket_transport.h"
#include "transports/testing/socket_flavours.h"
#include "transports/testing/socket_peer.h"
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
  // The transports at the bottom of each stack, until their ConnectionLost.
  // The near one only over the in-memory pair, where it tells whether the
  // peer's bytes have arrived; over sockets the far socket's queue does.
  MemoryTransport* near_root = nullptr;
  Transport* far_root = nullptr;
  bool over_sockets = false;
  bool tcp = false;
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

// Between the far socket and the far TLS stack: keeps FarState::far_root
// while that socket lives.
class RootWatch final : public Protocol {
 public:
  RootWatch(std::shared_ptr<FarState> state, std::unique_ptr<Protocol> stack)
      : state_(std::move(state)), stack_(std::move(stack)) {}
  void ConnectionMade(Transport& transport) override {
    state_->far_root = &transport;
    stack_->ConnectionMade(transport);
  }
  void DataReceived(std::string_view data) override {
    stack_->DataReceived(data);
  }
  bool EofReceived() override { return stack_->EofReceived(); }
  void PauseWriting() override { stack_->PauseWriting(); }
  void ResumeWriting() override { stack_->ResumeWriting(); }
  void ConnectionLost(const absl::Status& status) override {
    stack_->ConnectionLost(status);
    state_->far_root = nullptr;
  }

 private:
  std::shared_ptr<FarState> state_;
  std::unique_ptr<Protocol> stack_;
};

class TlsPeer final : public Peer {
 public:
  TlsPeer(std::shared_ptr<FarState> state, std::optional<SocketAddress> local,
          std::optional<SocketAddress> remote)
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
    if (state_->tls == nullptr || state_->far_root == nullptr) return true;
    const bool flushed =
        state_->unsent.empty() && state_->tls->GetWriteBufferSize() == 0;
    if (!state_->over_sockets) {
      // In memory, bytes a paused transport has not taken are queued there.
      return state_->near_root == nullptr || flushed ||
             !state_->near_root->IsReading();
    }
    if (!flushed || !state_->tcp) return flushed;
    // TCP: and acknowledged, i.e. in the near socket's receive queue.
    return AllSentAcknowledged(state_->far_root->Fd());
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
  // TCP only: an RST from the far socket, under its TLS layers.
  void Reset() override {
    if (!state_->tcp) {
      ADD_FAILURE() << "only the TCP flavour resets";
      return;
    }
    if (state_->far_root == nullptr) return;
    linger abortive{1, 0};
    setsockopt(state_->far_root->Fd(), SOL_SOCKET, SO_LINGER, &abortive,
               sizeof(abortive));
    state_->closed = true;
    state_->far_root->Abort();
  }
  std::optional<SocketAddress> LocalAddress() const override { return local_; }
  std::optional<SocketAddress> RemoteAddress() const override {
    return remote_;
  }

 private:
  std::shared_ptr<FarState> state_;
  std::optional<SocketAddress> local_;
  std::optional<SocketAddress> remote_;
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

// A peer whose close_notify goes unanswered gives up soon and drops the
// connection, as a socket peer that closed resets one that keeps writing.
constexpr TlsOptions kFarOptions = {.server_name = "localhost",
                                    .shutdown_timeout = absl::Milliseconds(300)};

// TLS stacks on the two ends of a connected socket pair.
absl::StatusOr<std::unique_ptr<Peer>> ConnectOverSockets(
    EventLoop& loop, std::unique_ptr<Protocol> protocol, int layers,
    bool tcp) {
  absl::StatusOr<ConnectedSockets> sockets =
      tcp ? ConnectTcpSockets() : ConnectUnixSockets();
  if (!sockets.ok()) return sockets.status();
  const Contexts& contexts = TestContexts();
  auto state = std::make_shared<FarState>();
  state->over_sockets = true;
  state->tcp = tcp;
  auto peer = std::make_unique<TlsPeer>(state,
                                        SocketAddress::LocalOf(sockets->client),
                                        SocketAddress::PeerOf(sockets->client));
  SocketTransport::Create(
      loop, sockets->client,
      std::make_unique<RootWatch>(
          state, Wrap(loop, contexts.client, kFarOptions,
                      std::make_unique<FarProtocol>(state), layers)));
  SocketTransport::Create(
      loop, sockets->accepted,
      Wrap(loop, contexts.server, {}, std::move(protocol), layers),
      sockets->client_address);
  return peer;
}

std::string NameOf(std::string root, int layers) {
  for (int i = 0; i < layers; ++i) root = "Tls_" + root;
  return root;
}

void CheckTlsExtraInfo(Transport& transport, Peer& peer) {
  const TlsInfo* info = transport.GetExtraInfo<TlsInfo>();
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->version, "TLSv1.3");
  EXPECT_EQ(info->server_name, "localhost");
  // Addresses come from below, through every layer.
  ASSERT_TRUE(transport.PeerAddress().has_value());
  ASSERT_TRUE(peer.LocalAddress().has_value());
  EXPECT_EQ(*transport.PeerAddress(), *peer.LocalAddress());
}

}  // namespace

TransportFactory TlsOverTcp(int layers) {
  return TransportFactory{
      .name = NameOf("Tcp", layers),
      .connect =
          [layers](EventLoop& loop, std::unique_ptr<Protocol> protocol) {
            return ConnectOverSockets(loop, std::move(protocol), layers,
                                      /*tcp=*/true);
          },
      .supports_reset = true,
      .supports_half_close = false,
      .has_fd = true,
      .check_extra_info = CheckTlsExtraInfo};
}

TransportFactory TlsOverUnix() {
  return TransportFactory{
      .name = NameOf("Unix", 1),
      .connect =
          [](EventLoop& loop, std::unique_ptr<Protocol> protocol) {
            return ConnectOverSockets(loop, std::move(protocol), 1,
                                      /*tcp=*/false);
          },
      .supports_reset = false,
      .supports_half_close = false,
      .has_fd = true,
      .check_extra_info = CheckTlsExtraInfo};
}

TransportFactory TlsOverMemoryPair(int layers) {
  TransportFactory factory;
  factory.name = NameOf("MemoryPair", layers);
  factory.check_extra_info = CheckTlsExtraInfo;
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
        Wrap(loop, contexts.client, kFarOptions,
             std::make_unique<FarProtocol>(state), layers),
        std::move(ours), std::move(theirs));
    state->near_root = near_root;
    state->far_root = far_root;
    return std::make_unique<TlsPeer>(state, there, here);
  };
  return factory;
}

}  // namespace sluice::transport_testing
