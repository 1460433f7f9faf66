// Streams data to clients with back-pressure: each client sends a decimal
// byte count and a newline; the server streams that many bytes back in
// chunks, awaiting Drain() after each, then closes.
//
//   ./bazelw run //samples:stream_server -- --port=8889
//   printf '1000000000\n' | nc 127.0.0.1 8889 | pv >/dev/null
//
// Once a second it prints how many clients are connected and how many
// bytes its transports hold in total. With Drain, a client that reads
// slowly costs at most about the high watermark (64 KiB) plus one chunk;
// --no-drain skips the awaits (the classic mistake) so the buffers grow
// with whatever the clients do not read.
//
// --tls serves over TLS (the flow-control story through the TLS layer is
// the same), with --cert/--key or an ephemeral certificate:
//
//   ./bazelw run //samples:stream_server -- --tls
//   printf '1000000000\n' | openssl s_client -quiet -connect 127.0.0.1:8889 |
//       pv >/dev/null

#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/task.h"
#include "protocols/streams/stream_errors.h"
#include "protocols/streams/streams.h"
#include "samples/command_line.h"
#include "samples/server_tls_flags.h"
#include "transports/tls/tls_context.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 8889, "TCP port; 0 picks a free one.");
ABSL_FLAG(int64_t, chunk, 64 * 1024, "Bytes per write.");
ABSL_FLAG(bool, drain, true,
          "Await Drain() after each chunk; --no-drain (or --nodrain) skips "
          "the awaits, to watch memory grow.");
ABSL_FLAG(bool, tls, false,
          "Serve over TLS (see --cert, --key, --ca, --alpn).");
ABSL_FLAG(absl::Duration, stats_interval, absl::Seconds(1),
          "How often to print the statistics.");

namespace {

using sluice::StreamReader;
using sluice::StreamWriter;
using sluice::Task;

// The writers of the connected clients, for the statistics.
std::list<StreamWriter>& Clients() {
  static auto* clients = new std::list<StreamWriter>();
  return *clients;
}

// Requests that failed, by kind. Any peer can make these happen, so they are
// counted, not logged one by one: a log line per reset would let a client
// flood the log.
struct FailedRequests {
  uint64_t left_early = 0;  // EOF or a reset before the newline.
  uint64_t too_long = 0;    // A line past the reader's limit.
  uint64_t malformed = 0;   // Not a byte count.
};
FailedRequests& Failures() {
  static FailedRequests failures;
  return failures;
}

// What every client is sent, made once: the bytes are the same for all.
const std::string& Chunk() {
  static const std::string* chunk =
      new std::string(static_cast<size_t>(absl::GetFlag(FLAGS_chunk)), 'x');
  return *chunk;
}

Task<absl::Status> Serve(StreamReader reader, StreamWriter writer) {
  auto self = Clients().insert(Clients().end(), writer);
  // Removed however this coroutine ends.
  struct Unregister {
    std::list<StreamWriter>::iterator it;
    ~Unregister() { Clients().erase(it); }
  } unregister{self};

  absl::StatusOr<std::string> request = co_await reader.ReadLine();
  if (!request.ok()) {
    ++(sluice::IsLimitOverrun(request.status()) ? Failures().too_long
                                                 : Failures().left_early);
    co_return absl::OkStatus();
  }
  int64_t total = 0;
  if (request->empty() ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(*request), &total) ||
      total < 0) {
    // An empty line is EOF before any request.
    ++(request->empty() ? Failures().left_early : Failures().malformed);
    writer.Write("expected a byte count and a newline\n");
    writer.Close();
    co_return absl::OkStatus();
  }
  const std::string_view chunk = Chunk();
  const bool drain = absl::GetFlag(FLAGS_drain);
  for (int64_t sent = 0; sent < total;
       sent += static_cast<int64_t>(chunk.size())) {
    size_t n = static_cast<size_t>(
        std::min(static_cast<int64_t>(chunk.size()), total - sent));
    writer.Write(chunk.substr(0, n));
    if (drain) {
      absl::Status drained = co_await writer.Drain();
      if (!drained.ok()) co_return absl::OkStatus();  // The client left.
    } else if (writer.transport() == nullptr) {
      co_return absl::OkStatus();
    }
  }
  writer.Close();
  co_await writer.WaitClosed();
  co_return absl::OkStatus();
}

