// sluice's TLS against asyncio over Python's ssl module (tests/interop/
// asyncio_peer.py), over real loopback TCP: each side as client and as
// server, TLS from the start and STARTTLS (asyncio's start_tls), with a
// MiB each way checked byte for byte on both sides.

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/task.h"
#include "framework/timeout.h"
#include "gtest/gtest.h"
#include "protocols/streams/streams.h"
#include "tests/interop/child_process.h"
#include "transports/tls/certificates.h"
#include "transports/tls/testing/test_pki.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice {
namespace {

using interop_testing::Child;

constexpr size_t kBytes = 1 << 20;

// Byte i is i % 251, as asyncio_peer.py makes it.
std::string Pattern(size_t size) {
  std::string pattern(size, '\0');
  for (size_t i = 0; i < size; ++i) pattern[i] = static_cast<char>(i % 251);
  return pattern;
}

std::string Peer() {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                      std::getenv("TEST_WORKSPACE"),
                      "/tests/interop/asyncio_peer.py");
}

// Echoes until EOF, then closes; after "STARTTLS\n" first if `starttls`.
Task<absl::Status> Echo(const TlsContext* starttls, size_t* echoed,
                        StreamReader reader, StreamWriter writer) {
  if (starttls != nullptr) {
    absl::StatusOr<std::string> line = co_await reader.ReadLine();
    if (!line.ok()) co_return line.status();
    if (*line != "STARTTLS\n") {
      co_return absl::InvalidArgumentError(absl::StrCat("got ", *line));
    }
    writer.Write("GO\n");
    absl::Status secured = co_await writer.StartTls(*starttls);
    if (!secured.ok()) co_return secured;
  }
  while (true) {
    absl::StatusOr<std::string> data = co_await reader.Read(64 * 1024);
    if (!data.ok()) co_return data.status();
    if (data->empty()) break;
    *echoed += data->size();
    writer.Write(*data);
    absl::Status drained = co_await writer.Drain();
    if (!drained.ok()) co_return drained;
  }
  writer.Close();
  co_await writer.WaitClosed();
  co_return absl::OkStatus();
}

// Sends the pattern, checks its echo, closes; what TLS version it spoke.
Task<absl::StatusOr<std::string>> SendAndCheck(EventLoop& loop, uint16_t port,
                                               const TlsContext* context,
                                               bool starttls) {
  StreamOptions options;
  if (!starttls) {
    options.connect.tls = context;
    options.connect.tls_options.server_name = "localhost";
  }
  absl::StatusOr<StreamPair> streams =
      co_await OpenConnection(loop, "127.0.0.1", port, options);
  if (!streams.ok()) co_return streams.status();
  StreamReader reader = streams->reader;
  StreamWriter writer = streams->writer;
  if (starttls) {
    writer.Write("STARTTLS\n");
    absl::StatusOr<std::string> line = co_await reader.ReadLine();
    if (!line.ok()) co_return line.status();
    if (*line != "GO\n") {
      co_return absl::InvalidArgumentError(absl::StrCat("got ", *line));
    }
    absl::Status secured =
        co_await writer.StartTls(*context, {.server_name = "localhost"});
    if (!secured.ok()) co_return secured;
  }
  const std::string sent = Pattern(kBytes);
  writer.Write(sent);
  absl::StatusOr<std::string> echoed = co_await reader.ReadExactly(kBytes);
  if (!echoed.ok()) co_return echoed.status();
  if (*echoed != sent) co_return absl::DataLossError("the echo differs");
  const std::string version =
      writer.transport()->GetExtraInfo<TlsInfo>()->version;
  writer.Close();
  // asyncio answers our close_notify with its own: a clean end.
  absl::Status closed = co_await writer.WaitClosed();
  if (!closed.ok()) co_return closed;
  co_return version;
}

