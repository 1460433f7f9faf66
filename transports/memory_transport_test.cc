#include "transports/memory_transport.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;

// A line protocol under test: answers each line in upper case, after
// `delay` (to show the virtual clock).
class ShoutProtocol : public Protocol {
 public:
  ShoutProtocol(std::vector<std::string>& log, absl::Duration delay)
      : log_(log), delay_(delay) {}

  void ConnectionMade(Transport& transport) override {
    transport_ = &transport;
    log_.push_back("made");
  }
  void DataReceived(std::string_view data) override {
    pending_.append(data);
    size_t newline;
    while ((newline = pending_.find('\n')) != std::string::npos) {
      std::string line = absl::AsciiStrToUpper(pending_.substr(0, newline + 1));
      pending_.erase(0, newline + 1);
      if (delay_ == absl::ZeroDuration()) {
        transport_->Write(line);
      } else {
        transport_->loop().CallLater(delay_, [this, line] {
          transport_->Write(line);
        });
      }
    }
  }
  bool EofReceived() override {
    log_.push_back("eof");
    return false;
  }
  void PauseWriting() override { log_.push_back("pause"); }
  void ResumeWriting() override { log_.push_back("resume"); }
  void ConnectionLost(const absl::Status& status) override {
    log_.push_back(absl::StrCat("lost:", absl::StatusCodeToString(status.code())));
  }

 private:
  std::vector<std::string>& log_;
  absl::Duration delay_;
  Transport* transport_ = nullptr;
  std::string pending_;
};

class MemoryTransportTest : public ::testing::Test {
 protected:
  MemoryTransportTest()
      : loop_(EventLoop::Create(EventLoopOptions{.clock = &clock_}).value()) {}

  VirtualClock clock_;
  std::unique_ptr<EventLoop> loop_;
  std::vector<std::string> log_;
};

TEST_F(MemoryTransportTest, TheTestPlaysThePeer) {
  MemoryTransport& transport = MemoryTransport::Create(
      *loop_, std::make_unique<ShoutProtocol>(log_, absl::ZeroDuration()));
  loop_->RunUntilIdle();
  EXPECT_THAT(log_, ElementsAre("made"));
  transport.DeliverFromPeer("hello\nwor");
  transport.DeliverFromPeer("ld\n");
  EXPECT_EQ(transport.sent(), "");  // Delivered on a later iteration.
  loop_->RunUntilIdle();
  EXPECT_EQ(transport.TakeSent(), "HELLO\nWORLD\n");
  transport.DeliverEofFromPeer();
  loop_->RunUntilIdle();
  // The transport is gone now: it lived until ConnectionLost returned.
  EXPECT_THAT(log_, ElementsAre("made", "eof", "lost:OK"));
}

TEST_F(MemoryTransportTest, ASlowPeerDrivesFlowControl) {
  MemoryTransport& transport = MemoryTransport::Create(
      *loop_, std::make_unique<ShoutProtocol>(log_, absl::ZeroDuration()));
  loop_->RunUntilIdle();
  transport.SetPeerReading(false);
  std::string line(1000, 'x');
  line.back() = '\n';
  for (int i = 0; i < 70; ++i) transport.DeliverFromPeer(line);
  loop_->RunUntilIdle();
  // 70 000 bytes buffered: above the 64 KiB high watermark.
  EXPECT_EQ(transport.GetWriteBufferSize(), 70000u);
  EXPECT_THAT(log_, ElementsAre("made", "pause"));
  transport.SetPeerReading(true);
  loop_->RunUntilIdle();
  EXPECT_THAT(log_, ElementsAre("made", "pause", "resume"));
  EXPECT_EQ(transport.GetWriteBufferSize(), 0u);
  EXPECT_EQ(transport.TakeSent().size(), 70000u);
}

