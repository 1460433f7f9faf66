// tls_bulk: how fast one TLS connection moves bulk data, sluice at both
// ends over loopback TCP. The server runs on a thread of its own (pinned to
// --server_cpu) and writes --bytes under flow control; the client (pinned
// to --client_cpu) reads them into a BufferedProtocol. Both ends do
// AES-GCM, each on its own CPU, so the figure to compare is `openssl speed
// -evp aes-128-gcm`'s 16 KiB rate (one core encrypting); see
// docs/benchmarks.md.
//
//   ./bazelw run --config=opt //tools/bench:tls_bulk -- --bytes=4GiB
//
// Prints one line: "RESULT bytes=... seconds=... mb_per_s=... tls=...";
// --notls runs the same over plain TCP (tls="").

#include <pthread.h>
#include <sched.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/transport.h"
#include "transports/connection.h"
#include "transports/server.h"
#include "transports/tls/certificates.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

ABSL_FLAG(int64_t, bytes, int64_t{4} << 30, "Bytes to move.");
ABSL_FLAG(int64_t, chunk, 256 * 1024, "Bytes per server Write.");
ABSL_FLAG(int64_t, high_water, 0,
          "The server transport's high watermark (0: the default, 64 KiB); "
          "low is a quarter of it.");
ABSL_FLAG(int, server_cpu, 0, "CPU the server thread is pinned to.");
ABSL_FLAG(int, client_cpu, 1, "CPU the client (main) thread is pinned to.");
ABSL_FLAG(bool, tls, true,
          "--notls: the same over plain TCP, for what the kernel and the "
          "transports cost without TLS.");
ABSL_FLAG(std::string, ciphersuites, "TLS_AES_128_GCM_SHA256",
          "TLS 1.3 cipher suites (OpenSSL syntax).");

namespace sluice {
namespace {

void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// Writes `total` bytes as fast as flow control lets it, then closes.
class Sender final : public Protocol {
 public:
  Sender(int64_t total, size_t chunk) : left_(total), chunk_(chunk, 'b') {}
  void ConnectionMade(Transport& transport) override {
    transport_ = &transport;
    if (const int64_t high = absl::GetFlag(FLAGS_high_water); high > 0) {
      transport.SetWriteBufferLimits(static_cast<size_t>(high)).IgnoreError();
    }
    Send();
  }
  void PauseWriting() override { paused_ = true; }
  void ResumeWriting() override {
    paused_ = false;
    Send();
  }

 private:
  void Send() {
    while (!paused_ && left_ > 0) {
      const size_t n = static_cast<size_t>(
          std::min<int64_t>(left_, static_cast<int64_t>(chunk_.size())));
      left_ -= static_cast<int64_t>(n);
      transport_->Write(std::string_view(chunk_).substr(0, n));
    }
    if (left_ == 0 && !closed_) {
      closed_ = true;
      transport_->Close();
    }
  }

  Transport* transport_ = nullptr;
  int64_t left_;
  const std::string chunk_;
  bool paused_ = false;
  bool closed_ = false;
};

// What the client saw; outlives its connection.
struct Outcome {
  int64_t received = 0;
  absl::Duration elapsed;
  absl::Status status;
  std::string tls;
};

// Counts what arrives, from its ConnectionMade (the handshake done) to the
// server's close_notify.
class Counter final : public BufferedProtocol {
 public:
  Counter(EventLoop& loop, Outcome& outcome)
      : loop_(loop), outcome_(outcome), buffer_(256 * 1024) {}
  void ConnectionMade(Transport& transport) override {
    started_ = absl::Now();
    if (const TlsInfo* info = transport.GetExtraInfo<TlsInfo>()) {
      outcome_.tls = absl::StrCat(info->version, " ", info->cipher);
    }
  }
  std::span<char> GetBuffer(size_t) override { return buffer_; }
  void BufferUpdated(size_t size) override { outcome_.received += size; }
  bool EofReceived() override {
    outcome_.elapsed = absl::Now() - started_;
    return false;
  }
  void ConnectionLost(const absl::Status& status) override {
    outcome_.status = status;
    loop_.Stop();
  }