void PrintStats(sluice::EventLoop& loop, absl::Duration interval) {
  size_t buffered = 0;
  for (const StreamWriter& writer : Clients()) {
    if (sluice::Transport* transport = writer.transport()) {
      buffered += transport->GetWriteBufferSize();
    }
  }
  const FailedRequests& failed = Failures();
  absl::PrintF(
      "clients: %d, buffered: %d bytes, failed requests: %d left early, %d "
      "too long, %d malformed\n",
      Clients().size(), buffered, failed.left_early, failed.too_long,
      failed.malformed);
  loop.CallLater(interval, [&loop, interval] { PrintStats(loop, interval); });
}

}  // namespace

constexpr char kUsage[] =
    "Streams bytes to clients with back-pressure: a client sends a byte count\n"
    "and a newline, and gets that many bytes, with a Drain() after each chunk\n"
    "(--no-drain to watch memory grow). Prints its clients and buffered bytes.\n"
    "\n"
    "  ./bazelw run //samples:stream_server -- --port=8889\n"
    "  printf '1000000000\\n' | nc 127.0.0.1 8889 | pv >/dev/null\n";

int main(int argc, char** argv) {
  // Abseil spells the negation of --drain as --nodrain; accept --no-drain.
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--no-drain")
      argv[i] = const_cast<char*>("--nodrain");
  }
  sluice::samples::ParseCommandLine(argc, argv, kUsage);
  if (absl::GetFlag(FLAGS_chunk) <= 0) {
    absl::FPrintF(stderr, "stream_server: --chunk must be positive\n");
    return 2;
  }
  int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) {
    absl::FPrintF(stderr, "stream_server: --port must be 0..65535\n");
    return 2;
  }
  auto loop = sluice::EventLoop::Create();
  if (!loop.ok()) {
    absl::FPrintF(stderr, "stream_server: %s\n", loop.status().ToString());
    return 1;
  }
  std::optional<sluice::TlsContext> tls;
  if (absl::GetFlag(FLAGS_tls)) {
    absl::StatusOr<sluice::TlsContext> context =
        sluice::samples::ServerTlsContextFromFlags();
    if (!context.ok()) {
      absl::FPrintF(stderr, "stream_server: %s\n", context.status().ToString());
      return 1;
    }
    tls = *std::move(context);
  }
  sluice::StreamOptions options;
  if (tls.has_value()) options.server.tls = &*tls;
  auto server = (*loop)->RunUntilComplete(
      sluice::StartServer(**loop, Serve, absl::GetFlag(FLAGS_host),
                          static_cast<uint16_t>(port), options));
  if (!server.ok()) {
    absl::FPrintF(stderr, "stream_server: %s\n", server.status().ToString());
    return 1;
  }
  for (const sluice::SocketAddress& address : (*server)->addresses()) {
    absl::PrintF("stream server listening on %s\n", address.ToString());
  }
  PrintStats(**loop, absl::GetFlag(FLAGS_stats_interval));
  auto stop = [&] {
    (*server)->Close();
    (*server)->AbortClients();
    (*loop)->Stop();
  };
  for (int signo : {SIGINT, SIGTERM}) {
    if (absl::Status s = (*loop)->AddSignalHandler(signo, stop); !s.ok()) {
      absl::FPrintF(stderr, "stream_server: %s\n", s.ToString());
      return 1;
    }
  }
  (*loop)->RunForever();
  return 0;
}