class PythonInteropTest : public ::testing::Test {
 protected:
  PythonInteropTest()
      : loop_(EventLoop::Create().value()),
        server_context_(tls_testing::ServerContext()),
        client_context_(tls_testing::ClientContext()) {
    loop_->SetErrorHandler([this](const LoopError& e) {
      errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
    });
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string dir = tmp != nullptr ? tmp : "/tmp";
    ca_file_ = dir + "/ca.pem";
    cert_file_ = dir + "/server.pem";
    key_file_ = dir + "/server.key";
    const tls_testing::TestPki& pki = tls_testing::Pki();
    EXPECT_TRUE(WritePemFile(ca_file_, pki.ca.certificate_pem, false).ok());
    EXPECT_TRUE(WritePemFile(cert_file_, pki.server.certificate_pem, false).ok());
    EXPECT_TRUE(WritePemFile(key_file_, pki.server.key_pem, true).ok());
  }
  ~PythonInteropTest() override {
    EXPECT_TRUE(errors_.empty()) << ::testing::PrintToString(errors_);
  }

  // A sluice echo server; the asyncio client sends a MiB through it.
  void AsyncioClientAgainstSluiceServer(bool starttls) {
    size_t echoed = 0;
    StreamOptions options;
    if (!starttls) options.server.tls = &server_context_;
    const TlsContext* upgrade = starttls ? &server_context_ : nullptr;
    absl::StatusOr<std::unique_ptr<Server>> server =
        loop_->RunUntilComplete(StartServer(
            *loop_,
            [upgrade, &echoed](StreamReader reader, StreamWriter writer) {
              return Echo(upgrade, &echoed, reader, writer);
            },
            "127.0.0.1", 0, options));
    ASSERT_TRUE(server.ok()) << server.status();
    std::vector<std::string> argv = {
        "/usr/bin/python3", Peer(), "client",
        absl::StrCat("--port=", (*server)->addresses()[0].port()),
        "--ca=" + ca_file_, absl::StrCat("--bytes=", kBytes)};
    if (starttls) argv.push_back("--starttls");
    Child client(std::move(argv));
    std::optional<std::string> ok = client.WaitFor({"OK ", "FAIL"}, *loop_);
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ(*ok, absl::StrCat(kBytes, " TLSv1.3")) << client.Poll();
    EXPECT_EQ(client.WaitForExit(*loop_), 0) << client.Poll();
    EXPECT_EQ(echoed, kBytes);
  }

  // An asyncio echo server; sluice's client sends a MiB through it.
  void SluiceClientAgainstAsyncioServer(bool starttls) {
    std::vector<std::string> argv = {"/usr/bin/python3", Peer(), "server",
                                     "--cert=" + cert_file_,
                                     "--key=" + key_file_};
    if (starttls) argv.push_back("--starttls");
    Child server(std::move(argv));
    std::optional<std::string> port = server.WaitFor({"listening on "}, *loop_);
    ASSERT_TRUE(port.has_value());
    absl::StatusOr<std::string> version = loop_->RunUntilComplete(WithTimeout(
        *loop_,
        SendAndCheck(*loop_, static_cast<uint16_t>(std::atoi(port->c_str())),
                     &client_context_, starttls),
        absl::Seconds(10)));
    ASSERT_TRUE(version.ok()) << version.status() << "\n" << server.Poll();
    EXPECT_EQ(*version, "TLSv1.3");
    EXPECT_EQ(server.Poll().find("FAIL"), std::string::npos) << server.Poll();
  }

  std::unique_ptr<EventLoop> loop_;
  TlsContext server_context_;
  TlsContext client_context_;
  std::vector<std::string> errors_;
  std::string ca_file_, cert_file_, key_file_;
};

TEST_F(PythonInteropTest, AsyncioTlsClientAgainstSluiceServer) {
  AsyncioClientAgainstSluiceServer(/*starttls=*/false);
}

TEST_F(PythonInteropTest, AsyncioStartTlsClientAgainstSluiceStartTlsServer) {
  AsyncioClientAgainstSluiceServer(/*starttls=*/true);
}

TEST_F(PythonInteropTest, SluiceTlsClientAgainstAsyncioServer) {
  SluiceClientAgainstAsyncioServer(/*starttls=*/false);
}

TEST_F(PythonInteropTest, SluiceStartTlsClientAgainstAsyncioStartTlsServer) {
  SluiceClientAgainstAsyncioServer(/*starttls=*/true);
}

}  // namespace
}  // namespace sluice
