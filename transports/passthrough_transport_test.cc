#include "transports/passthrough_transport.h"

#include <memory>
#include <span>
#include <string_view>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "framework/exceptions.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transports/memory_transport.h"
#include "transports/transport_layer.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;

// The application at the top of a stack: logs its callbacks and its end.
class Top final : public Protocol {
 public:
  explicit Top(std::vector<std::string>& log) : log_(log) {}
  ~Top() override { log_.push_back("top destroyed"); }
  void ConnectionMade(Transport& transport) override {
    transport_ = &transport;
    log_.push_back("top made");
  }
  void DataReceived(std::string_view data) override {
    log_.push_back("top data " + std::string(data));
    transport_->Write("echo " + std::string(data));
  }
  void PauseWriting() override { log_.push_back("top pause"); }
  void ResumeWriting() override { log_.push_back("top resume"); }
  void ConnectionLost(const absl::Status& status) override {
    log_.push_back(
        absl::StrCat("top lost ", absl::StatusCodeToString(status.code())));
  }
  Transport* transport() const { return transport_; }

 private:
  std::vector<std::string>& log_;
  Transport* transport_ = nullptr;
};

class StackTest : public ::testing::Test {
 protected:
  StackTest()
      : loop_(EventLoop::Create(EventLoopOptions{.clock = &clock_}).value()) {}


  // Two pass-throughs over an in-memory root.
  MemoryTransport& Stack() {
    auto top = std::make_unique<Top>(log_);
    top_ = top.get();
    auto inner = std::make_unique<PassthroughTransport>(*loop_, std::move(top));
    auto outer =
        std::make_unique<PassthroughTransport>(*loop_, std::move(inner));
    MemoryTransport::Options options;
    options.on_lost = [this] { log_.push_back("root lost returned"); };
    MemoryTransport& root =
        MemoryTransport::Create(*loop_, std::move(outer), std::move(options));
    loop_->RunUntilIdle();
    return root;
  }

  // The log outlives the loop, which destroys a stack still open.
  std::vector<std::string> log_;
  VirtualClock clock_;
  std::unique_ptr<EventLoop> loop_;
  Top* top_ = nullptr;
};

TEST_F(StackTest, TheTopIsConnectedThroughEveryLayer) {
  MemoryTransport& root = Stack();
  ASSERT_NE(top_->transport(), nullptr);
  EXPECT_NE(top_->transport(), static_cast<Transport*>(&root));
  root.DeliverFromPeer("ping");
  loop_->RunUntilIdle();
  EXPECT_EQ(root.TakeSent(), "echo ping");
  EXPECT_THAT(log_, ElementsAre("top made", "top data ping"));
}

TEST_F(StackTest, ConnectionLostTravelsUpInsideTheRootsAndTheStackDiesOnce) {
  MemoryTransport& root = Stack();
  root.ResetFromPeer(absl::UnavailableError("reset"));
  // One iteration: the root's ConnectionLost (and inside it every layer's,
  // the top's last to start), then the whole stack's one deletion.
  loop_->RunOnce(absl::ZeroDuration());
  EXPECT_THAT(log_, ElementsAre("top made", "top lost UNAVAILABLE",
                                "root lost returned", "top destroyed"));
}

TEST_F(StackTest, TheRootsPauseReachesTheTopThroughEveryLayer) {
  MemoryTransport& root = Stack();
  root.SetPeerReading(false);
  Transport& top_transport = *top_->transport();
  top_transport.Write(std::string(100 * 1024, 'x'));
  // Everything below counts: the layers hold nothing, the root 100 KiB.
  EXPECT_EQ(top_transport.GetWriteBufferSize(), 100u * 1024);
  EXPECT_TRUE(top_transport.IsWritingPaused());
  root.SetPeerReading(true);
  loop_->RunUntilIdle();
  EXPECT_FALSE(top_transport.IsWritingPaused());
  EXPECT_THAT(log_, ElementsAre("top made", "top pause", "top resume"));
  EXPECT_EQ(root.TakeSent().size(), 100u * 1024);
}

TEST_F(StackTest, TheTopsReadPauseStopsTheRoot) {
  MemoryTransport& root = Stack();
  top_->transport()->PauseReading();
  EXPECT_FALSE(root.IsReading());
  root.DeliverFromPeer("held");
  loop_->RunUntilIdle();
  EXPECT_THAT(log_, ElementsAre("top made"));
  top_->transport()->ResumeReading();
  EXPECT_TRUE(root.IsReading());
  loop_->RunUntilIdle();
  EXPECT_THAT(log_, ElementsAre("top made", "top data held"));
}

