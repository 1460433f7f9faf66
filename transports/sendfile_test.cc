#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
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
#include "framework/future.h"
#include "framework/protocol.h"
#include "framework/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transports/socket_transport.h"

namespace sluice {
namespace {

// Bytes that tell where they came from: a shifted block is detected.
std::string Pattern(size_t size, int seed) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<char>((i * 131 + seed * 17 + i / 4096) % 251);
  }
  return bytes;
}

class Recorder : public Protocol {
 public:
  explicit Recorder(std::vector<std::string>& events) : events_(events) {}
  void ConnectionLost(const absl::Status& status) override {
    events_.push_back(absl::StrCat("lost:", absl::StatusCodeToString(status.code())));
  }
  void PauseWriting() override { events_.push_back("pause"); }
  void ResumeWriting() override { events_.push_back("resume"); }

 private:
  std::vector<std::string>& events_;
};

class SendFileTest : public ::testing::Test {
 protected:
  SendFileTest() : loop_(EventLoop::Create().value()) {
    watchdog_ = loop_->CallLater(absl::Seconds(60), [this] {
      ADD_FAILURE() << "test still running after 60 s";
      loop_->Stop();
    });
    // A TCP connection on loopback: our end becomes the transport, the
    // other end is read by the test on the loop.
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(listener, 1);
    socklen_t length = sizeof(address);
    getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    peer_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(connect(peer_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    int ours = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    close(listener);
    fcntl(peer_, F_SETFL, O_NONBLOCK);
    transport_ = &SocketTransport::Create(*loop_, ours,
                                          std::make_unique<Recorder>(events_));
    loop_->RunUntilIdle();
  }

  ~SendFileTest() override {
    StopReading();
    close(peer_);
    watchdog_.Cancel();
  }

  void StartReading() {
    ASSERT_TRUE(loop_->AddReader(peer_, [this] {
      char buf[65536];
      ssize_t n;
      while ((n = read(peer_, buf, sizeof(buf))) > 0) received_.append(buf, n);
      if (n == 0) peer_eof_ = true;
    }).ok());
  }
  void StopReading() { loop_->RemoveReader(peer_); }

  // A temporary file with `contents`, open for reading.
  int TempFile(const std::string& contents) {
    std::string path = absl::StrCat(getenv("TEST_TMPDIR"), "/sendfile_XXXXXX");
    int fd = mkstemp(path.data());
    EXPECT_GE(fd, 0);
    unlink(path.c_str());
    EXPECT_EQ(write(fd, contents.data(), contents.size()),
              static_cast<ssize_t>(contents.size()));
    files_.push_back(fd);
    return fd;
  }

  template <class T>
  T Await(Future<T> future) {
    return loop_->RunUntilComplete(future);
  }

  std::unique_ptr<EventLoop> loop_;
  Handle watchdog_;
  SocketTransport* transport_ = nullptr;
  int peer_ = -1;
  std::vector<std::string> events_;
  std::string received_;
  bool peer_eof_ = false;
  std::vector<int> files_;
};

TEST_F(SendFileTest, AFileLargerThanTheSocketBuffersArrivesWhole) {
  const std::string contents = Pattern(24 << 20, 1);  // 24 MiB
  int file = TempFile(contents);
  StartReading();
  absl::StatusOr<size_t> sent = Await(transport_->SendFile(file));
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(*sent, contents.size());
  ASSERT_TRUE(loop_->RunUntil([&] { return received_.size() >= contents.size(); }));
  EXPECT_TRUE(received_ == contents);
  // The file offset was not used or moved.
  EXPECT_EQ(lseek(file, 0, SEEK_CUR), static_cast<off_t>(contents.size()));
  close(file);
}

TEST_F(SendFileTest, ARangeOfTheFile) {
  const std::string contents = Pattern(1 << 20, 2);
  int file = TempFile(contents);
  StartReading();
  absl::StatusOr<size_t> sent = Await(transport_->SendFile(file, 1000, 5000));
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(*sent, 5000u);
  ASSERT_TRUE(loop_->RunUntil([&] { return received_.size() >= 5000; }));
  EXPECT_EQ(received_, contents.substr(1000, 5000));
  close(file);
}

TEST_F(SendFileTest, BehindBufferedDataItKeepsOrderAndFlowControl) {
  // The peer does not read: a write leaves data in the transport's buffer.
  const std::string before = Pattern(8 << 20, 3);
  transport_->Write(before);
  ASSERT_GT(transport_->GetWriteBufferSize(), 0u);
  ASSERT_EQ(events_, std::vector<std::string>{"pause"});
  const std::string contents = Pattern(4 << 20, 4);
  int file = TempFile(contents);
  Future<absl::StatusOr<size_t>> sending = transport_->SendFile(file);
  // A write made meanwhile goes after the file.
  transport_->Write("trailer");
  StartReading();
  absl::StatusOr<size_t> sent = Await(sending);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(*sent, contents.size());
  const std::string expected = before + contents + "trailer";
  ASSERT_TRUE(loop_->RunUntil([&] { return received_.size() >= expected.size(); }));
  EXPECT_TRUE(received_ == expected);
  // The read/write path never held more than a block above the low mark.
  EXPECT_EQ(events_.front(), "pause");
  EXPECT_EQ(events_.back(), "resume");
  close(file);
}

TEST_F(SendFileTest, CloseDuringSendFileDeliversTheFileThenCloses) {
  const std::string contents = Pattern(8 << 20, 5);
  int file = TempFile(contents);
  Future<absl::StatusOr<size_t>> sending = transport_->SendFile(file);
  transport_->Close();
  StartReading();
  ASSERT_TRUE(loop_->RunUntil([&] { return peer_eof_; }));
  EXPECT_TRUE(received_ == contents);
  ASSERT_TRUE(sending.IsDone());
  EXPECT_EQ(*sending.Result(), contents.size());
  EXPECT_EQ(events_.back(), "lost:OK");
  close(file);
}

TEST_F(SendFileTest, PeerResetFailsTheSendFile) {
  const std::string contents = Pattern(32 << 20, 6);
  int file = TempFile(contents);
  Future<absl::StatusOr<size_t>> sending = transport_->SendFile(file);
  // The peer goes away abortively without reading.
  linger abortive{1, 0};
  setsockopt(peer_, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
  close(peer_);
  peer_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // For ~SendFileTest.
  absl::StatusOr<size_t> sent = Await(sending);
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kUnavailable) << sent.status();
  ASSERT_TRUE(loop_->RunUntil([&] { return !events_.empty() && events_.back() == "lost:UNAVAILABLE"; }));
  close(file);
}

// Calls SendFile from inside DataReceived, behind a write the peer does not
// read, and checks that `data` is unchanged afterwards (the copy fallback
// must not read the file into memory that DataReceived is lent).
class SendsFileWhileParsing : public Protocol {
 public:
  SendsFileWhileParsing(Transport& transport, int file, std::string filler)
      : transport_(transport), file_(file), filler_(std::move(filler)) {}
  void DataReceived(std::string_view data) override {
    const std::string before(data);
    // A low mark above what stays buffered: the file is read at once.
    EXPECT_TRUE(transport_.SetWriteBufferLimits(64 << 20, 32 << 20).ok());
    transport_.Write(filler_);
    EXPECT_GT(transport_.GetWriteBufferSize(), 0u);
    sending_ = static_cast<SocketTransport&>(transport_).SendFile(file_);
    intact_ = data == before;
    received_ = true;
  }
  bool received() const { return received_; }
  bool intact() const { return intact_; }
  std::optional<Future<absl::StatusOr<size_t>>>& sending() { return sending_; }

 private:
  Transport& transport_;
  const int file_;
  const std::string filler_;
  std::optional<Future<absl::StatusOr<size_t>>> sending_;
  bool received_ = false;
  bool intact_ = false;
};

TEST_F(SendFileTest, SendFileInsideDataReceivedLeavesTheDataIntact) {
  const std::string contents = Pattern(1 << 20, 7);
  int file = TempFile(contents);
  const std::string filler = Pattern(8 << 20, 8);
  auto owned = std::make_unique<SendsFileWhileParsing>(*transport_, file, filler);
  SendsFileWhileParsing* protocol = owned.get();
  std::unique_ptr<Protocol> recorder = transport_->SetProtocol(std::move(owned));
  const std::string request = Pattern(4096, 9);
  ASSERT_EQ(write(peer_, request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  ASSERT_TRUE(loop_->RunUntil([&] { return protocol->received(); }));
  EXPECT_TRUE(protocol->intact());
  StartReading();
  ASSERT_TRUE(protocol->sending().has_value());
  absl::StatusOr<size_t> sent = Await(*protocol->sending());
  ASSERT_TRUE(sent.ok()) << sent.status();
  const std::string expected = filler + contents;
  ASSERT_TRUE(loop_->RunUntil([&] { return received_.size() >= expected.size(); }));
  EXPECT_TRUE(received_ == expected);
  close(file);
}

TEST_F(SendFileTest, APipeIsRefusedClearly) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(write(fds[1], "abc", 3), 3);
  absl::StatusOr<size_t> sent = Await(transport_->SendFile(fds[0]));
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(sent.status().message()), ::testing::HasSubstr("regular file"));
  close(fds[0]);
  close(fds[1]);
}

// Aborts its transport as soon as it is paused.
class AbortsOnPause : public Protocol {
 public:
  explicit AbortsOnPause(Transport& transport) : transport_(transport) {}
  void PauseWriting() override { transport_.Abort(); }

 private:
  Transport& transport_;
};

TEST_F(SendFileTest, AnAbortInsideThePauseThatAFileBlockCausesEndsTheSend) {
  // No pause while the filler is written; then limits just above what is
  // buffered, so the first block of the file lifts it above high.
  ASSERT_TRUE(transport_->SetWriteBufferLimits(size_t{1} << 30, 0).ok());
  transport_->Write(Pattern(8 << 20, 11));
  const size_t buffered = transport_->GetWriteBufferSize();
  ASSERT_GT(buffered, 0u);
  std::unique_ptr<Protocol> recorder =
      transport_->SetProtocol(std::make_unique<AbortsOnPause>(*transport_));
  ASSERT_TRUE(
      transport_->SetWriteBufferLimits(buffered + 1000, buffered + 500).ok());
  int file = TempFile(Pattern(4 << 20, 12));
  absl::StatusOr<size_t> sent = Await(transport_->SendFile(file));
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kUnavailable)
      << sent.status();
  close(file);
}

// Sends a file from inside ResumeWriting, once.
class SendsFileOnResume : public Protocol {
 public:
  SendsFileOnResume(SocketTransport& transport, int file)
      : transport_(transport), file_(file) {}
  void ResumeWriting() override {
    if (!sending_.has_value()) sending_ = transport_.SendFile(file_);
  }
  std::optional<Future<absl::StatusOr<size_t>>>& sending() { return sending_; }

