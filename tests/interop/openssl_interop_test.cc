// sluice's TLS against peers nobody here wrote: OpenSSL's own s_server as
// the server for sluice's client, and s_client as a client of sluice's
// server, over real loopback sockets.

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/interop/child_process.h"
#include "transports/connection.h"
#include "transports/server.h"
#include "transports/tls/certificates.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice {
namespace {

using interop_testing::Child;

struct Seen {
  std::string received;
  bool made = false;
  bool eof = false;
  std::optional<absl::Status> lost;
  Transport* transport = nullptr;
};

// Echoes (servers) or sends a greeting (clients), and records.
class App final : public Protocol {
 public:
  App(Seen& seen, std::string greeting, bool echo)
      : seen_(seen), greeting_(std::move(greeting)), echo_(echo) {}
  void ConnectionMade(Transport& transport) override {
    seen_.made = true;
    seen_.transport = &transport;
    if (!greeting_.empty()) transport.Write(greeting_);
  }
  void DataReceived(std::string_view data) override {
    seen_.received.append(data);
    if (echo_) seen_.transport->Write(data);
  }
  bool EofReceived() override {
    seen_.eof = true;
    return false;
  }
  void ConnectionLost(const absl::Status& status) override {
    seen_.lost = status;
    seen_.transport = nullptr;
  }

 private:
  Seen& seen_;
  const std::string greeting_;
  const bool echo_;
};

class OpenSslInteropTest : public ::testing::Test {
 protected:
  OpenSslInteropTest() : loop_(EventLoop::Create().value()) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = tmp != nullptr ? tmp : "/tmp";
    KeyAndCertificate cert =
        GenerateSelfSigned({.common_name = "localhost",
                            .dns_names = {"localhost"},
                            .ip_addresses = {"127.0.0.1"}})
            .value();
    cert_pem_ = cert.certificate_pem;
    key_pem_ = cert.key_pem;
    cert_file_ = dir_ + "/cert.pem";
    key_file_ = dir_ + "/key.pem";
    EXPECT_TRUE(WritePemFile(cert_file_, cert_pem_, false).ok());
    EXPECT_TRUE(WritePemFile(key_file_, key_pem_, true).ok());
  }

  // A sluice TLS echo server on a free port: what its connection saw goes
  // to seen_, its handshake to handshake_.
  void StartEchoServer(TlsContextOptions options) {
    absl::StatusOr<TlsContext> context =
        TlsContext::CreateServer(std::move(options));
    ASSERT_TRUE(context.ok()) << context.status();
    server_context_ = *std::move(context);
    auto factory = [this]() -> std::unique_ptr<Protocol> {
      auto tls = TlsTransport::Create(*loop_, *server_context_, {},
                                      std::make_unique<App>(seen_, "", true))
                     .value();
      handshake_ = tls->Handshake();
      return tls;
    };
    absl::StatusOr<std::unique_ptr<Server>> server = loop_->RunUntilComplete(
        CreateServer(*loop_, factory, "127.0.0.1", 0));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  std::string ServerAddress() const {
    return absl::StrCat("127.0.0.1:", server_->addresses()[0].port());
  }

  // Runs the loop until `done`, for at most 10 s: the child works
  // meanwhile, on the real clock.
  bool RunUntil(absl::FunctionRef<bool()> done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!done()) {
      if (absl::Now() >= deadline) return false;
      loop_->RunOnce(absl::Milliseconds(5));
    }
    return true;
  }

  std::unique_ptr<EventLoop> loop_;
  std::string dir_;
  std::string cert_pem_, key_pem_, cert_file_, key_file_;
  std::optional<TlsContext> server_context_;
  std::unique_ptr<Server> server_;
  Seen seen_;
  std::optional<Future<absl::Status>> handshake_;
};

TEST_F(OpenSslInteropTest, SluiceClientAgainstOpenSslServer) {
  // -rev: s_server answers each line reversed.
  Child server({"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
                cert_file_, "-key", key_file_, "-naccept", "1", "-rev"});
  std::optional<std::string> port_text =
      server.WaitFor({"ACCEPT 127.0.0.1:"}, *loop_);
  ASSERT_TRUE(port_text.has_value());
  const int port = std::atoi(port_text->c_str());
  ASSERT_GT(port, 0) << *port_text;

  TlsContext context =
      TlsContext::CreateClient({.ca_pem = cert_pem_}).value();
  Seen seen;
  std::optional<Future<absl::Status>> handshake;
  auto factory = [&]() -> std::unique_ptr<Protocol> {
    auto tls = TlsTransport::Create(
                   *loop_, context, {.server_name = "localhost"},
                   std::make_unique<App>(seen, "hello sluice\n", false))
                   .value();
    handshake = tls->Handshake();
    return tls;
  };
  absl::StatusOr<Connection> connection = loop_->RunUntilComplete(
      CreateConnection(*loop_, factory, "127.0.0.1",
                       static_cast<uint16_t>(port)));
  ASSERT_TRUE(connection.ok()) << connection.status();
  ASSERT_TRUE(RunUntil([&] { return handshake->IsDone(); }));
  ASSERT_TRUE(handshake->Result().ok()) << handshake->Result();
  ASSERT_TRUE(RunUntil([&] {
    return seen.received.find('\n') != std::string::npos || seen.lost;
  }));
  EXPECT_EQ(seen.received, "eciuls olleh\n");
  const TlsInfo* info = seen.transport->GetExtraInfo<TlsInfo>();
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->version, "TLSv1.3");
  EXPECT_EQ(info->peer_subject, "CN=localhost");
  seen.transport->Close();
  ASSERT_TRUE(RunUntil([&] { return seen.lost.has_value(); }));
  EXPECT_TRUE(seen.lost->ok()) << *seen.lost;
}

