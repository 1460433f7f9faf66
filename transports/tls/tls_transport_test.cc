#include "transports/tls/tls_transport.h"

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transports/connection.h"
#include "transports/memory_transport.h"
#include "transports/server.h"
#include "transports/tls/certificates.h"
#include "transports/tls/testing/test_pki.h"
#include "transports/tls/tls_context.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What an App was told; owned by the test, since the App goes with its
// connection.
struct Record {
  Transport* transport = nullptr;  // While connected.
  bool echo = false;
  bool made = false;
  bool eof = false;
  int pauses = 0;
  int resumes = 0;
  std::string received;
  std::optional<absl::Status> lost;
};

// An application at the top of a TLS stack.
class App : public Protocol {
 public:
  explicit App(Record& record) : record_(record) {}
  void ConnectionMade(Transport& transport) override {
    record_.transport = &transport;
    record_.made = true;
  }
  void DataReceived(std::string_view data) override {
    record_.received.append(data);
    if (record_.echo) record_.transport->Write(data);
  }
  bool EofReceived() override {
    record_.eof = true;
    return false;
  }
  void PauseWriting() override { ++record_.pauses; }
  void ResumeWriting() override { ++record_.resumes; }
  void ConnectionLost(const absl::Status& status) override {
    record_.lost = status;
    record_.transport = nullptr;
  }

 protected:
  Record& record_;
};

// Both ends of a TLS connection over the in-memory pair, on virtual time.
class TlsTest : public ::testing::Test {
 protected:
  TlsTest()
      : loop_(EventLoop::Create(EventLoopOptions{.clock = &clock_}).value()) {
    loop_->SetErrorHandler([this](const LoopError& e) {
      errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
    });
  }

  static TlsContextOptions ServerOptions() {
    return tls_testing::ServerContextOptions();
  }
  static TlsContextOptions ClientOptions() {
    return tls_testing::ClientContextOptions();
  }

  // Connects a client and a server App through TLS over ConnectInMemory
  // and runs until both handshakes have finished, one way or the other.
  void Connect(TlsContextOptions client_options = ClientOptions(),
               TlsContextOptions server_options = ServerOptions(),
               std::string server_name = "localhost") {
    absl::StatusOr<TlsContext> client_context =
        TlsContext::CreateClient(std::move(client_options));
    ASSERT_TRUE(client_context.ok()) << client_context.status();
    absl::StatusOr<TlsContext> server_context =
        TlsContext::CreateServer(std::move(server_options));
    ASSERT_TRUE(server_context.ok()) << server_context.status();
    auto client_app = std::make_unique<App>(client_);
    auto server_app = std::make_unique<App>(server_);
    auto client_tls = TlsTransport::Create(
        *loop_, *client_context, {.server_name = std::move(server_name)},
        std::move(client_app));
    ASSERT_TRUE(client_tls.ok()) << client_tls.status();
    auto server_tls =
        TlsTransport::Create(*loop_, *server_context, {}, std::move(server_app));
    ASSERT_TRUE(server_tls.ok()) << server_tls.status();
    client_handshake_ = (*client_tls)->Handshake();
    server_handshake_ = (*server_tls)->Handshake();
    auto [client_root, server_root] = ConnectInMemory(
        *loop_, *std::move(client_tls), *std::move(server_tls));
    client_root_ = client_root;
    server_root_ = server_root;
    ASSERT_TRUE(loop_->RunUntil([&] {
      return client_handshake_->IsDone() && server_handshake_->IsDone();
    }));
  }

  void RunUntilBothLost() {
    ASSERT_TRUE(loop_->RunUntil([&] {
      return client_.lost.has_value() && server_.lost.has_value();
    }));
  }

  VirtualClock clock_;
  std::unique_ptr<EventLoop> loop_;
  std::vector<std::string> errors_;
  Record client_;
  Record server_;
  MemoryTransport* client_root_ = nullptr;
  MemoryTransport* server_root_ = nullptr;
  std::optional<Future<absl::Status>> client_handshake_;
  std::optional<Future<absl::Status>> server_handshake_;
};