TEST_F(MemoryTransportTest, PumpConnectsTwoProtocolsOnVirtualTime) {
  std::vector<std::string> server_log;
  // The client records what it receives.
  class Client : public Protocol {
   public:
    explicit Client(std::string& received) : received_(received) {}
    void ConnectionMade(Transport& transport) override {
      transport.Write("slow answer please\n");
    }
    void DataReceived(std::string_view data) override { received_.append(data); }

   private:
    std::string& received_;
  };
  std::string received;
  auto [client, server] = ConnectInMemory(
      *loop_, std::make_unique<Client>(received),
      std::make_unique<ShoutProtocol>(server_log, absl::Minutes(5)));
  ASSERT_TRUE(loop_->RunUntil([&] { return !received.empty(); }));
  EXPECT_EQ(received, "SLOW ANSWER PLEASE\n");
  // Five virtual minutes passed, instantly.
  EXPECT_EQ(Difference(loop_->Time(), MonotonicTime{}), absl::Minutes(5));
  client->Close();
  loop_->Run();
  EXPECT_THAT(server_log, ElementsAre("made", "eof", "lost:OK"));
}

TEST_F(MemoryTransportTest, AReceiverThatPausesReadingHoldsBackTheSender) {
  std::vector<std::string> sender_log;
  class Receiver : public Protocol {
   public:
    void ConnectionMade(Transport& transport) override {
      transport_ = &transport;
    }
    void DataReceived(std::string_view data) override { bytes += data.size(); }
    Transport* transport_ = nullptr;
    size_t bytes = 0;
  };
  auto receiver_owned = std::make_unique<Receiver>();
  Receiver* receiver = receiver_owned.get();
  auto [sender, receiving] = ConnectInMemory(
      *loop_, std::make_unique<ShoutProtocol>(sender_log, absl::ZeroDuration()),
      std::move(receiver_owned));
  loop_->RunUntilIdle();
  receiving->PauseReading();
  sender->Write(std::string(100000, 'a'));  // Above high: paused in Write.
  EXPECT_THAT(sender_log, ElementsAre("made", "pause"));
  loop_->RunUntilIdle();
  EXPECT_EQ(receiver->bytes, 0u);
  EXPECT_EQ(sender->GetWriteBufferSize(), 100000u);
  receiving->ResumeReading();
  loop_->RunUntilIdle();
  EXPECT_EQ(receiver->bytes, 100000u);
  EXPECT_THAT(sender_log, ElementsAre("made", "pause", "resume"));
}

TEST_F(MemoryTransportTest, ResetFromPeerIsTheConnectionLostError) {
  MemoryTransport& transport = MemoryTransport::Create(
      *loop_, std::make_unique<ShoutProtocol>(log_, absl::ZeroDuration()));
  loop_->RunUntilIdle();
  transport.ResetFromPeer(absl::UnavailableError("connection reset by peer"));
  loop_->RunUntilIdle();
  EXPECT_THAT(log_, ElementsAre("made", "lost:UNAVAILABLE"));
}

TEST_F(MemoryTransportTest, ClosingWithTheOthersBytesUnreadResetsIt) {
  // B stops reading, A writes (the bytes stay buffered in A), B closes.
  // Over a socket A would get a reset; in memory, A must not wait forever.
  std::vector<std::string> sender_log;
  std::vector<std::string> receiver_log;
  auto [a, b] = ConnectInMemory(
      *loop_, std::make_unique<ShoutProtocol>(sender_log, absl::ZeroDuration()),
      std::make_unique<ShoutProtocol>(receiver_log, absl::ZeroDuration()));
  loop_->RunUntilIdle();
  b->PauseReading();
  a->Write("unread\n");
  loop_->RunUntilIdle();
  ASSERT_EQ(a->GetWriteBufferSize(), 7u);
  b->Close();  // Resets A at once, as a socket closed with input unread.
  loop_->RunUntilIdle();
  EXPECT_THAT(receiver_log, ElementsAre("made", "lost:OK"));
  EXPECT_THAT(sender_log, ElementsAre("made", "lost:UNAVAILABLE"));
}