TEST_F(OpenSslInteropTest, OpenSslClientAgainstSluiceServer) {
  ASSERT_NO_FATAL_FAILURE(
      StartEchoServer({.certificate_chain_file = cert_file_,
                       .private_key_file = key_file_,
                       .alpn_protocols = {"echo/1"}}));
  Child client({"openssl", "s_client", "-connect", ServerAddress(),
                "-CAfile", cert_file_,
                "-verify_return_error", "-servername", "localhost", "-alpn",
                "echo/1", "-quiet", "-no_ign_eof"});
  const std::string line = "a line through OpenSSL's client\n";
  client.Write(line);
  ASSERT_TRUE(client.WaitFor({line}, *loop_).has_value());
  EXPECT_EQ(seen_.received, line);
  ASSERT_NE(seen_.transport, nullptr);
  const TlsInfo* info = seen_.transport->GetExtraInfo<TlsInfo>();
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->alpn, "echo/1");
  EXPECT_EQ(info->server_name, "localhost");
  // s_client ends with close_notify when its input ends: a clean EOF here.
  client.CloseStdin();
  ASSERT_TRUE(RunUntil([&] { return seen_.lost.has_value(); }))
      << client.Poll();
  EXPECT_TRUE(seen_.eof);
  EXPECT_TRUE(seen_.lost->ok()) << *seen_.lost;
}

TEST_F(OpenSslInteropTest, KeyUpdatesFromOpenSslClientKeepTheEchoFlowing) {
  ASSERT_NO_FATAL_FAILURE(StartEchoServer(
      {.certificate_chain_file = cert_file_, .private_key_file = key_file_}));
  // -msg: s_client prints the handshake messages it sends and receives.
  Child client({"openssl", "s_client", "-connect", ServerAddress(), "-CAfile",
                cert_file_, "-verify_return_error", "-quiet", "-no_ign_eof",
                "-msg"});
  client.Write("before\n");
  ASSERT_TRUE(client.WaitFor({"before\n"}, *loop_).has_value());
  // "K": a KeyUpdate that asks sluice to update its keys too, so both
  // directions change keys; "k" changes the client's sending keys only.
  client.Write("K\n");
  // sluice answers with its own KeyUpdate at once, with nothing to write.
  ASSERT_TRUE(
      client.WaitFor({"<<< TLS 1.3, Handshake [length 0005], KeyUpdate"}, *loop_)
          .has_value());
  client.Write("after\n");
  ASSERT_TRUE(client.WaitFor({"after\n"}, *loop_).has_value());
  client.Write("k\n");
  // s_client reads a command and what follows it in one go as the command:
  // the line waits until it has acted.
  ASSERT_TRUE(RunUntil([&] {
    const std::string& output = client.Poll();
    return output.find("KEYUPDATE", output.find("KEYUPDATE") + 1) !=
           std::string::npos;
  })) << client.Poll();
  client.Write("last\n");
  ASSERT_TRUE(client.WaitFor({"last\n"}, *loop_).has_value());
  EXPECT_EQ(seen_.received, "before\nafter\nlast\n");
  client.CloseStdin();
  ASSERT_TRUE(RunUntil([&] { return seen_.lost.has_value(); }))
      << client.Poll();
  EXPECT_TRUE(seen_.lost->ok()) << *seen_.lost;
}

