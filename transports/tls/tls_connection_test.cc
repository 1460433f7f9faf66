// CreateServer and CreateConnection with TLS options, over real TCP.

#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transports/connection.h"
#include "transports/server.h"
#include "transports/tls/testing/test_pki.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

struct Record {
  Transport* transport = nullptr;
  int made = 0;
  std::string received;
  std::optional<absl::Status> lost;
};

class Echo final : public Protocol {
 public:
  explicit Echo(Record& record, bool echo) : record_(record), echo_(echo) {}
  void ConnectionMade(Transport& transport) override {
    record_.transport = &transport;
    ++record_.made;
  }
  void DataReceived(std::string_view data) override {
    record_.received.append(data);
    if (echo_) record_.transport->Write(data);
  }
  void ConnectionLost(const absl::Status& status) override {
    record_.lost = status;
    record_.transport = nullptr;
  }

 private:
  Record& record_;
  const bool echo_;
};

class TlsConnectionTest : public ::testing::Test {
 protected:
  TlsConnectionTest()
      : loop_(EventLoop::Create().value()),
        server_context_(tls_testing::ServerContext()),
        client_context_(tls_testing::ClientContext()) {
    loop_->SetErrorHandler([this](const LoopError& e) {
      errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
    });
  }

  // A TLS echo server on a free port; each connection's record is kept.
  void Listen() {
    absl::StatusOr<std::unique_ptr<Server>> server =
        loop_->RunUntilComplete(CreateServer(
            *loop_,
            [this] {
              server_records_.push_back(std::make_unique<Record>());
              return std::make_unique<Echo>(*server_records_.back(), true);
            },
            "127.0.0.1", 0, ServerOptions{.tls = &server_context_}));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    port_ = server_->addresses()[0].port();
  }

  absl::StatusOr<Connection> Connect(Record& record, ConnectOptions options) {
    return loop_->RunUntilComplete(CreateConnection(
        *loop_, [&] { return std::make_unique<Echo>(record, false); },
        "127.0.0.1", port_, std::move(options)));
  }

  int MadeOnServer() const {
    int made = 0;
    for (const auto& record : server_records_) made += record->made;
    return made;
  }

  std::unique_ptr<EventLoop> loop_;
  TlsContext server_context_;
  TlsContext client_context_;
  std::vector<std::string> errors_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Record>> server_records_;
};

TEST_F(TlsConnectionTest, ConnectCompletesAfterTheHandshakeWithTheTlsTransport) {
  ASSERT_NO_FATAL_FAILURE(Listen());
  Record client;
  // No server_name: the host connected to, here an IP address that the
  // certificate names.
  absl::StatusOr<Connection> connection =
      Connect(client, {.tls = &client_context_});
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(client.made, 1);
  EXPECT_EQ(connection->transport, client.transport);
  const TlsInfo* info = connection->transport->GetExtraInfo<TlsInfo>();
  ASSERT_NE(info, nullptr);  // Done before the connect returned.
  EXPECT_EQ(info->peer_subject, "CN=localhost");
  EXPECT_TRUE(connection->transport->PeerAddress().has_value());

  connection->transport->Write("over TLS");
  ASSERT_TRUE(loop_->RunUntil([&] { return client.received == "over TLS"; }));
  connection->transport->Close();
  ASSERT_TRUE(loop_->RunUntil([&] {
    return client.lost.has_value() && server_records_.size() == 1 &&
           server_records_[0]->lost.has_value();
  }));
  EXPECT_TRUE(client.lost->ok()) << *client.lost;
  EXPECT_TRUE(server_records_[0]->lost->ok()) << *server_records_[0]->lost;
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

TEST_F(TlsConnectionTest, OptionsBracedInACoAwaitExpression) {
  ASSERT_NO_FATAL_FAILURE(Listen());
  Record client;
  auto connect = [&]() -> Task<absl::Status> {
    // GCC 12 copies these temporaries bitwise (see TlsOptions).
    absl::StatusOr<Connection> connection = co_await CreateConnection(
        *loop_, [&] { return std::make_unique<Echo>(client, false); },
        "127.0.0.1", port_,
        {.timeout = absl::Seconds(10),
         .tls = &client_context_,
         .tls_options = {.server_name = "localhost"}});
    if (!connection.ok()) co_return connection.status();
    connection->transport->Close();
    co_return absl::OkStatus();
  };
  absl::Status connected = loop_->RunUntilComplete(connect());
  EXPECT_TRUE(connected.ok()) << connected;
  EXPECT_EQ(client.made, 1);
}

TEST_F(TlsConnectionTest, AnUntrustedServerIsTheConnectsErrorAndNoProtocolHears) {
  ASSERT_NO_FATAL_FAILURE(Listen());
  TlsContext untrusting =
      TlsContext::CreateClient(
          {.ca_pem = tls_testing::Pki().other_ca.certificate_pem})
          .value();
  Record client;
  absl::StatusOr<Connection> connection = Connect(client, {.tls = &untrusting});
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kUnauthenticated)
      << connection.status();
  EXPECT_THAT(connection.status().message(), HasSubstr("certificate"));
  EXPECT_EQ(client.made, 0);
  // A hostname mismatch too.
  Record other;
  absl::StatusOr<Connection> mismatch = Connect(
      other, {.tls = &client_context_,
              .tls_options = {.server_name = "not-localhost.example"}});
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kUnauthenticated)
      << mismatch.status();
  EXPECT_EQ(other.made, 0);
  // The server's protocols never heard of either, and it serves on.
  ASSERT_TRUE(loop_->RunUntil([&] {
    return server_->active_connections() == 0 && server_records_.size() == 2;
  }));
  EXPECT_EQ(MadeOnServer(), 0);
  Record good;
  ASSERT_TRUE(Connect(good, {.tls = &client_context_}).ok());
}