TEST_F(TlsTest, HandshakeThenDataBothWaysAndWhatWasNegotiated) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  ASSERT_TRUE(client_handshake_->Result().ok()) << client_handshake_->Result();
  ASSERT_TRUE(server_handshake_->Result().ok()) << server_handshake_->Result();
  ASSERT_TRUE(client_.made);
  ASSERT_TRUE(server_.made);
  server_.echo = true;
  client_.transport->Write("hello over TLS");
  ASSERT_TRUE(loop_->RunUntil([&] { return client_.received.size() == 14; }));
  EXPECT_EQ(server_.received, "hello over TLS");
  EXPECT_EQ(client_.received, "hello over TLS");

  const TlsInfo* info = client_.transport->GetExtraInfo<TlsInfo>();
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->version, "TLSv1.3");
  EXPECT_FALSE(info->cipher.empty());
  EXPECT_EQ(info->peer_subject, "CN=localhost");
  EXPECT_THAT(info->peer_dns_names, ElementsAre("localhost"));
  EXPECT_THAT(info->peer_ip_addresses, ElementsAre("127.0.0.1", "::1"));
  EXPECT_FALSE(info->peer_certificate_der.empty());
  const TlsInfo* server_info = server_.transport->GetExtraInfo<TlsInfo>();
  ASSERT_NE(server_info, nullptr);
  EXPECT_EQ(server_info->server_name, "localhost");  // SNI.
  EXPECT_TRUE(server_info->peer_subject.empty());    // No client certificate.
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

TEST_F(TlsTest, AnUntrustedServerFailsTheHandshakeAndNoAppHearsOfIt) {
  ASSERT_NO_FATAL_FAILURE(
      Connect(TlsContextOptions{.ca_pem = tls_testing::Pki().other_ca.certificate_pem}));
  EXPECT_EQ(client_handshake_->Result().code(),
            absl::StatusCode::kUnauthenticated)
      << client_handshake_->Result();
  EXPECT_THAT(client_handshake_->Result().message(),
              HasSubstr("unable to get local issuer certificate"));
  // The server read the client's alert.
  EXPECT_FALSE(server_handshake_->Result().ok());
  EXPECT_THAT(server_handshake_->Result().message(), HasSubstr("unknown ca"));
  loop_->RunUntilIdle();
  EXPECT_FALSE(client_.made);
  EXPECT_FALSE(server_.made);
  EXPECT_FALSE(client_.lost.has_value());
  EXPECT_FALSE(server_.lost.has_value());
}

TEST_F(TlsTest, ACertificateForAnotherNameFailsVerification) {
  ASSERT_NO_FATAL_FAILURE(
      Connect(ClientOptions(), ServerOptions(), "example.com"));
  EXPECT_EQ(client_handshake_->Result().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(client_handshake_->Result().message(),
              HasSubstr("hostname mismatch"));
}

TEST_F(TlsTest, AnIpAddressIsCheckedAgainstTheIpSans) {
  ASSERT_NO_FATAL_FAILURE(Connect(ClientOptions(), ServerOptions(), "127.0.0.1"));
  EXPECT_TRUE(client_handshake_->Result().ok()) << client_handshake_->Result();
}

TEST_F(TlsTest, CloseSendsCloseNotifyAndThePeerSeesACleanEof) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  client_.transport->Write("last words");
  client_.transport->Close();
  RunUntilBothLost();
  EXPECT_EQ(server_.received, "last words");
  EXPECT_TRUE(server_.eof);
  EXPECT_TRUE(server_.lost->ok()) << *server_.lost;
  EXPECT_TRUE(client_.lost->ok()) << *client_.lost;
}

TEST_F(TlsTest, TheConnectionBelowEndingWithoutCloseNotifyIsTruncation) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  client_.transport->Write("partial");
  loop_->RunUntilIdle();
  // The client's TCP-like root closes under TLS: no close_notify.
  client_root_->Close();
  ASSERT_TRUE(loop_->RunUntil([&] { return server_.lost.has_value(); }));
  EXPECT_EQ(server_.received, "partial");
  EXPECT_FALSE(server_.eof);
  EXPECT_EQ(server_.lost->code(), absl::StatusCode::kDataLoss) << *server_.lost;
  EXPECT_THAT(server_.lost->message(), HasSubstr("close_notify"));
}

TEST_F(TlsTest, GarbageAfterValidRecordsFailsTheConnectionAfterTheirData) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  // A record, then bytes that are not TLS, written under the client's TLS
  // layer into the same stream: the record's plaintext is delivered, then
  // the connection fails.
  client_.transport->Write("valid data");
  client_root_->Write("this is not a TLS record, just some bytes");
  ASSERT_TRUE(loop_->RunUntil([&] { return server_.lost.has_value(); }));
  EXPECT_EQ(server_.received, "valid data") << *server_.lost;
  EXPECT_EQ(server_.lost->code(), absl::StatusCode::kUnavailable)
      << *server_.lost;
  EXPECT_THAT(server_.lost->message(), HasSubstr("TLS read"));
}