// A session from a site without client certificates, offered to a site
// (on the same server, chosen by SNI) that requires them: resumed, it would
// skip the certificate. OpenSSL's s_client offers it with -sess_in.
TEST_F(OpenSslInteropTest, ASessionResumesOnlyOnTheSiteThatIssuedIt) {
  auto context_for = [](const std::string& name, bool client_certificates) {
    KeyAndCertificate certificate =
        GenerateSelfSigned({.common_name = name, .dns_names = {name}}).value();
    TlsContextOptions options{.certificate_chain_pem = certificate.certificate_pem,
                              .private_key_pem = certificate.key_pem};
    if (client_certificates) {
      options.ca_pem =
          GenerateSelfSigned({.common_name = "admin CA", .is_ca = true})
              .value()
              .certificate_pem;
      options.verify = TlsVerify::kRequired;
    }
    return TlsContext::CreateServer(std::move(options)).value();
  };
  const TlsContext api = context_for("api.example", false);
  const TlsContext admin = context_for("admin.example", true);
  ASSERT_NO_FATAL_FAILURE(StartEchoServer(
      {.certificate_chain_file = cert_file_,
       .private_key_file = key_file_,
       .server_name_callback =
           [api, admin](std::string_view name)
               -> absl::StatusOr<const TlsContext*> {
         if (name == "api.example") return &api;
         if (name == "admin.example") return &admin;
         return nullptr;
       }}));
  const std::string session = dir_ + "/api.session";
  {
    Child first({"openssl", "s_client", "-connect", ServerAddress(),
                 "-servername", "api.example", "-sess_out", session, "-quiet",
                 "-no_ign_eof"});
    first.Write("hello\n");
    ASSERT_TRUE(first.WaitFor({"hello\n"}, *loop_).has_value());
    first.CloseStdin();
    EXPECT_EQ(first.WaitForExit(*loop_), 0) << first.Poll();
  }
  {
    // The session is good: it resumes on api.example.
    Child again({"openssl", "s_client", "-connect", ServerAddress(),
                 "-servername", "api.example", "-sess_in", session});
    again.Write("hello\n");
    ASSERT_TRUE(again.WaitFor({"Reused, TLSv1.3"}, *loop_).has_value());
  }
  Child attack({"openssl", "s_client", "-connect", ServerAddress(),
                "-servername", "admin.example", "-sess_in", session});
  attack.Write("hello\n");
  ASSERT_TRUE(attack.WaitFor({"certificate required"}, *loop_).has_value());
  EXPECT_EQ(attack.Poll().find("Reused,"), std::string::npos) << attack.Poll();
  ASSERT_TRUE(
      RunUntil([&] { return handshake_.has_value() && handshake_->IsDone(); }));
  EXPECT_THAT(std::string(handshake_->Result().message()),
              ::testing::HasSubstr("peer did not return a certificate"));
}

TEST_F(OpenSslInteropTest, RenegotiationIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartEchoServer(
      {.certificate_chain_file = cert_file_, .private_key_file = key_file_}));
  // TLS 1.2, where s_client's "R" asks for a renegotiation.
  Child client({"openssl", "s_client", "-connect", ServerAddress(), "-CAfile",
                cert_file_, "-tls1_2", "-quiet", "-no_ign_eof"});
  client.Write("one\n");
  ASSERT_TRUE(client.WaitFor({"one\n"}, *loop_).has_value());
  client.Write("R\n");
  ASSERT_TRUE(client.WaitFor({"no renegotiation"}, *loop_).has_value());
  // The client gives up on the connection: sluice's end fails (OpenSSL's
  // handshake_failure alert), with nothing delivered after the refusal.
  ASSERT_TRUE(RunUntil([&] { return seen_.lost.has_value(); }))
      << client.Poll();
  EXPECT_FALSE(seen_.lost->ok());
  EXPECT_EQ(seen_.received, "one\n");
}

TEST_F(OpenSslInteropTest, AServerAskingForClientCertificatesNamesItsCas) {
  KeyAndCertificate ca =
      GenerateSelfSigned({.common_name = "sluice interop CA", .is_ca = true})
          .value();
  ASSERT_NO_FATAL_FAILURE(
      StartEchoServer({.certificate_chain_file = cert_file_,
                       .private_key_file = key_file_,
                       .ca_pem = ca.certificate_pem,
                       .verify = TlsVerify::kOptional}));
  Child client({"openssl", "s_client", "-connect", ServerAddress(), "-CAfile",
                cert_file_, "-no_ign_eof"});
  client.Write("hello\n");
  // s_client prints the names from the CertificateRequest, then the echo.
  ASSERT_TRUE(client.WaitFor({"hello\n"}, *loop_).has_value());
  const std::string& output = client.Poll();
  const size_t names = output.find("Acceptable client certificate CA names");
  ASSERT_NE(names, std::string::npos) << output;
  EXPECT_NE(output.find("CN = sluice interop CA", names), std::string::npos)
      << output;
}

TEST_F(OpenSslInteropTest, OpenSslClientThatDoesNotTrustTheServerFails) {
  ASSERT_NO_FATAL_FAILURE(StartEchoServer(
      {.certificate_chain_pem = cert_pem_, .private_key_pem = key_pem_}));
  // s_client trusts another CA only.
  KeyAndCertificate other =
      GenerateSelfSigned({.common_name = "another CA", .is_ca = true}).value();
  const std::string other_file = dir_ + "/other_ca.pem";
  ASSERT_TRUE(WritePemFile(other_file, other.certificate_pem, false).ok());
  Child client({"openssl", "s_client", "-connect", ServerAddress(),
                "-verify_return_error", "-CAfile", other_file, "-quiet"});
  ASSERT_TRUE(
      client.WaitFor({"verify error", "certificate verify failed"}, *loop_)
          .has_value());
  ASSERT_TRUE(
      RunUntil([&] { return handshake_.has_value() && handshake_->IsDone(); }));
  EXPECT_FALSE(handshake_->Result().ok());
  EXPECT_FALSE(seen_.made);
}

}  // namespace
}  // namespace sluice