TEST_F(TlsConnectionTest, PlaintextAndGarbageOnTheTlsPortCloseJustThatConnection) {
  ASSERT_NO_FATAL_FAILURE(Listen());
  Record good;
  absl::StatusOr<Connection> served = Connect(good, {.tls = &client_context_});
  ASSERT_TRUE(served.ok()) << served.status();
  // A handshake record header announcing 5 bytes, then bytes that are not
  // a ClientHello.
  const std::string garbage =
      std::string("\x16\x03\x01\x00\x05", 5) + "garbage after the header";
  for (std::string_view bytes :
       {std::string_view("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        std::string_view(garbage)}) {
    SCOPED_TRACE(bytes);
    Record plain;
    absl::StatusOr<Connection> raw = Connect(plain, {});
    ASSERT_TRUE(raw.ok()) << raw.status();
    raw->transport->Write(bytes);
    // The server answers with an alert at most, and closes.
    ASSERT_TRUE(loop_->RunUntil([&] { return plain.lost.has_value(); }));
  }
  EXPECT_EQ(MadeOnServer(), 1);  // Only the good client's.
  served->transport->Write("still here");
  ASSERT_TRUE(loop_->RunUntil([&] { return good.received == "still here"; }));
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

TEST_F(TlsConnectionTest, ASilentServerTimesTheConnectOutAndItIsAborted) {
  // Accepts TCP, never speaks TLS.
  Record silent;
  absl::StatusOr<std::unique_ptr<Server>> server =
      loop_->RunUntilComplete(CreateServer(
          *loop_, [&] { return std::make_unique<Echo>(silent, false); },
          "127.0.0.1", 0));
  ASSERT_TRUE(server.ok()) << server.status();
  port_ = (*server)->addresses()[0].port();
  Record client;
  absl::StatusOr<Connection> connection = Connect(
      client, {.timeout = absl::Milliseconds(200), .tls = &client_context_});
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kDeadlineExceeded)
      << connection.status();
  EXPECT_EQ(client.made, 0);
  // The abandoned connection goes: the server sees it end.
  ASSERT_TRUE(loop_->RunUntil([&] { return silent.lost.has_value(); }));
  EXPECT_FALSE(silent.received.empty());  // The client's hello.
  // The handshake timeout works on its own as well.
  Record timed;
  absl::StatusOr<Connection> handshake_timeout = Connect(
      timed, {.tls = &client_context_,
              .tls_options = {.handshake_timeout = absl::Milliseconds(100)}});
  EXPECT_EQ(handshake_timeout.status().code(),
            absl::StatusCode::kDeadlineExceeded)
      << handshake_timeout.status();
  EXPECT_THAT(handshake_timeout.status().message(), HasSubstr("handshake"));
}

TEST_F(TlsConnectionTest, BadTlsOptionsAreRefused) {
  absl::StatusOr<std::unique_ptr<Server>> client_context_server =
      loop_->RunUntilComplete(CreateServer(
          *loop_, [] { return std::make_unique<Protocol>(); }, "127.0.0.1", 0,
          ServerOptions{.tls = &client_context_}));
  EXPECT_EQ(client_context_server.status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<Server>> zero_timeout =
      CreateUnixServer(*loop_, [] { return std::make_unique<Protocol>(); },
                       "@sluice-tls-connection-test",
                       ServerOptions{.tls = &server_context_,
                                     .tls_options = {.shutdown_timeout =
                                                         absl::ZeroDuration()}});
  EXPECT_EQ(zero_timeout.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
