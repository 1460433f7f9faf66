#include "transports/tls/start_tls.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/protocol.h"
#include "framework/task.h"
#include "framework/timeout.h"
#include "framework/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transports/connection.h"
#include "transports/memory_transport.h"
#include "transports/server.h"
#include "transports/tls/testing/test_pki.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

// One end of a line protocol that switches to TLS (SMTP's STARTTLS); owned
// by the test, since the protocol goes with its connection.
struct Side {
  Transport* transport = nullptr;  // The top of the stack, while connected.
  std::string received;            // Everything delivered, in order.
  // Whether each line came over TLS.
  std::vector<std::pair<std::string, bool>> lines;
  int made = 0;
  int pauses = 0;
  int resumes = 0;
  std::optional<absl::Status> lost;
  // Runs for each complete line.
  absl::AnyInvocable<void(Side&, std::string_view line)> on_line;
  std::string partial;
};

class LineProtocol final : public Protocol {
 public:
  explicit LineProtocol(Side& side) : side_(side) {}
  void ConnectionMade(Transport& transport) override {
    side_.transport = &transport;
    ++side_.made;
  }
  void DataReceived(std::string_view data) override {
    side_.received.append(data);
    side_.partial.append(data);
    size_t end;
    while ((end = side_.partial.find('\n')) != std::string::npos) {
      std::string line = side_.partial.substr(0, end);
      side_.partial.erase(0, end + 1);
      side_.lines.emplace_back(
          line, side_.transport->GetExtraInfo<TlsInfo>() != nullptr);
      if (side_.on_line) side_.on_line(side_, line);
      if (side_.transport == nullptr) return;
    }
  }
  void PauseWriting() override { ++side_.pauses; }
  void ResumeWriting() override { ++side_.resumes; }
  void ConnectionLost(const absl::Status& status) override {
    side_.lost = status;
    side_.transport = nullptr;
  }

 private:
  Side& side_;
};

// The server's half of STARTTLS: answers "220" and upgrades, then echoes.
void ServeStartTls(const TlsContext& context, Side& side,
                   std::string_view line) {
  if (line == "STARTTLS") {
    side.transport->Write("220 ready\n");
    absl::StatusOr<TlsTransport*> tls =
        TlsTransport::Upgrade(*side.transport, context, {});
    ASSERT_TRUE(tls.ok()) << tls.status();
    side.transport = *tls;
  } else {
    side.transport->Write(absl::StrCat("echo: ", std::string(line), "\n"));
  }
}

class StartTlsTest : public ::testing::Test {
 protected:
  StartTlsTest()
      : server_context_(tls_testing::ServerContext()),
        client_context_(tls_testing::ClientContext()) {}

  void WatchErrors(EventLoop& loop) {
    loop.SetErrorHandler([this](const LoopError& e) {
      errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
    });
  }

  TlsContext server_context_;
  TlsContext client_context_;
  std::vector<std::string> errors_;
};