TEST_F(TlsTest, WatermarksTheLayerBelowCannotTakeAreAnError) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  // The layer below is held to our low watermark; its overflow limit must
  // stay above that.
  ASSERT_TRUE(client_root_->SetWriteBufferOverflowLimit(100 * 1024).ok());
  const absl::Status refused =
      client_.transport->SetWriteBufferLimits(1024 * 1024);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("refused watermarks"));
  EXPECT_TRUE(client_.transport->SetWriteBufferLimits(64 * 1024).ok());
}

TEST_F(TlsTest, AbortSendsNoCloseNotify) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  client_.transport->Abort();
  RunUntilBothLost();
  EXPECT_TRUE(client_.lost->ok());
  // The peer sees the connection below go (a reset here), not a TLS EOF.
  EXPECT_FALSE(server_.eof);
  EXPECT_FALSE(server_.lost->ok());
}

// A peer that takes a connection and never answers the ClientHello.
class Silent : public Protocol {};

TEST_F(TlsTest, AHandshakeWithASilentPeerTimesOut) {
  TlsContext context = TlsContext::CreateClient(ClientOptions()).value();
  Record client;
  auto app = std::make_unique<App>(client);
  auto tls = TlsTransport::Create(
      *loop_, context,
      {.server_name = "localhost", .handshake_timeout = absl::Seconds(5)},
      std::move(app));
  ASSERT_TRUE(tls.ok()) << tls.status();
  Future<absl::Status> handshake = (*tls)->Handshake();
  ConnectInMemory(*loop_, *std::move(tls), std::make_unique<Silent>());
  const MonotonicTime start = clock_.Now();
  ASSERT_TRUE(loop_->RunUntil([&] { return handshake.IsDone(); }));
  EXPECT_EQ(handshake.Result().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Difference(clock_.Now(), start), absl::Seconds(5));
  EXPECT_FALSE(client.made);
}

TEST_F(TlsTest, ShutdownTimesOutWhenThePeerNeverAnswersCloseNotify) {
  TlsContext server_context = TlsContext::CreateServer(ServerOptions()).value();
  TlsContext client_context = TlsContext::CreateClient(ClientOptions()).value();
  Record server;
  auto server_app = std::make_unique<App>(server);
  auto server_tls = TlsTransport::Create(
      *loop_, server_context, {.shutdown_timeout = absl::Seconds(3)},
      std::move(server_app));
  // The client's TLS sits under a pass-through-like App that never reads
  // once the handshake is done: its application pauses reading.
  Record client;
  auto client_app = std::make_unique<App>(client);
  auto client_tls = TlsTransport::Create(
      *loop_, client_context, {.server_name = "localhost"},
      std::move(client_app));
  ASSERT_TRUE(server_tls.ok() && client_tls.ok());
  auto [client_root, server_root] = ConnectInMemory(
      *loop_, *std::move(client_tls), *std::move(server_tls));
  ASSERT_TRUE(loop_->RunUntil([&] { return server.made && client.made; }));
  // The client stops reading below TLS, so close_notify is never answered.
  client_root->PauseReading();
  const MonotonicTime start = clock_.Now();
  server.transport->Close();
  ASSERT_TRUE(loop_->RunUntil([&] { return server.lost.has_value(); }));
  EXPECT_EQ(server.lost->code(), absl::StatusCode::kDeadlineExceeded)
      << *server.lost;
  EXPECT_EQ(Difference(clock_.Now(), start), absl::Seconds(3));
}

