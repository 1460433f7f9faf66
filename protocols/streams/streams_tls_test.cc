// The streams adapter over TLS, on real TCP: TLS from the start
// (StreamOptions), and STARTTLS mid-stream (StreamWriter::StartTls).

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "framework/event_loop.h"
#include "framework/task.h"
#include "gtest/gtest.h"
#include "protocols/streams/streams.h"
#include "transports/tls/testing/test_pki.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice {
namespace {

class StreamsTlsTest : public ::testing::Test {
 protected:
  StreamsTlsTest()
      : loop_(EventLoop::Create().value()),
        server_context_(tls_testing::ServerContext()),
        client_context_(tls_testing::ClientContext()) {
    loop_->SetErrorHandler([this](const LoopError& e) {
      errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
    });
  }

  // LineServer on a free port (`port_`).
  void StartLineServer(StreamOptions options);

  std::unique_ptr<EventLoop> loop_;
  TlsContext server_context_;
  TlsContext client_context_;
  std::vector<std::string> errors_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

// Echoes lines; after "STARTTLS" it answers "220 ready" and upgrades.
Task<absl::Status> LineServer(const TlsContext* context, StreamReader reader,
                              StreamWriter writer) {
  while (true) {
    absl::StatusOr<std::string> line = co_await reader.ReadLine();
    if (!line.ok()) co_return line.status();
    if (line->empty()) break;  // EOF.
    if (*line == "STARTTLS\n") {
      writer.Write("220 ready\n");
      absl::Status secured = co_await writer.StartTls(*context);
      if (!secured.ok()) co_return secured;
      continue;
    }
    const bool tls = writer.transport()->GetExtraInfo<TlsInfo>() != nullptr;
    writer.Write(absl::StrCat(tls ? "tls: " : "plain: ", *line));
    absl::Status drained = co_await writer.Drain();
    if (!drained.ok()) co_return drained;
  }
  writer.Close();
  co_return absl::OkStatus();
}

void StreamsTlsTest::StartLineServer(StreamOptions options) {
  absl::StatusOr<std::unique_ptr<Server>> server =
      loop_->RunUntilComplete(StartServer(
          *loop_,
          [this](StreamReader reader, StreamWriter writer) {
            return LineServer(&server_context_, reader, writer);
          },
          "127.0.0.1", 0, options));
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  port_ = server_->addresses()[0].port();
}

TEST_F(StreamsTlsTest, TlsFromTheStartThroughStreamOptions) {
  ASSERT_NO_FATAL_FAILURE(StartLineServer({.server = {.tls = &server_context_}}));
  auto client = [&]() -> Task<absl::StatusOr<std::string>> {
    absl::StatusOr<StreamPair> streams = co_await OpenConnection(
        *loop_, "127.0.0.1", port_,
        {.connect = {.tls = &client_context_,
                     .tls_options = {.server_name = "localhost"}}});
    if (!streams.ok()) co_return streams.status();
    streams->writer.Write("hello\n");
    absl::StatusOr<std::string> line = co_await streams->reader.ReadLine();
    streams->writer.Close();
    co_return line;
  };
  absl::StatusOr<std::string> answer = loop_->RunUntilComplete(client());
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(*answer, "tls: hello\n");
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

TEST_F(StreamsTlsTest, StartTlsMidStreamOnBothSides) {
  ASSERT_NO_FATAL_FAILURE(StartLineServer({}));
  std::vector<std::string> answers;
  auto client = [&]() -> Task<absl::Status> {
    absl::StatusOr<StreamPair> streams =
        co_await OpenConnection(*loop_, "127.0.0.1", port_);
    if (!streams.ok()) co_return streams.status();
    StreamReader& reader = streams->reader;
    StreamWriter& writer = streams->writer;
    writer.Write("before\nSTARTTLS\n");
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<std::string> line = co_await reader.ReadLine();
      if (!line.ok()) co_return line.status();
      answers.push_back(*line);
    }
    absl::Status secured = co_await writer.StartTls(
        client_context_, {.server_name = "localhost"});
    if (!secured.ok()) co_return secured;
    if (writer.transport()->GetExtraInfo<TlsInfo>() == nullptr) {
      co_return absl::InternalError("no TlsInfo after StartTls");
    }
    writer.Write("after\n");
    absl::StatusOr<std::string> line = co_await reader.ReadLine();
    if (!line.ok()) co_return line.status();
    answers.push_back(*line);
    writer.Close();
    // The server closes too: close_notify both ways, a clean EOF.
    absl::StatusOr<std::string> eof = co_await reader.ReadLine();
    if (!eof.ok()) co_return eof.status();
    answers.push_back(*eof);
    co_return co_await writer.WaitClosed();
  };
  absl::Status done = loop_->RunUntilComplete(client());
  ASSERT_TRUE(done.ok()) << done;
  EXPECT_EQ(answers, (std::vector<std::string>{"plain: before\n", "220 ready\n",
                                               "tls: after\n", ""}));
  EXPECT_TRUE(errors_.empty()) << errors_[0];
}

TEST_F(StreamsTlsTest, AFailedStartTlsIsItsResultAndTheStreamsError) {
  ASSERT_NO_FATAL_FAILURE(StartLineServer({}));
  TlsContext untrusting =
      TlsContext::CreateClient(
          {.ca_pem = tls_testing::Pki().other_ca.certificate_pem})
          .value();
  absl::Status after_failure;
  auto client = [&]() -> Task<absl::Status> {
    absl::StatusOr<StreamPair> streams =
        co_await OpenConnection(*loop_, "127.0.0.1", port_);
    if (!streams.ok()) co_return streams.status();
    streams->writer.Write("STARTTLS\n");
    absl::StatusOr<std::string> ready = co_await streams->reader.ReadLine();
    if (!ready.ok()) co_return ready.status();
    absl::Status secured = co_await streams->writer.StartTls(
        untrusting, {.server_name = "localhost"});
    after_failure = co_await streams->writer.Drain();
    co_return secured;
  };
  absl::Status done = loop_->RunUntilComplete(client());
  EXPECT_EQ(done.code(), absl::StatusCode::kUnauthenticated) << done;
  EXPECT_FALSE(after_failure.ok());
}

}  // namespace
}  // namespace sluice