TEST_F(StartTlsTest, MidStreamInALineProtocolOverTcpOnBothSides) {
  std::unique_ptr<EventLoop> loop = EventLoop::Create().value();
  WatchErrors(*loop);
  Side server;
  server.on_line = [&](Side& side, std::string_view line) {
    ServeStartTls(server_context_, side, line);
  };
  absl::StatusOr<std::unique_ptr<Server>> listening =
      loop->RunUntilComplete(CreateServer(
          *loop, [&] { return std::make_unique<LineProtocol>(server); },
          "127.0.0.1", 0));
  ASSERT_TRUE(listening.ok()) << listening.status();
  const uint16_t port = (*listening)->addresses()[0].port();

  Side client;
  std::optional<Future<absl::Status>> ready;
  auto session = [&]() -> Task<absl::Status> {
    absl::StatusOr<Connection> connection = co_await CreateConnection(
        *loop, [&] { return std::make_unique<LineProtocol>(client); },
        "127.0.0.1", port);
    if (!connection.ok()) co_return connection.status();
    Future<absl::Status> got_ready(*loop);
    client.on_line = [got_ready](Side&, std::string_view line) mutable {
      if (line == "220 ready") got_ready.SetResult(absl::OkStatus());
    };
    client.transport->Write("HELLO\nSTARTTLS\n");
    co_await got_ready;
    // Braced in a co_await expression (see TlsOptions).
    absl::StatusOr<Transport*> tls = co_await StartTls(
        *client.transport, client_context_, {.server_name = "localhost"});
    if (!tls.ok()) co_return tls.status();
    client.transport = *tls;
    client.transport->Write("secret\n");
    co_return absl::OkStatus();
  };
  absl::Status done = loop->RunUntilComplete(session());
  ASSERT_TRUE(done.ok()) << done;
  ASSERT_TRUE(loop->RunUntil([&] { return client.lines.size() == 3; }));

  // The server read the plaintext lines before STARTTLS, the rest over TLS.
  ASSERT_EQ(server.lines.size(), 3u);
  EXPECT_EQ(server.lines[0], std::make_pair(std::string("HELLO"), false));
  EXPECT_EQ(server.lines[1], std::make_pair(std::string("STARTTLS"), false));
  EXPECT_EQ(server.lines[2], std::make_pair(std::string("secret"), true));
  EXPECT_EQ(client.received, "echo: HELLO\n220 ready\necho: secret\n");
  EXPECT_TRUE(client.lines[2].second);
  // One connection to each protocol throughout: no second ConnectionMade.
  EXPECT_EQ(server.made, 1);
  EXPECT_EQ(client.made, 1);
  const TlsInfo* info = client.transport->GetExtraInfo<TlsInfo>();
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->peer_subject, "CN=localhost");

  // Close goes through TLS: close_notify, and a clean end on both sides.
  client.transport->Close();
  ASSERT_TRUE(loop->RunUntil(
      [&] { return client.lost.has_value() && server.lost.has_value(); }));
  EXPECT_TRUE(client.lost->ok()) << *client.lost;
  EXPECT_TRUE(server.lost->ok()) << *server.lost;
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

// In memory, on virtual time: the server upgrades while paused for writing
// (its client is not reading), the client while it has paused reading.
class StartTlsInMemoryTest : public StartTlsTest {
 protected:
  StartTlsInMemoryTest()
      : loop_(EventLoop::Create(EventLoopOptions{.clock = &clock_}).value()) {
    WatchErrors(*loop_);
    auto [client_root, server_root] =
        ConnectInMemory(*loop_, std::make_unique<LineProtocol>(client_),
                        std::make_unique<LineProtocol>(server_));
    client_root_ = client_root;
    server_root_ = server_root;
    loop_->RunUntilIdle();
  }

  VirtualClock clock_;
  std::unique_ptr<EventLoop> loop_;
  Side client_;
  Side server_;
  MemoryTransport* client_root_;
  MemoryTransport* server_root_;
};

