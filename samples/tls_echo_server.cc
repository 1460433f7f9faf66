// An echo server over TLS: echo_server's Protocol with a TlsTransport layer
// between it and each TCP connection.
//
//   ./bazelw run //samples:tls_echo_server -- --port=8443
//   echo hello | bazel-bin/samples/echo_client --port=8443 --tls --insecure
//
// With a CA of its own, and client certificates required (mutual TLS):
//
//   ./bazelw run //tools:make_certs -- --out=/tmp/certs
//   ./bazelw run //samples:tls_echo_server -- --cert=/tmp/certs/server.pem
//       --key=/tmp/certs/server.key --ca=/tmp/certs/ca.pem
//
// Without --cert and --key it makes a self-signed certificate for
// localhost, 127.0.0.1 and ::1 and prints its SHA-256 fingerprint, so a
// client can check it by hand (openssl s_client prints the same with
// `| openssl x509 -noout -fingerprint -sha256`). With --ca, clients must
// present a certificate that CA signed.

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "samples/command_line.h"
#include "samples/serve.h"
#include "samples/server_tls_flags.h"
#include "transports/server.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address to listen on; empty: every interface, IPv4 and IPv6.");
ABSL_FLAG(int, port, 8443, "TCP port; 0 picks a free one.");

namespace {

using sluice::EventLoop;

class EchoProtocol final : public sluice::Protocol {
 public:
  void ConnectionMade(sluice::Transport& transport) override {
    transport_ = &transport;
    const sluice::TlsInfo* tls = transport.GetExtraInfo<sluice::TlsInfo>();
    std::optional<sluice::SocketAddress> peer = transport.PeerAddress();
    std::string details = absl::StrFormat("%s %s", tls->version, tls->cipher);
    if (!tls->alpn.empty()) {
      absl::StrAppendFormat(&details, ", ALPN %s", tls->alpn);
    }
    if (!tls->peer_subject.empty()) {
      absl::StrAppendFormat(&details, ", client %s", tls->peer_subject);
    }
    absl::PrintF("%s: %s\n", peer.has_value() ? peer->ToString() : "?",
                 details);
  }
  void DataReceived(std::string_view data) override { transport_->Write(data); }
  // Back-pressure: stop reading while the client is not reading.
  void PauseWriting() override { transport_->PauseReading(); }
  void ResumeWriting() override { transport_->ResumeReading(); }
  void ConnectionLost(const absl::Status& status) override {
    if (!status.ok()) {
      absl::FPrintF(stderr, "tls_echo_server: %s\n", status.ToString());
    }
  }

 private:
  sluice::Transport* transport_ = nullptr;
};

sluice::Task<absl::StatusOr<std::unique_ptr<sluice::Server>>> Listen(
    EventLoop& loop, const sluice::TlsContext& context) {
  int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) {
    co_return absl::InvalidArgumentError(
        absl::StrFormat("--port must be 0..65535, got %d", port));
  }
  auto factory = [&loop, context] {
    // A server context with the default options: Create cannot fail.
    std::unique_ptr<sluice::TlsTransport> tls =
        sluice::TlsTransport::Create(loop, context, {},
                                     std::make_unique<EchoProtocol>())
            .value();
    // The protocol above never hears of a failed handshake.
    tls->Handshake().AddDoneCallback([](const absl::Status& status) {
      if (!status.ok()) {
        absl::FPrintF(stderr, "tls_echo_server: %s\n", status.ToString());
      }
    });
    return tls;
  };
  co_return co_await sluice::CreateServer(
      loop, factory, absl::GetFlag(FLAGS_host), static_cast<uint16_t>(port));
}

}  // namespace

constexpr char kUsage[] =
    "An echo server over TLS, with --cert/--key or an ephemeral self-signed\n"
    "certificate (its fingerprint printed); --ca requires client certificates.\n"
    "\n"
    "  ./bazelw run //samples:tls_echo_server -- --port=8443\n"
    "  openssl s_client -connect 127.0.0.1:8443 -quiet\n";

int main(int argc, char** argv) {
  sluice::samples::ParseCommandLine(argc, argv, kUsage);
  absl::StatusOr<sluice::TlsContext> context =
      sluice::samples::ServerTlsContextFromFlags();
  if (!context.ok()) {
    absl::FPrintF(stderr, "tls_echo_server: %s\n", context.status().ToString());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  if (!loop.ok()) {
    absl::FPrintF(stderr, "tls_echo_server: %s\n", loop.status().ToString());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<sluice::Server>> server =
      (*loop)->RunUntilComplete(Listen(**loop, *context));
  if (!server.ok()) {
    absl::FPrintF(stderr, "tls_echo_server: %s\n", server.status().ToString());
    return 1;
  }
  return sluice::samples::ServeUntilSignalled(**loop, **server, "tls echo server",
                                              "tls_echo_server");
}