 private:
  EventLoop& loop_;
  Outcome& outcome_;
  std::vector<char> buffer_;
  absl::Time started_;
};

int Run() {
  const int64_t total = absl::GetFlag(FLAGS_bytes);
  const int64_t chunk = absl::GetFlag(FLAGS_chunk);
  if (total <= 0 || chunk <= 0) {
    absl::FPrintF(stderr, "tls_bulk: --bytes and --chunk must be positive\n");
    return 2;
  }
  absl::StatusOr<KeyAndCertificate> certificate =
      GenerateSelfSigned({.common_name = "localhost", .dns_names = {"localhost"}});
  if (!certificate.ok()) {
    absl::FPrintF(stderr, "tls_bulk: %s\n", certificate.status().ToString());
    return 1;
  }
  const std::string suites = absl::GetFlag(FLAGS_ciphersuites);
  absl::StatusOr<TlsContext> server_context = TlsContext::CreateServer(
      {.certificate_chain_pem = certificate->certificate_pem,
       .private_key_pem = certificate->key_pem,
       .min_version = TlsVersion::kTls13,
       .cipher_suites = suites});
  absl::StatusOr<TlsContext> client_context = TlsContext::CreateClient(
      {.ca_pem = certificate->certificate_pem,
       .min_version = TlsVersion::kTls13,
       .cipher_suites = suites});
  if (!server_context.ok() || !client_context.ok()) {
    absl::FPrintF(stderr, "tls_bulk: %s %s\n",
                  server_context.status().ToString(),
                  client_context.status().ToString());
    return 1;
  }

  // The server's loop, on its thread, until the client is done.
  absl::Notification listening;
  absl::Notification done;
  uint16_t port = 0;
  std::thread server_thread([&] {
    Pin(absl::GetFlag(FLAGS_server_cpu));
    pthread_setname_np(pthread_self(), "tls_bulk_server");  // For profiles.
    std::unique_ptr<EventLoop> loop = EventLoop::Create().value();
    ServerOptions options;
    if (absl::GetFlag(FLAGS_tls)) options.tls = &*server_context;
    absl::StatusOr<std::unique_ptr<Server>> server =
        loop->RunUntilComplete(CreateServer(
            *loop,
            [&] {
              return std::make_unique<Sender>(total, static_cast<size_t>(chunk));
            },
            "127.0.0.1", 0, options));
    if (server.ok()) port = (*server)->addresses()[0].port();
    listening.Notify();
    while (server.ok() && !done.HasBeenNotified()) {
      loop->RunOnce(absl::Milliseconds(50));
    }
  });
  listening.WaitForNotification();
  if (port == 0) {
    absl::FPrintF(stderr, "tls_bulk: the server did not start\n");
    server_thread.join();
    return 1;
  }

  Pin(absl::GetFlag(FLAGS_client_cpu));
  std::unique_ptr<EventLoop> loop = EventLoop::Create().value();
  Outcome outcome;
  ConnectOptions options;
  if (absl::GetFlag(FLAGS_tls)) options.tls = &*client_context;
  absl::StatusOr<Connection> connection = loop->RunUntilComplete(
      CreateConnection(
          *loop,
          [&] { return std::make_unique<Counter>(*loop, outcome); },
          "localhost", port, options));
  int exit_code = 0;
  if (!connection.ok()) {
    absl::FPrintF(stderr, "tls_bulk: %s\n", connection.status().ToString());
    exit_code = 1;
  } else {
    loop->RunForever();
    const double seconds = absl::ToDoubleSeconds(outcome.elapsed);
    if (!outcome.status.ok() || outcome.received != total) {
      absl::FPrintF(stderr, "tls_bulk: received %d of %d bytes: %s\n",
                    outcome.received, total, outcome.status.ToString());
      exit_code = 1;
    } else {
      absl::PrintF("RESULT bytes=%d seconds=%.4f mb_per_s=%.1f tls=\"%s\"\n",
                   total, seconds, static_cast<double>(total) / seconds / 1e6,
                   outcome.tls);
    }
  }
  done.Notify();
  server_thread.join();
  return exit_code;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "How fast one TLS connection moves bulk data over loopback TCP, sluice "
      "at both ends; prints one RESULT line.\n\n"
      "  ./bazelw run --config=opt //tools/bench:tls_bulk -- --bytes=4GiB");
  absl::ParseCommandLine(argc, argv);
  return sluice::Run();
}