#if SLUICE_HAS_EXCEPTIONS
TEST_F(StackTest, AFailingTopAbortsTheStackWithItsOwnError) {
  class Throws final : public Protocol {
   public:
    explicit Throws(std::string& lost) : lost_(lost) {}
    void DataReceived(std::string_view) override {
      throw std::runtime_error("bad input");
    }
    void ConnectionLost(const absl::Status& status) override {
      lost_ = status.ToString();
    }

   private:
    std::string& lost_;
  };
  std::vector<LoopError> errors;
  loop_->SetErrorHandler([&](const LoopError& e) { errors.push_back(e); });
  std::string lost_message;
  auto throws = std::make_unique<Throws>(lost_message);
  bool root_lost = false;
  MemoryTransport::Options options;
  options.on_lost = [&] { root_lost = true; };
  MemoryTransport& root = MemoryTransport::Create(
      *loop_,
      std::make_unique<PassthroughTransport>(*loop_, std::move(throws)),
      std::move(options));
  loop_->RunUntilIdle();
  root.DeliverFromPeer("x");
  // The top's failure aborts the layer below; the top hears its own error
  // when the loss comes up, before the root's ConnectionLost returns.
  for (int i = 0; i < 100 && !root_lost; ++i) {
    loop_->RunOnce(absl::ZeroDuration());
  }
  ASSERT_TRUE(root_lost);
  EXPECT_THAT(lost_message, ::testing::HasSubstr("INTERNAL"));
  EXPECT_THAT(lost_message, ::testing::HasSubstr("bad input"));
  ASSERT_EQ(errors.size(), 1u);
}

#endif  // SLUICE_HAS_EXCEPTIONS

// A user's own layer, written against the public TransportLayer only: it
// counts the bytes that pass and publishes the count as extra info.
struct ByteCounts {
  size_t in = 0;
  size_t out = 0;
};

class CountingLayer final : public TransportLayer {
 public:
  CountingLayer(EventLoop& loop, std::unique_ptr<Protocol> protocol)
      : TransportLayer(loop, std::move(protocol)) {}

  void Close() override {
    if (closing_) return;
    closing_ = true;
    if (lower() != nullptr) lower()->Close();
  }
  void Abort() override { ForceClose(absl::OkStatus()); }
  void Write(std::string_view data) override {
    Writev(std::span<const std::string_view>(&data, 1));
  }
  void Writev(std::span<const std::string_view> buffers) override {
    size_t total = 0;
    for (std::string_view buffer : buffers) total += buffer.size();
    if (total == 0 || DropWriteIfClosed(total, eof_requested_)) return;
    counts_.out += total;
    if (lower() != nullptr) lower()->Writev(buffers);
  }
  void WriteEof() override {
    if (closing_ || eof_requested_) return;
    eof_requested_ = true;
    if (lower() != nullptr) lower()->WriteEof();
  }
  bool CanWriteEof() const override { return lower() != nullptr; }
  void DataReceived(std::string_view data) override {
    counts_.in += data.size();
    DeliverUp(data);
  }
  bool EofReceived() override {
    DeliverEofUp();
    return true;
  }
  const void* QueryExtraInfo(ExtraInfoId id) const override {
    if (id == ExtraInfoId::Of<ByteCounts>()) return &counts_;
    return TransportLayer::QueryExtraInfo(id);
  }

 private:
  ByteCounts counts_;
};

TEST_F(StackTest, ALayerAddsExtraInfoAndForwardsTheRest) {
  struct Unknown {};
  auto top = std::make_unique<Top>(log_);
  Top* top_protocol = top.get();
  auto counting = std::make_unique<CountingLayer>(*loop_, std::move(top));
  // Counting under a pass-through: the query travels down to it.
  auto outer =
      std::make_unique<PassthroughTransport>(*loop_, std::move(counting));
  MemoryTransport::Options options;
  options.peer_address = SocketAddress::FromIp("10.1.2.3", 99).value();
  MemoryTransport& root =
      MemoryTransport::Create(*loop_, std::move(outer), std::move(options));
  loop_->RunUntilIdle();
  root.DeliverFromPeer("12345");
  loop_->RunUntilIdle();
  Transport& t = *top_protocol->transport();
  const ByteCounts* counts = t.GetExtraInfo<ByteCounts>();
  ASSERT_NE(counts, nullptr);
  EXPECT_EQ(counts->in, 5u);
  EXPECT_EQ(counts->out, std::string("echo 12345").size());
  EXPECT_EQ(t.GetExtraInfo<Unknown>(), nullptr);
  EXPECT_EQ(root.GetExtraInfo<ByteCounts>(), nullptr);  // Not below it.
  // Addresses come from the root, through both layers.
  EXPECT_EQ(t.PeerAddress()->ToString(), "10.1.2.3:99");
}

}  // namespace
}  // namespace sluice