TEST_F(MemoryTransportTest, ClosingWithDeliveredButUnreadBytesResetsTheSender) {
  std::vector<std::string> sender_log;
  std::vector<std::string> receiver_log;
  auto [a, b] = ConnectInMemory(
      *loop_, std::make_unique<ShoutProtocol>(sender_log, absl::ZeroDuration()),
      std::make_unique<ShoutProtocol>(receiver_log, absl::ZeroDuration()));
  loop_->RunUntilIdle();
  a->Write("in flight\n");  // Handed to B, not yet delivered.
  b->Close();
  loop_->RunUntilIdle();
  EXPECT_THAT(sender_log, ElementsAre("made", "lost:UNAVAILABLE"));
}

TEST_F(MemoryTransportTest, AWriteToAPeerThatIsClosingEndsInAReset) {
  // B closes with nothing unread; A writes before B's ConnectionLost (the
  // bytes stay in A's buffer: B no longer reads), then gets B's EOF and
  // closes. A's Close must complete rather than wait for a flush that
  // cannot happen.
  std::vector<std::string> a_log;
  std::vector<std::string> b_log;
  auto [a, b] = ConnectInMemory(
      *loop_, std::make_unique<ShoutProtocol>(a_log, absl::ZeroDuration()),
      std::make_unique<ShoutProtocol>(b_log, absl::ZeroDuration()));
  loop_->RunUntilIdle();
  b->Close();
  a->Write("too late\n");
  EXPECT_EQ(a->GetWriteBufferSize(), 9u);
  loop_->RunUntilIdle();
  EXPECT_THAT(b_log, ElementsAre("made", "lost:OK"));
  ASSERT_EQ(a_log.size(), 3u);
  EXPECT_EQ(a_log.back(), "lost:UNAVAILABLE");
}

TEST_F(MemoryTransportTest, ACloseInsideResumeWritingFlushesEverythingFirst) {
  class ClosesOnResume final : public Protocol {
   public:
    void ConnectionMade(Transport& transport) override { transport_ = &transport; }
    void ResumeWriting() override { transport_->Close(); }
    Transport* transport_ = nullptr;
  };
  std::vector<std::string> log;
  class Receiver final : public Protocol {
   public:
    explicit Receiver(std::vector<std::string>& log) : log_(log) {}
    void ConnectionMade(Transport& transport) override { transport_ = &transport; }
    void DataReceived(std::string_view data) override { bytes += data.size(); }
    bool EofReceived() override {
      log_.push_back(absl::StrCat("eof after ", bytes));
      return false;
    }
    std::vector<std::string>& log_;
    Transport* transport_ = nullptr;
    size_t bytes = 0;
  };
  auto closes = std::make_unique<ClosesOnResume>();
  ClosesOnResume* sender = closes.get();
  auto receiving = std::make_unique<Receiver>(log);
  Receiver* receiver = receiving.get();
  ConnectInMemory(*loop_, std::move(closes), std::move(receiving));
  loop_->RunUntilIdle();
  receiver->transport_->PauseReading();
  sender->transport_->Write(std::string(100000, 'a'));  // Paused.
  receiver->transport_->ResumeReading();
  loop_->RunUntilIdle();
  // The flush resumed the sender, which closed: every byte, then the EOF.
  EXPECT_THAT(log, ElementsAre("eof after 100000"));
}

TEST_F(MemoryTransportTest, WritingPastTheOverflowLimitClosesTheConnection) {
  // A protocol that ignores PauseWriting, behind a peer that never reads.
  std::vector<std::string> log;
  MemoryTransport& transport = MemoryTransport::Create(
      *loop_, std::make_unique<ShoutProtocol>(log, absl::ZeroDuration()));
  loop_->RunUntilIdle();
  transport.SetPeerReading(false);
  EXPECT_EQ(transport.SetWriteBufferOverflowLimit(1000).code(),
            absl::StatusCode::kInvalidArgument);  // Not above high.
  ASSERT_TRUE(transport.SetWriteBufferOverflowLimit(256 * 1024).ok());
  std::string line(1000, 'x');
  line.back() = '\n';
  for (int i = 0; i < 300; ++i) transport.DeliverFromPeer(line);
  loop_->RunUntilIdle();
  EXPECT_THAT(log, ElementsAre("made", "pause", "lost:RESOURCE_EXHAUSTED"));
}

}  // namespace
}  // namespace sluice
