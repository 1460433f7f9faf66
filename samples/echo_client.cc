// Sends data to an echo server, checks that every byte comes back, and
// reports the throughput.
//
//   ./bazelw run //samples:echo_client -- --port=8888 --bytes=100000000
//   echo hello | ./bazelw run //samples:echo_client -- --port=8888
//   echo hello | ./bazelw run //samples:echo_client -- --port=8443 --tls
//       --ca=/tmp/certs/ca.pem --server_name=localhost
//
// With --bytes=0 (the default) it sends its standard input and prints the
// echo; otherwise a generated payload of that size. Writing honours flow
// control: it stops at PauseWriting and goes on at ResumeWriting. With
// --tls it speaks TLS to the server (samples/tls_echo_server), checking the
// server's certificate against --ca or the system's trust store.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/protocol.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "samples/command_line.h"
#include "transports/connection.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Echo server host.");
ABSL_FLAG(int, port, 8888, "Echo server port.");
ABSL_FLAG(std::string, unix, "", "Connect to this Unix socket path instead.");
ABSL_FLAG(int64_t, bytes, 0,
          "Size of a generated payload; 0 sends standard input instead.");
ABSL_FLAG(int64_t, chunk, 64 * 1024, "Bytes per write.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "Connect timeout; with --tls, also the handshake's.");
ABSL_FLAG(bool, tls, false, "Connect with TLS.");
ABSL_FLAG(std::string, ca, "",
          "With --tls: trust the CA certificates in this PEM file instead of "
          "the system's.");
ABSL_FLAG(std::string, server_name, "",
          "With --tls: the name the server's certificate must have (and SNI, "
          "for a DNS name); default: --host.");
ABSL_FLAG(bool, insecure, false,
          "With --tls: do not verify the server's certificate.");

namespace {

using sluice::EventLoop;

// The payload, generated or read from stdin, addressable by offset.
class Payload {
 public:
  explicit Payload(std::string text) : text_(std::move(text)) {}
  explicit Payload(int64_t size) : size_(size) {}

  int64_t size() const {
    return text_.has_value() ? static_cast<int64_t>(text_->size()) : size_;
  }
  bool generated() const { return !text_.has_value(); }
  // `length` bytes at `offset`, built in `scratch` when generated.
  std::string_view Slice(int64_t offset, int64_t length,
                         std::string& scratch) const {
    if (text_.has_value()) return std::string_view(*text_).substr(offset, length);
    scratch.resize(length);
    for (int64_t i = 0; i < length; ++i) scratch[i] = ByteAt(offset + i);
    return scratch;
  }
  static char ByteAt(int64_t offset) {
    return static_cast<char>('a' + offset % 26);
  }

 private:
  std::optional<std::string> text_;
  int64_t size_ = 0;
};

class EchoClient final : public sluice::Protocol {
 public:
  EchoClient(const Payload& payload, int64_t chunk,
             sluice::Future<absl::Status> done)
      : payload_(payload), chunk_(chunk), done_(std::move(done)) {}

  void ConnectionMade(sluice::Transport& transport) override {
    transport_ = &transport;
    if (payload_.size() == 0) {
      Finish(absl::OkStatus());
      return;
    }
    SendMore();
  }

  void PauseWriting() override { paused_ = true; }
  void ResumeWriting() override {
    paused_ = false;
    SendMore();
  }

  void DataReceived(std::string_view data) override {
    std::string scratch;
    std::string_view expected = payload_.Slice(
        received_, std::min<int64_t>(data.size(), payload_.size() - received_),
        scratch);
    if (data != expected) {
      Finish(absl::DataLossError(absl::StrFormat(
          "the echo differs from what was sent near byte %d", received_)));
      return;
    }
    if (!payload_.generated()) std::fwrite(data.data(), 1, data.size(), stdout);
    received_ += data.size();
    if (received_ == payload_.size()) Finish(absl::OkStatus());
  }

  void ConnectionLost(const absl::Status& status) override {
    Finish(status.ok() ? absl::UnavailableError(absl::StrFormat(
                             "the server closed the connection after %d of "
                             "%d bytes",
                             received_, payload_.size()))
                       : status);
  }

 private:
  void SendMore() {
    std::string scratch;
    while (!paused_ && sent_ < payload_.size() && !transport_->IsClosing()) {
      int64_t length = std::min(chunk_, payload_.size() - sent_);
      transport_->Write(payload_.Slice(sent_, length, scratch));
      sent_ += length;
    }
  }

  void Finish(absl::Status status) {
    if (done_.SetResult(std::move(status))) transport_->Close();
  }

  const Payload& payload_;
  const int64_t chunk_;
  sluice::Future<absl::Status> done_;
  sluice::Transport* transport_ = nullptr;
  int64_t sent_ = 0;
  int64_t received_ = 0;
  bool paused_ = false;
};

// The TLS layer for `app`, from the --tls flags.
absl::StatusOr<std::unique_ptr<sluice::TlsTransport>> MakeTls(
    EventLoop& loop, std::unique_ptr<sluice::Protocol> app) {
  sluice::TlsContextOptions context_options{.ca_file = absl::GetFlag(FLAGS_ca)};
  if (absl::GetFlag(FLAGS_insecure)) {
    context_options.verify = sluice::TlsVerify::kNone;
  }
  absl::StatusOr<sluice::TlsContext> context =
      sluice::TlsContext::CreateClient(std::move(context_options));
  if (!context.ok()) return context.status();
  std::string server_name = absl::GetFlag(FLAGS_server_name);
  if (server_name.empty()) server_name = absl::GetFlag(FLAGS_host);
  return sluice::TlsTransport::Create(
      loop, *context,
      {.server_name = std::move(server_name),
       .handshake_timeout = absl::GetFlag(FLAGS_timeout)},
      std::move(app));
}

sluice::Task<absl::Status> Run(EventLoop& loop, const Payload& payload) {
  sluice::Future<absl::Status> done(loop);
  sluice::ProtocolFactory factory = [&payload, done] {
    return std::make_unique<EchoClient>(payload, absl::GetFlag(FLAGS_chunk),
                                        done);
  };
  // The protocol above a TLS layer starts once the handshake is done, and
  // never if it fails: then only this says why.
  std::optional<sluice::Future<absl::Status>> handshake;
  if (absl::GetFlag(FLAGS_tls)) {
    absl::StatusOr<std::unique_ptr<sluice::TlsTransport>> tls =
        MakeTls(loop, factory());
    if (!tls.ok()) co_return tls.status();
    handshake = (*tls)->Handshake();
    // Made up front, so that bad options are reported; one connection
    // calls the factory once.
    factory = [tls = *std::move(tls)]() mutable { return std::move(tls); };
  }
  sluice::ConnectOptions options{.timeout = absl::GetFlag(FLAGS_timeout)};
  const absl::Time start = absl::Now();
  absl::StatusOr<sluice::Connection> connection;
  if (absl::GetFlag(FLAGS_unix).empty()) {
    connection = co_await sluice::CreateConnection(
        loop, std::move(factory), absl::GetFlag(FLAGS_host),
        static_cast<uint16_t>(absl::GetFlag(FLAGS_port)), options);
  } else {
    connection = co_await sluice::CreateUnixConnection(
        loop, std::move(factory), absl::GetFlag(FLAGS_unix), options);
  }
  if (!connection.ok()) co_return connection.status();
  if (handshake.has_value()) {
    absl::Status shook = co_await *handshake;
    if (!shook.ok()) co_return shook;
  }
  absl::Status echoed = co_await done;
  if (!echoed.ok()) co_return echoed;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (payload.generated()) {
    absl::PrintF("echoed and verified %d bytes in %.3f s (%.1f MiB/s each way)\n",
                 payload.size(), seconds,
                 payload.size() / (1024.0 * 1024.0) / std::max(seconds, 1e-9));
  }
  co_return absl::OkStatus();
}

}  // namespace

constexpr char kUsage[] =
    "Sends data to an echo server and checks that every byte comes back:\n"
    "standard input with --bytes=0, else a generated payload, reporting the\n"
    "throughput. --tls speaks TLS, checking the server against --ca.\n"
    "\n"
    "  ./bazelw run //samples:echo_client -- --port=8888 --bytes=100000000\n";

int main(int argc, char** argv) {
  sluice::samples::ParseCommandLine(argc, argv, kUsage);
  const int64_t bytes = absl::GetFlag(FLAGS_bytes);
  if (bytes < 0 || absl::GetFlag(FLAGS_chunk) <= 0) {
    absl::FPrintF(stderr, "echo_client: --bytes must be >= 0, --chunk > 0\n");
    return 2;
  }
  const bool insecure = absl::GetFlag(FLAGS_insecure);
  const bool has_ca = !absl::GetFlag(FLAGS_ca).empty();
  if (!absl::GetFlag(FLAGS_tls) &&
      (has_ca || insecure || !absl::GetFlag(FLAGS_server_name).empty())) {
    absl::FPrintF(
        stderr, "echo_client: --ca, --server_name and --insecure need --tls\n");
    return 2;
  }
  if (insecure && has_ca) {
    absl::FPrintF(stderr, "echo_client: give --ca or --insecure, not both\n");
    return 2;
  }
  Payload payload = bytes > 0 ? Payload(bytes)
                              : Payload(std::string(
                                    std::istreambuf_iterator<char>(std::cin),
                                    std::istreambuf_iterator<char>()));
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  if (!loop.ok()) {
    absl::FPrintF(stderr, "echo_client: %s\n", loop.status().ToString());
    return 1;
  }
  absl::Status result = (*loop)->RunUntilComplete(Run(**loop, payload));
  std::fflush(stdout);
  if (!result.ok()) {
    absl::FPrintF(stderr, "echo_client: %s\n", result.ToString());
    return 1;
  }
  return 0;
}