TEST_F(TlsTest, GarbageFromThePeerFailsTheHandshakeClearly) {
  TlsContext context = TlsContext::CreateServer(ServerOptions()).value();
  Record server;
  auto app = std::make_unique<App>(server);
  auto tls = TlsTransport::Create(*loop_, context, {}, std::move(app));
  ASSERT_TRUE(tls.ok());
  Future<absl::Status> handshake = (*tls)->Handshake();
  MemoryTransport& root = MemoryTransport::Create(*loop_, *std::move(tls));
  loop_->RunUntilIdle();
  root.DeliverFromPeer("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  ASSERT_TRUE(loop_->RunUntil([&] { return handshake.IsDone(); }));
  EXPECT_EQ(handshake.Result().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(handshake.Result().message(), HasSubstr("handshake"));
  EXPECT_FALSE(server.made);
}

TEST_F(TlsTest, AlpnAgreesOnTheServersFirstChoiceThatTheClientOffers) {
  TlsContextOptions client = ClientOptions();
  client.alpn_protocols = {"http/1.1", "h2"};
  TlsContextOptions server = ServerOptions();
  server.alpn_protocols = {"h2", "http/1.1"};
  ASSERT_NO_FATAL_FAILURE(Connect(std::move(client), std::move(server)));
  ASSERT_TRUE(client_handshake_->Result().ok()) << client_handshake_->Result();
  EXPECT_EQ(client_.transport->GetExtraInfo<TlsInfo>()->alpn, "h2");
  EXPECT_EQ(server_.transport->GetExtraInfo<TlsInfo>()->alpn, "h2");
}

TEST_F(TlsTest, AlpnWithoutOverlapFailsTheHandshake) {
  TlsContextOptions client = ClientOptions();
  client.alpn_protocols = {"spdy/3"};
  TlsContextOptions server = ServerOptions();
  server.alpn_protocols = {"h2"};
  ASSERT_NO_FATAL_FAILURE(Connect(std::move(client), std::move(server)));
  EXPECT_FALSE(server_handshake_->Result().ok());
  EXPECT_THAT(client_handshake_->Result().message(),
              HasSubstr("no application protocol"));
}

TEST_F(TlsTest, ASecondConnectionResumesTheSession) {
  TlsContext server_context = TlsContext::CreateServer(ServerOptions()).value();
  TlsContext client_context = TlsContext::CreateClient(ClientOptions()).value();
  auto connect = [&](bool& resumed) {
    Record client;
    Record server;
    server.echo = true;
    ConnectInMemory(
        *loop_,
        TlsTransport::Create(*loop_, client_context,
                             {.server_name = "localhost"},
                             std::make_unique<App>(client))
            .value(),
        TlsTransport::Create(*loop_, server_context, {},
                             std::make_unique<App>(server))
            .value());
    ASSERT_TRUE(loop_->RunUntil([&] { return client.made; }));
    resumed = client.transport->GetExtraInfo<TlsInfo>()->resumed;
    // The echo makes the client read the tickets that follow the handshake.
    client.transport->Write("x");
    ASSERT_TRUE(loop_->RunUntil([&] { return client.received == "x"; }));
    client.transport->Close();
    ASSERT_TRUE(loop_->RunUntil(
        [&] { return client.lost.has_value() && server.lost.has_value(); }));
  };
  bool first = true;
  bool second = false;
  ASSERT_NO_FATAL_FAILURE(connect(first));
  ASSERT_NO_FATAL_FAILURE(connect(second));
  EXPECT_FALSE(first);
  EXPECT_TRUE(second);
}

TEST_F(TlsTest, MutualTlsRequiredRefusesAClientWithoutACertificate) {
  TlsContextOptions server = ServerOptions();
  server.ca_pem = tls_testing::Pki().ca.certificate_pem;
  server.verify = TlsVerify::kRequired;
  ASSERT_NO_FATAL_FAILURE(Connect(ClientOptions(), std::move(server)));
  EXPECT_FALSE(server_handshake_->Result().ok());
  EXPECT_THAT(server_handshake_->Result().message(),
              HasSubstr("peer did not return a certificate"));
}

TEST_F(TlsTest, MutualTlsWithAClientCertificate) {
  TlsContextOptions client = ClientOptions();
  client.certificate_chain_pem = tls_testing::Pki().client.certificate_pem;
  client.private_key_pem = tls_testing::Pki().client.key_pem;
  TlsContextOptions server = ServerOptions();
  server.ca_pem = tls_testing::Pki().ca.certificate_pem;
  server.verify = TlsVerify::kRequired;
  ASSERT_NO_FATAL_FAILURE(Connect(std::move(client), std::move(server)));
  ASSERT_TRUE(server_handshake_->Result().ok()) << server_handshake_->Result();
  EXPECT_EQ(server_.transport->GetExtraInfo<TlsInfo>()->peer_subject,
            "CN=client");
}

// Writes `total` bytes as fast as the transport allows, honouring
// PauseWriting, and checks what comes back.
class Bulk final : public App {
 public:
  Bulk(Record& record, size_t total) : App(record), total_(total) {}
  void ConnectionMade(Transport& transport) override {
    App::ConnectionMade(transport);
    Produce();
  }
  void PauseWriting() override {
    App::PauseWriting();
    paused_ = true;
  }
  void ResumeWriting() override {
    App::ResumeWriting();
    paused_ = false;
    Produce();
  }
  void Produce() {
    while (!paused_ && sent_ < total_ && record_.transport != nullptr) {
      std::string chunk(std::min<size_t>(32 * 1024, total_ - sent_), '\0');
      for (size_t i = 0; i < chunk.size(); ++i) {
        chunk[i] = static_cast<char>((sent_ + i) % 253);
      }
      sent_ += chunk.size();
      record_.transport->Write(chunk);
      // Right after the write, when the buffers are at their fullest.
      if (record_.transport != nullptr) {
        max_buffered =
            std::max(max_buffered, record_.transport->GetWriteBufferSize());
      }
    }
  }
  size_t max_buffered = 0;

 private:
  const size_t total_;
  size_t sent_ = 0;
  bool paused_ = false;
};

// A BufferedProtocol reader that stalls: it pauses reading every so often
// and resumes later, from the loop.
class StallingReader final : public BufferedProtocol {
 public:
  explicit StallingReader(EventLoop& loop) : loop_(loop) {}
  void ConnectionMade(Transport& transport) override { transport_ = &transport; }
  std::span<char> GetBuffer(size_t /*size_hint*/) override {
    return std::span<char>(buffer_);
  }
  void BufferUpdated(size_t size) override {
    for (size_t i = 0; i < size; ++i) {
      if (buffer_[i] != static_cast<char>((received + i) % 253)) {
        corrupt = true;
      }
    }
    received += size;
    if (received / (1 << 20) != last_stall_) {
      last_stall_ = received / (1 << 20);
      transport_->PauseReading();
      ++stalls;
      loop_.CallLater(absl::Milliseconds(10),
                      [this] { if (transport_) transport_->ResumeReading(); });
    }
  }
  void ConnectionLost(const absl::Status& /*status*/) override {
    transport_ = nullptr;
  }

  size_t received = 0;
  int stalls = 0;
  bool corrupt = false;

 private:
  EventLoop& loop_;
  Transport* transport_ = nullptr;
  std::array<char, 16 * 1024> buffer_;
  size_t last_stall_ = 0;
};

// Over TCP: real socket buffers push back (the in-memory pair takes all a
// writer gives while its peer reads).
TEST_F(TlsTest, SixtyFourMegabytesReachAStallingReaderInOrderWithBoundedBuffers) {
  constexpr size_t kTotal = 64 << 20;
  std::unique_ptr<EventLoop> loop = EventLoop::Create().value();
  loop->SetErrorHandler([this](const LoopError& e) {
    errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
  });
  TlsContext server_context = TlsContext::CreateServer(ServerOptions()).value();
  TlsContext client_context = TlsContext::CreateClient(ClientOptions()).value();
  StallingReader* reader = nullptr;
  auto server_factory = [&]() -> std::unique_ptr<Protocol> {
    auto app = std::make_unique<StallingReader>(*loop);
    reader = app.get();
    return TlsTransport::Create(*loop, server_context, {}, std::move(app))
        .value();
  };
  absl::StatusOr<std::unique_ptr<Server>> server = loop->RunUntilComplete(
      CreateServer(*loop, server_factory, "127.0.0.1", 0));
  ASSERT_TRUE(server.ok()) << server.status();
  Record writer_record;
  Bulk* writer = nullptr;
  auto client_factory = [&]() -> std::unique_ptr<Protocol> {
    auto bulk = std::make_unique<Bulk>(writer_record, kTotal);
    writer = bulk.get();
    return TlsTransport::Create(*loop, client_context,
                                {.server_name = "localhost"}, std::move(bulk))
        .value();
  };
  absl::StatusOr<Connection> connection = loop->RunUntilComplete(
      CreateConnection(*loop, client_factory, "127.0.0.1",
                       (*server)->addresses()[0].port()));
  ASSERT_TRUE(connection.ok()) << connection.status();
  ASSERT_TRUE(loop->RunUntil(
      [&] { return reader != nullptr && reader->received == kTotal; }));
  EXPECT_FALSE(reader->corrupt);
  EXPECT_GE(reader->stalls, 60);
  // The reader's stalls reached the writer as PauseWriting ...
  EXPECT_GT(writer_record.pauses, 0);
  // ... and it never had much more than the watermarks (TLS's plaintext and
  // the socket's ciphertext, 64 KiB each) plus a write and a batch queued.
  EXPECT_LE(writer->max_buffered, 256u * 1024);
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

TEST_F(TlsTest, ServerCloseClientsSendsCloseNotify) {
  std::unique_ptr<EventLoop> loop = EventLoop::Create().value();
  loop->SetErrorHandler([this](const LoopError& e) {
    errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
  });
  TlsContext server_context = TlsContext::CreateServer(ServerOptions()).value();
  TlsContext client_context = TlsContext::CreateClient(ClientOptions()).value();
  Record server_record;
  auto server_factory = [&]() -> std::unique_ptr<Protocol> {
    return TlsTransport::Create(*loop, server_context, {},
                                std::make_unique<App>(server_record))
        .value();
  };
  absl::StatusOr<std::unique_ptr<Server>> server = loop->RunUntilComplete(
      CreateServer(*loop, server_factory, "127.0.0.1", 0));
  ASSERT_TRUE(server.ok()) << server.status();
  Record client;
  auto client_factory = [&]() -> std::unique_ptr<Protocol> {
    return TlsTransport::Create(*loop, client_context,
                                {.server_name = "localhost"},
                                std::make_unique<App>(client))
        .value();
  };
  ASSERT_TRUE(loop->RunUntilComplete(
                      CreateConnection(*loop, client_factory, "127.0.0.1",
                                       (*server)->addresses()[0].port()))
                  .ok());
  ASSERT_TRUE(loop->RunUntil([&] { return server_record.made; }));
  (*server)->CloseClients();
  ASSERT_TRUE(loop->RunUntil([&] { return client.lost.has_value(); }));
  EXPECT_TRUE(client.eof);  // close_notify, not a truncation.
  EXPECT_TRUE(client.lost->ok()) << *client.lost;
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

TEST_F(TlsTest, ClosingOrAbortingDuringTheHandshakeCompletesHandshake) {
  for (bool abort : {false, true}) {
    SCOPED_TRACE(abort ? "Abort" : "Close");
    TlsContext context = TlsContext::CreateClient(ClientOptions()).value();
    Record client;
    auto tls = TlsTransport::Create(*loop_, context, {.server_name = "localhost"},
                                    std::make_unique<App>(client))
                   .value();
    TlsTransport* layer = tls.get();
    Future<absl::Status> handshake = layer->Handshake();
    ConnectInMemory(*loop_, std::move(tls), std::make_unique<Silent>());
    loop_->RunUntilIdle();  // The ClientHello went; nothing answers.
    ASSERT_FALSE(handshake.IsDone());
    if (abort) {
      layer->Abort();
    } else {
      layer->Close();
    }
    ASSERT_TRUE(loop_->RunUntil([&] { return handshake.IsDone(); }));
    EXPECT_EQ(handshake.Result().code(), absl::StatusCode::kCancelled)
        << handshake.Result();
    EXPECT_FALSE(client.made);
  }
}

// Reads what it is given only after closing, as a parser might.
class CloseThenRead final : public Protocol {
 public:
  explicit CloseThenRead(Record& record) : record_(record) {}
  void ConnectionMade(Transport& transport) override {
    transport_ = &transport;
    record_.made = true;
  }
  void DataReceived(std::string_view data) override {
    const std::string before(data);
    if (transport_ != nullptr) transport_->Close();
    transport_ = nullptr;
    if (data != before) record_.received = "overwritten";
    if (record_.received.empty()) record_.received = before;
  }
  void ConnectionLost(const absl::Status& status) override {
    record_.lost = status;
  }

 private:
  Record& record_;
  Transport* transport_ = nullptr;
};

TEST_F(TlsTest, CloseInsideDataReceivedLeavesItsDataIntact) {
  TlsContext server_context = TlsContext::CreateServer(ServerOptions()).value();
  TlsContext client_context = TlsContext::CreateClient(ClientOptions()).value();
  Record client;
  Record server;
  ConnectInMemory(
      *loop_,
      TlsTransport::Create(*loop_, client_context, {.server_name = "localhost"},
                           std::make_unique<App>(client))
          .value(),
      TlsTransport::Create(*loop_, server_context, {},
                           std::make_unique<CloseThenRead>(server))
          .value());
  ASSERT_TRUE(loop_->RunUntil([&] { return client.made && server.made; }));
  // More than one DataReceived's worth, so records wait behind the first.
  std::string message(200 * 1024, '\0');
  for (size_t i = 0; i < message.size(); ++i) message[i] = static_cast<char>(i % 249);
  client.transport->Write(message);
  ASSERT_TRUE(loop_->RunUntil([&] { return server.lost.has_value(); }));
  ASSERT_NE(server.received, "overwritten");
  EXPECT_FALSE(server.received.empty());
  EXPECT_TRUE(message.compare(0, server.received.size(), server.received) == 0);
}

// Server contexts for two more names, signed by the test CA, chosen by the
// name the client asks for.
class SniTest : public TlsTest {
 protected:
  static TlsContextOptions OptionsFor(const std::string& name) {
    KeyAndCertificate certificate =
        IssueCertificate(tls_testing::Pki().ca,
                         {.common_name = name, .dns_names = {name}})
            .value();
    return TlsContextOptions{
        .certificate_chain_pem = std::move(certificate.certificate_pem),
        .private_key_pem = std::move(certificate.key_pem)};
  }

  // The default context serves "localhost"; `by_name` the rest, and a name
  // in `refused` fails the handshake.
  static TlsContextOptions ServerChoosing(
      absl::flat_hash_map<std::string, TlsContext> by_name,
      std::string refused = "refused.example") {
    TlsContextOptions options = ServerOptions();
    options.server_name_callback =
        [by_name = std::move(by_name), refused = std::move(refused)](
            std::string_view name) -> absl::StatusOr<const TlsContext*> {
      if (name == refused) return absl::NotFoundError("no such site");
      auto it = by_name.find(std::string(name));
      return it == by_name.end() ? nullptr : &it->second;
    };
    return options;
  }
};

TEST_F(SniTest, TheClientsServerNameChoosesTheCertificate) {
  absl::flat_hash_map<std::string, TlsContext> by_name;
  by_name.emplace("a.example",
                  TlsContext::CreateServer(OptionsFor("a.example")).value());
  by_name.emplace("b.example",
                  TlsContext::CreateServer(OptionsFor("b.example")).value());
  for (const std::string name : {"a.example", "b.example", "localhost"}) {
    SCOPED_TRACE(name);
    client_ = Record();
    server_ = Record();
    TlsContextOptions server_options = ServerChoosing(by_name);
    ASSERT_NO_FATAL_FAILURE(
        Connect(ClientOptions(), std::move(server_options), name));
    // The client verified the certificate against `name`.
    ASSERT_TRUE(client_handshake_->Result().ok()) << client_handshake_->Result();
    EXPECT_EQ(client_.transport->GetExtraInfo<TlsInfo>()->peer_subject,
              absl::StrCat("CN=", name));
    EXPECT_EQ(server_.transport->GetExtraInfo<TlsInfo>()->server_name, name);
    client_.transport->Close();
    RunUntilBothLost();
  }
}

TEST_F(SniTest, TheChosenContextsAlpnAndClientChecksApply) {
  TlsContextOptions api = OptionsFor("api.example");
  api.alpn_protocols = {"h2"};
  TlsContextOptions admin = OptionsFor("admin.example");
  admin.ca_pem = tls_testing::Pki().ca.certificate_pem;
  admin.verify = TlsVerify::kRequired;
  absl::flat_hash_map<std::string, TlsContext> by_name;
  by_name.emplace("api.example",
                  TlsContext::CreateServer(std::move(api)).value());
  by_name.emplace("admin.example",
                  TlsContext::CreateServer(std::move(admin)).value());

  TlsContextOptions client = ClientOptions();
  client.alpn_protocols = {"h2"};
  ASSERT_NO_FATAL_FAILURE(
      Connect(std::move(client), ServerChoosing(by_name), "api.example"));
  ASSERT_TRUE(server_handshake_->Result().ok()) << server_handshake_->Result();
  EXPECT_EQ(server_.transport->GetExtraInfo<TlsInfo>()->alpn, "h2");

  // admin.example wants a client certificate; the default context did not.
  client_ = Record();
  server_ = Record();
  ASSERT_NO_FATAL_FAILURE(
      Connect(ClientOptions(), ServerChoosing(by_name), "admin.example"));
  EXPECT_FALSE(server_handshake_->Result().ok());
  EXPECT_THAT(server_handshake_->Result().message(),
              HasSubstr("peer did not return a certificate"));
  EXPECT_FALSE(server_.made);
}

TEST_F(SniTest, AnErrorFromTheCallbackRefusesTheHandshake) {
  TlsContextOptions client = ClientOptions();
  client.verify_hostname = false;
  ASSERT_NO_FATAL_FAILURE(
      Connect(std::move(client), ServerChoosing({}), "refused.example"));
  EXPECT_THAT(server_handshake_->Result().message(),
              HasSubstr("no such site"));
  EXPECT_THAT(client_handshake_->Result().message(),
              HasSubstr("unrecognized name"));
  EXPECT_FALSE(client_.made);
  EXPECT_FALSE(server_.made);
}

TEST(TlsContextTest, AServerNameCallbackIsForServers) {
  TlsContextOptions options = tls_testing::ClientContextOptions();
  options.server_name_callback =
      [](std::string_view) -> absl::StatusOr<const TlsContext*> {
    return nullptr;
  };
  EXPECT_EQ(TlsContext::CreateClient(std::move(options)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TlsTest, TlsOverTls) {
  // An outer connection whose application is itself a TLS layer.
  TlsContext server_context = TlsContext::CreateServer(ServerOptions()).value();
  TlsContext client_context = TlsContext::CreateClient(ClientOptions()).value();
  Record client;
  Record server;
  server.echo = true;
  auto inner_client_app = std::make_unique<App>(client);
  auto inner_server_app = std::make_unique<App>(server);
  auto wrap = [&](const TlsContext& context, TlsOptions options,
                  std::unique_ptr<Protocol> app) {
    return TlsTransport::Create(*loop_, context, options, std::move(app))
        .value();
  };
  auto client_stack =
      wrap(client_context, {.server_name = "localhost"},
           wrap(client_context, {.server_name = "localhost"},
                std::move(inner_client_app)));
  auto server_stack =
      wrap(server_context, {}, wrap(server_context, {}, std::move(inner_server_app)));
  ConnectInMemory(*loop_, std::move(client_stack), std::move(server_stack));
  ASSERT_TRUE(loop_->RunUntil([&] { return client.made; }));
  const std::string message(100000, 'z');
  client.transport->Write(message);
  ASSERT_TRUE(
      loop_->RunUntil([&] { return client.received.size() == message.size(); }));
  EXPECT_TRUE(client.received == message);
  client.transport->Close();
  ASSERT_TRUE(loop_->RunUntil(
      [&] { return client.lost.has_value() && server.lost.has_value(); }));
  EXPECT_TRUE(client.lost->ok()) << *client.lost;
  EXPECT_TRUE(server.lost->ok()) << *server.lost;
}

TEST(TlsOptionsTest, TimeoutsMustBePositive) {
  std::unique_ptr<EventLoop> loop = EventLoop::Create().value();
  Record record;
  KeyAndCertificate cert =
      GenerateSelfSigned({.common_name = "localhost"}).value();
  TlsContext context =
      TlsContext::CreateServer({.certificate_chain_pem = cert.certificate_pem,
                                .private_key_pem = cert.key_pem})
          .value();
  auto zero = TlsTransport::Create(*loop, context,
                                   {.handshake_timeout = absl::ZeroDuration()},
                                   std::make_unique<App>(record));
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  auto negative = TlsTransport::Create(
      *loop, context, {.shutdown_timeout = absl::Seconds(-1)},
      std::make_unique<App>(record));
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.status().message(), HasSubstr("shutdown timeout"));
}

TEST(TlsContextTest, BadCertificatesAreInvalidArgumentsNamingTheProblem) {
  KeyAndCertificate one = GenerateSelfSigned({.common_name = "one"}).value();
  KeyAndCertificate two = GenerateSelfSigned({.common_name = "two"}).value();
  auto mismatched = TlsContext::CreateServer(
      {.certificate_chain_pem = one.certificate_pem,
       .private_key_pem = two.key_pem});
  EXPECT_EQ(mismatched.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mismatched.status().message(), HasSubstr("mismatch"));

  auto missing = TlsContext::CreateServer(
      {.certificate_chain_file = "/nonexistent/cert.pem",
       .private_key_file = "/nonexistent/key.pem"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/cert.pem"));

  KeyAndCertificate expired =
      GenerateSelfSigned({.common_name = "old",
                          .valid_for = absl::Hours(1),
                          .not_before_offset = absl::Hours(-2)})
          .value();
  auto old = TlsContext::CreateServer(
      {.certificate_chain_pem = expired.certificate_pem,
       .private_key_pem = expired.key_pem});
  EXPECT_EQ(old.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(old.status().message(), HasSubstr("expired"));

  auto no_certificate = TlsContext::CreateServer({});
  EXPECT_EQ(no_certificate.status().code(), absl::StatusCode::kInvalidArgument);

  auto bad_cipher = TlsContext::CreateClient({.cipher_list = "NOT-A-CIPHER"});
  EXPECT_EQ(bad_cipher.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_cipher.status().message(), HasSubstr("NOT-A-CIPHER"));
}

}  // namespace
}  // namespace sluice