TEST_F(StartTlsInMemoryTest, KeepsAWritePauseAndTheProtocolsReadPause) {
  ASSERT_NE(server_.transport, nullptr);
  ASSERT_TRUE(server_.transport->SetWriteBufferLimits(16 * 1024).ok());
  // The client does not read: the server's backlog pauses it.
  client_.transport->PauseReading();
  const std::string backlog(256 * 1024, 'x');
  server_.transport->Write(absl::StrCat(backlog, "\n220 ready\n"));
  loop_->RunUntilIdle();
  ASSERT_EQ(server_.pauses, 1);

  absl::StatusOr<TlsTransport*> server_tls =
      TlsTransport::Upgrade(*server_.transport, server_context_, {});
  ASSERT_TRUE(server_tls.ok()) << server_tls.status();
  server_.transport = *server_tls;
  // Still paused, and not told so a second time.
  EXPECT_TRUE(server_.transport->IsWritingPaused());
  EXPECT_EQ(server_.pauses, 1);
  // Written during the handshake: sent once it is done.
  server_.transport->Write("secret\n");

  std::optional<Future<absl::Status>> client_handshake;
  client_.on_line = [&](Side& side, std::string_view line) {
    if (line != "220 ready") return;
    // Upgrades with reading paused: the handshake reads all the same,
    // application data waits for ResumeReading.
    side.transport->PauseReading();
    absl::StatusOr<TlsTransport*> tls = TlsTransport::Upgrade(
        *side.transport, client_context_, {.server_name = "localhost"});
    ASSERT_TRUE(tls.ok()) << tls.status();
    side.transport = *tls;
    client_handshake = (*tls)->Handshake();
  };
  client_.transport->ResumeReading();
  ASSERT_TRUE(loop_->RunUntil([&] {
    return client_handshake.has_value() && client_handshake->IsDone();
  }));
  ASSERT_TRUE(client_handshake->Result().ok()) << client_handshake->Result();
  ASSERT_TRUE(loop_->RunUntil([&] { return server_.resumes == 1; }));
  EXPECT_FALSE(server_.transport->IsWritingPaused());
  loop_->RunUntilIdle();
  // The TLS layer holds "secret" while the client's protocol has paused.
  EXPECT_EQ(client_.lines.size(), 2u);
  EXPECT_FALSE(client_.transport->IsReading());

  client_.transport->ResumeReading();
  ASSERT_TRUE(loop_->RunUntil([&] { return client_.lines.size() == 3; }));
  EXPECT_EQ(client_.lines[2], std::make_pair(std::string("secret"), true));
  EXPECT_EQ(client_.received, absl::StrCat(backlog, "\n220 ready\nsecret\n"));
  EXPECT_EQ(server_.pauses, 1);
  EXPECT_EQ(server_.resumes, 1);
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

TEST_F(StartTlsInMemoryTest, AFailedHandshakeReachesTheProtocolAsItsLoss) {
  TlsContext untrusting = TlsContext::CreateClient(
                              {.ca_pem = tls_testing::Pki().other_ca.certificate_pem})
                              .value();
  ASSERT_TRUE(TlsTransport::Upgrade(*server_.transport, server_context_, {})
                  .ok());
  absl::StatusOr<Transport*> tls = loop_->RunUntilComplete(
      StartTls(*client_.transport, untrusting, {.server_name = "localhost"}));
  ASSERT_EQ(tls.status().code(), absl::StatusCode::kUnauthenticated)
      << tls.status();
  ASSERT_TRUE(loop_->RunUntil(
      [&] { return client_.lost.has_value() && server_.lost.has_value(); }));
  // The protocols were connected: they hear of the failure, as a loss.
  EXPECT_EQ(client_.lost->code(), absl::StatusCode::kUnauthenticated)
      << *client_.lost;
  EXPECT_FALSE(server_.lost->ok());
  EXPECT_THAT(server_.lost->message(), HasSubstr("unknown ca"));
}

TEST_F(StartTlsInMemoryTest, CancellingAPendingStartTlsAbortsTheConnection) {
  // The server never upgrades: the client's hello goes unanswered.
  absl::StatusOr<Transport*> tls = loop_->RunUntilComplete(WithTimeout(
      *loop_,
      StartTls(*client_.transport, client_context_,
               {.server_name = "localhost"}),
      absl::Seconds(5)));
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kDeadlineExceeded)
      << tls.status();
  ASSERT_TRUE(loop_->RunUntil(
      [&] { return client_.lost.has_value() && server_.lost.has_value(); }));
  EXPECT_TRUE(client_.lost->ok()) << *client_.lost;  // Aborted.
  // What the server's protocol read was the client's hello.
  EXPECT_FALSE(server_.received.empty());
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

TEST_F(StartTlsInMemoryTest, ATransportThatIsClosingIsRefused) {
  client_.transport->Close();
  absl::StatusOr<TlsTransport*> tls = TlsTransport::Upgrade(
      *client_.transport, client_context_, {.server_name = "localhost"});
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kFailedPrecondition)
      << tls.status();
  absl::StatusOr<TlsTransport*> bad = TlsTransport::Upgrade(
      *server_.transport, server_context_,
      {.handshake_timeout = absl::ZeroDuration()});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(loop_->RunUntil([&] { return client_.lost.has_value(); }));
  EXPECT_TRUE(client_.lost->ok()) << *client_.lost;
}

}  // namespace
}  // namespace sluice