 private:
  SocketTransport& transport_;
  const int file_;
  std::optional<Future<absl::StatusOr<size_t>>> sending_;
};

TEST_F(SendFileTest, ASendFileStartedInResumeWritingKeepsItsOrder) {
  // Low 0: the resume comes when the buffer is empty, so the file goes the
  // native way, from inside the drain.
  const std::string filler = Pattern(8 << 20, 13);
  const std::string contents = Pattern(4 << 20, 14);
  int file = TempFile(contents);
  auto owned = std::make_unique<SendsFileOnResume>(*transport_, file);
  SendsFileOnResume* protocol = owned.get();
  std::unique_ptr<Protocol> recorder = transport_->SetProtocol(std::move(owned));
  ASSERT_TRUE(transport_->SetWriteBufferLimits(64 * 1024, 0).ok());
  transport_->Write(filler);
  ASSERT_TRUE(transport_->IsWritingPaused());
  StartReading();
  ASSERT_TRUE(loop_->RunUntil([&] { return protocol->sending().has_value(); }));
  absl::StatusOr<size_t> sent = Await(*protocol->sending());
  ASSERT_TRUE(sent.ok()) << sent.status();
  const std::string expected = filler + contents;
  ASSERT_TRUE(loop_->RunUntil([&] { return received_.size() >= expected.size(); }));
  EXPECT_TRUE(received_ == expected);
  close(file);
}

TEST(SendFileUnixTest, APeerThatClosedIsAnErrorNotSigpipe) {
  auto loop = EventLoop::Create().value();
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                       pair),
            0);
  std::vector<std::string> events;
  SocketTransport& transport = SocketTransport::Create(
      *loop, pair[0], std::make_unique<Recorder>(events));
  loop->RunUntilIdle();
  close(pair[1]);
  std::string path = absl::StrCat(getenv("TEST_TMPDIR"), "/sendfile_XXXXXX");
  int file = mkstemp(path.data());
  ASSERT_GE(file, 0);
  unlink(path.c_str());
  const std::string contents = Pattern(1 << 20, 10);
  ASSERT_EQ(write(file, contents.data(), contents.size()),
            static_cast<ssize_t>(contents.size()));
  // Default SIGPIPE action: the process would die here without the fix.
  signal(SIGPIPE, SIG_DFL);
  absl::StatusOr<size_t> sent = loop->RunUntilComplete(transport.SendFile(file));
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kUnavailable) << sent.status();
  ASSERT_TRUE(loop->RunUntil(
      [&] { return !events.empty() && events.back() == "lost:UNAVAILABLE"; }));
  // No SIGPIPE is left pending for this thread either.
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
  close(file);
}

TEST_F(SendFileTest, BadArgumentsAreErrorsNotCrashes) {
  int file = TempFile("tiny");
  EXPECT_EQ(Await(transport_->SendFile(file, 100)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Await(transport_->SendFile(file, -1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Await(transport_->SendFile(-1)).ok());
  EXPECT_EQ(*Await(transport_->SendFile(file, 4)), 0u);  // Nothing left.
  transport_->Close();
  EXPECT_EQ(Await(transport_->SendFile(file)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  close(file);
}

}  // namespace
}  // namespace sluice
