// An echo server written as a sluice Protocol.
//
//   ./bazelw run //samples:echo_server -- --port=8888
//   ./bazelw run //samples:echo_server -- --unix=/tmp/echo.sock
//   ./bazelw run //samples:echo_server -- --port=8888 --mode=streams
//
// Flow control both ways: when a client does not read its echo and the
// write buffer passes the high watermark, the server stops reading from
// that client until the buffer drains, so a client that sends without
// reading cannot grow the server's memory beyond the watermarks.


#include <cstdio>
#include <memory>
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
#include "protocols/streams/streams.h"
#include "samples/command_line.h"
#include "samples/serve.h"
#include "transports/server.h"

ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address to listen on; empty: every interface, IPv4 and IPv6.");
ABSL_FLAG(int, port, 8888, "TCP port; 0 picks a free one.");
ABSL_FLAG(std::string, unix, "", "Listen on this Unix socket path instead.");
ABSL_FLAG(std::string, mode, "protocol",
          "protocol: a Protocol subclass; streams: a coroutine per client "
          "with StreamReader::Read, StreamWriter::Write and Drain.");

namespace {

using sluice::EventLoop;

class EchoProtocol final : public sluice::Protocol {
 public:
  void ConnectionMade(sluice::Transport& transport) override {
    transport_ = &transport;
  }
  void DataReceived(std::string_view data) override { transport_->Write(data); }
  // Back-pressure: stop reading while the client is not reading.
  void PauseWriting() override { transport_->PauseReading(); }
  void ResumeWriting() override { transport_->ResumeReading(); }

 private:
  sluice::Transport* transport_ = nullptr;
};

// The same echo as a coroutine over the streams adapter. Reads take up to
// what a Protocol's DataReceived gets at once.
sluice::Task<absl::Status> EchoStreams(sluice::StreamReader reader,
                                       sluice::StreamWriter writer) {
  while (true) {
    absl::StatusOr<std::string> data = co_await reader.Read(256 * 1024);
    if (!data.ok() || data->empty()) break;  // An error, or EOF.
    writer.Write(*std::move(data));  // Its buffer serves the next read.
    if (!(co_await writer.Drain()).ok()) break;
  }
  writer.Close();
  co_return absl::OkStatus();
}

sluice::Task<absl::StatusOr<std::unique_ptr<sluice::Server>>> Listen(
    EventLoop& loop) {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "protocol" && mode != "streams") {
    co_return absl::InvalidArgumentError(
        absl::StrFormat("--mode must be protocol or streams, got '%s'", mode));
  }
  const bool streams = mode == "streams";
  auto factory = [] { return std::make_unique<EchoProtocol>(); };
  if (std::string path = absl::GetFlag(FLAGS_unix); !path.empty()) {
    if (streams) co_return sluice::StartUnixServer(loop, EchoStreams, path);
    co_return sluice::CreateUnixServer(loop, factory, path);
  }
  int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) {
    co_return absl::InvalidArgumentError(
        absl::StrFormat("--port must be 0..65535, got %d", port));
  }
  const std::string host = absl::GetFlag(FLAGS_host);
  if (streams) {
    co_return co_await sluice::StartServer(loop, EchoStreams, host,
                                           static_cast<uint16_t>(port));
  }
  co_return co_await sluice::CreateServer(loop, factory, host,
                                          static_cast<uint16_t>(port));
}

}  // namespace

constexpr char kUsage[] =
    "An echo server, as a Protocol (--mode=protocol) or a coroutine per client\n"
    "(--mode=streams), with flow control: a client that does not read its\n"
    "echo is not read from. SIGINT/SIGTERM shut it down gracefully.\n"
    "\n"
    "  ./bazelw run //samples:echo_server -- --port=8888\n";

int main(int argc, char** argv) {
  sluice::samples::ParseCommandLine(argc, argv, kUsage);
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  if (!loop.ok()) {
    absl::FPrintF(stderr, "echo_server: %s\n", loop.status().ToString());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<sluice::Server>> server =
      (*loop)->RunUntilComplete(Listen(**loop));
  if (!server.ok()) {
    absl::FPrintF(stderr, "echo_server: %s\n", server.status().ToString());
    return 1;
  }
  return sluice::samples::ServeUntilSignalled(**loop, **server, "echo server",
                                              "echo_server");
}
