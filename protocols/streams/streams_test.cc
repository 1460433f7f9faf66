#include "protocols/streams/streams.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/task.h"
#include "framework/timeout.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocols/streams/stream_errors.h"
#include "protocols/streams/stream_state.h"
#include "transports/memory_transport.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

// Streams over a MemoryTransport: the test plays the peer, on virtual time.
class StreamsTest : public ::testing::Test {
 protected:
  StreamsTest()
      : loop_(EventLoop::Create(EventLoopOptions{.clock = &clock_}).value()) {
    loop_->SetErrorHandler([this](const LoopError& e) {
      errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
    });
  }

  // Connects a StreamReaderProtocol with `limit` to a MemoryTransport.
  void Connect(size_t limit = 64 * 1024) {
    auto protocol = std::make_unique<StreamReaderProtocol>(*loop_, limit);
    StreamReaderProtocol* raw = protocol.get();
    transport_ = &MemoryTransport::Create(*loop_, std::move(protocol));
    loop_->RunUntilIdle();
    protocol_ = raw;
    StreamPair pair = raw->streams();
    reader_ = std::make_unique<StreamReader>(pair.reader);
    writer_ = std::make_unique<StreamWriter>(pair.writer);
  }

  template <class Awaitable>
  auto Run(Awaitable awaitable) {
    return loop_->RunUntilComplete(std::move(awaitable));
  }

  VirtualClock clock_;
  std::unique_ptr<EventLoop> loop_;
  std::vector<std::string> errors_;
  MemoryTransport* transport_ = nullptr;
  // Called as a socket transport calls it (recv into GetBuffer's memory).
  StreamReaderProtocol* protocol_ = nullptr;
  std::unique_ptr<StreamReader> reader_;
  std::unique_ptr<StreamWriter> writer_;
};

TEST_F(StreamsTest, AZeroLimitFailsEveryReadClearly) {
  Connect(/*limit=*/0);
  transport_->DeliverFromPeer("data\n");
  absl::StatusOr<std::string> line = Run(reader_->ReadLine());
  EXPECT_EQ(line.status().code(), absl::StatusCode::kInvalidArgument)
      << line.status();
  EXPECT_THAT(line.status().message(), HasSubstr("limit"));
}

// --- StreamWriter::Drain ---

TEST_F(StreamsTest, DrainReturnsAtOnceWhenNotPaused) {
  Connect();
  writer_->Write("small");
  Future<absl::Status> drained = Spawn(*loop_, writer_->Drain());
  loop_->RunOnce(absl::ZeroDuration());  // Starts the task: done at once.
  ASSERT_TRUE(drained.IsDone());
  EXPECT_TRUE(drained.Result().ok());
  EXPECT_EQ(transport_->TakeSent(), "small");
}

TEST_F(StreamsTest, DrainWaitsWhileThePeerDoesNotReadThenResumes) {
  Connect();
  transport_->SetPeerReading(false);
  writer_->Write(std::string(100 * 1024, 'x'));  // Above the 64 KiB mark.
  Future<absl::Status> drained = Spawn(*loop_, writer_->Drain());
  loop_->RunUntilIdle();
  EXPECT_FALSE(drained.IsDone());
  transport_->SetPeerReading(true);
  loop_->RunUntilIdle();
  ASSERT_TRUE(drained.IsDone());
  EXPECT_TRUE(drained.Result().ok());
  EXPECT_EQ(transport_->TakeSent().size(), 100u * 1024);
}

TEST_F(StreamsTest, ManyConcurrentDrainersAllWake) {
  Connect();
  transport_->SetPeerReading(false);
  writer_->Write(std::string(100 * 1024, 'x'));
  std::vector<Future<absl::Status>> drainers;
  for (int i = 0; i < 10; ++i) drainers.push_back(Spawn(*loop_, writer_->Drain()));
  loop_->RunUntilIdle();
  for (auto& d : drainers) EXPECT_FALSE(d.IsDone());
  transport_->SetPeerReading(true);
  loop_->RunUntilIdle();
  for (auto& d : drainers) {
    ASSERT_TRUE(d.IsDone());
    EXPECT_TRUE(d.Result().ok());
  }
}

TEST_F(StreamsTest, ConnectionLossFailsPendingAndLaterDrains) {
  Connect();
  transport_->SetPeerReading(false);
  writer_->Write(std::string(100 * 1024, 'x'));
  Future<absl::Status> pending = Spawn(*loop_, writer_->Drain());
  loop_->RunUntilIdle();
  transport_->ResetFromPeer(absl::UnavailableError("reset by peer"));
  loop_->RunUntilIdle();
  ASSERT_TRUE(pending.IsDone());
  EXPECT_EQ(pending.Result().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(pending.Result().message(), HasSubstr("reset by peer"));
  // The writer outlives the connection: no crash, errors only.
  EXPECT_EQ(writer_->transport(), nullptr);
  writer_->Write("into the void");
  EXPECT_EQ(Run(writer_->Drain()).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Run(reader_->Read()).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(StreamsTest, DrainAfterOurCloseIsOkWhileTheBufferIsBelowTheMark) {
  // asyncio: a closing transport yields once; then, not lost and not paused,
  // drain() returns.
  Connect();
  transport_->SetPeerReading(false);
  writer_->Write("pending");
  writer_->Close();
  writer_->Write("late");  // Dropped (and reported once).
  EXPECT_TRUE(Run(writer_->Drain()).ok());
  EXPECT_EQ(transport_->sent(), "");
  transport_->SetPeerReading(true);
  loop_->RunOnce(absl::ZeroDuration());  // The flush.
  EXPECT_EQ(transport_->TakeSent(), "pending");
  // WaitClosed completes, OK for a clean close (the transport is gone
  // then); Drain then reports the end.
  EXPECT_TRUE(loop_->RunUntilComplete(writer_->WaitClosed()).ok());
  absl::Status drained = Run(writer_->Drain());
  EXPECT_EQ(drained.code(), absl::StatusCode::kUnavailable) << drained;
}

TEST_F(StreamsTest, DrainAfterThePeerResetReturnsTheConnectionError) {
  Connect();
  // The reset queues ConnectionLost; a Drain begun in the same iteration
  // must report the reset, not "closing".
  auto reset_then_drain = [this]() -> Task<absl::Status> {
    transport_->ResetFromPeer(absl::UnavailableError("reset by peer"));
    co_return co_await writer_->Drain();
  };
  absl::Status drained = Run(reset_then_drain());
  EXPECT_EQ(drained.code(), absl::StatusCode::kUnavailable) << drained;
  EXPECT_THAT(drained.message(), HasSubstr("reset by peer"));
}

TEST_F(StreamsTest, DrainAfterACleanCloseReportsTheLoss) {
  Connect();
  auto close_then_drain = [this]() -> Task<absl::Status> {
    writer_->Close();  // Nothing buffered: ConnectionLost(OK) is queued.
    co_return co_await writer_->Drain();
  };
  absl::Status drained = Run(close_then_drain());
  EXPECT_EQ(drained.code(), absl::StatusCode::kUnavailable) << drained;
  EXPECT_THAT(drained.message(), HasSubstr("connection closed"));
}

TEST_F(StreamsTest, DrainCanBeCancelled) {
  Connect();
  transport_->SetPeerReading(false);
  writer_->Write(std::string(100 * 1024, 'x'));
  Future<absl::Status> pending = Spawn(*loop_, writer_->Drain());
  loop_->RunUntilIdle();
  pending.Cancel();
  loop_->RunUntilIdle();
  ASSERT_TRUE(pending.IsDone());
  EXPECT_EQ(pending.Result().code(), absl::StatusCode::kCancelled);
  // A later drain still works.
  Future<absl::Status> next = Spawn(*loop_, writer_->Drain());
  transport_->SetPeerReading(true);
  loop_->RunUntilIdle();
  ASSERT_TRUE(next.IsDone());
  EXPECT_TRUE(next.Result().ok());
}

TEST_F(StreamsTest, CallbackDrain) {
  Connect();
  transport_->SetPeerReading(false);
  writer_->Write(std::string(100 * 1024, 'x'));
  std::optional<absl::Status> result;
  writer_->Drain([&](absl::Status s) { result = s; });
  loop_->RunUntilIdle();
  EXPECT_FALSE(result.has_value());
  transport_->SetPeerReading(true);
  loop_->RunUntilIdle();
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
}

// --- StreamReader ---

TEST_F(StreamsTest, ReadReturnsWhatIsThereAndEmptyAtEof) {
  Connect();
  transport_->DeliverFromPeer("abc");
  EXPECT_EQ(*Run(reader_->Read(2)), "ab");
  EXPECT_EQ(*Run(reader_->Read(10)), "c");
  transport_->DeliverFromPeer("rest");
  transport_->DeliverEofFromPeer();
  EXPECT_EQ(*Run(reader_->Read()), "rest");
  EXPECT_EQ(*Run(reader_->Read(5)), "");
  EXPECT_TRUE(reader_->AtEof());
}

TEST_F(StreamsTest, ReadExactlyAtEofCarriesThePartialBytes) {
  Connect();
  transport_->DeliverFromPeer("12345");
  EXPECT_EQ(*Run(reader_->ReadExactly(3)), "123");
  transport_->DeliverEofFromPeer();
  absl::StatusOr<std::string> short_read = Run(reader_->ReadExactly(10));
  ASSERT_TRUE(IsIncompleteRead(short_read.status())) << short_read.status();
  EXPECT_EQ(IncompleteReadPartial(short_read.status()), "45");
  EXPECT_THAT(short_read.status().message(),
              HasSubstr("2 bytes read on a total of 10 expected bytes"));
  EXPECT_EQ(Run(reader_->ReadExactly(-1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StreamsTest, ReadUntilFindsASeparatorSplitAcrossReads) {
  Connect();
  Future<absl::StatusOr<std::string>> line =
      Spawn(*loop_, reader_->ReadUntil("\r\n"));
  transport_->DeliverFromPeer("hello\r");
  loop_->RunUntilIdle();
  EXPECT_FALSE(line.IsDone());
  transport_->DeliverFromPeer("\nworld");
  loop_->RunUntilIdle();
  ASSERT_TRUE(line.IsDone());
  EXPECT_EQ(*line.Result(), "hello\r\n");
  EXPECT_EQ(*Run(reader_->Read(100)), "world");
}

TEST_F(StreamsTest, ReadUntilOverTheLimitLeavesTheData) {
  Connect(/*limit=*/7);
  transport_->DeliverFromPeer("1234567\n12345678\n");
  EXPECT_EQ(*Run(reader_->ReadUntil()), "1234567\n");  // Exactly the limit.
  absl::StatusOr<std::string> over = Run(reader_->ReadUntil());
  ASSERT_TRUE(IsLimitOverrun(over.status())) << over.status();
  EXPECT_EQ(LimitOverrunConsumed(over.status()), 8u);
  // asyncio leaves the data for the caller to deal with.
  EXPECT_EQ(*Run(reader_->Read(100)), "12345678\n");
  EXPECT_EQ(Run(reader_->ReadUntil("")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StreamsTest, ReadLineDropsAnOverlongLineAndKeepsTheNext) {
  Connect(/*limit=*/4);
  transport_->DeliverFromPeer("toolong\nok\n");
  absl::StatusOr<std::string> over = Run(reader_->ReadLine());
  EXPECT_TRUE(IsLimitOverrun(over.status())) << over.status();
  EXPECT_EQ(*Run(reader_->ReadLine()), "ok\n");
}

TEST_F(StreamsTest, ReadLineDropsOnlyTheOverlongLineOfChunksThatCameTogether) {
  Connect(/*limit=*/16);
  Future<absl::StatusOr<std::string>> first = Spawn(*loop_, reader_->ReadLine());
  loop_->RunUntilIdle();
  // Two chunks in one iteration: the waiting read is woken by the first
  // (the limit is passed, not 2 x limit), and the second arrives before it
  // resumes.
  transport_->DeliverFromPeer(std::string(20, 'a'));
  transport_->DeliverFromPeer("aaaa\nnext\n");
  loop_->RunUntilIdle();
  ASSERT_TRUE(first.IsDone());
  EXPECT_TRUE(IsLimitOverrun(first.Result().status())) << first.Result().status();
  absl::StatusOr<std::string> second = Run(reader_->ReadLine());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, "next\n");
}

TEST_F(StreamsTest, ALargeReadThatLeavesLessThanItTakesKeepsEveryByte) {
  // Copied out of the buffer; what is left stays for the next read.
  std::string bytes(30 * 1024, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i % 251);
  Connect();
  transport_->DeliverFromPeer(bytes);
  loop_->RunUntilIdle();
  absl::StatusOr<std::string> first = Run(reader_->Read(20 * 1024));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first == bytes.substr(0, 20 * 1024));
  EXPECT_EQ(reader_->BufferedSize(), 10u * 1024);
  transport_->DeliverFromPeer("tail");
  loop_->RunUntilIdle();
  absl::StatusOr<std::string> rest = Run(reader_->Read(64 * 1024));
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_TRUE(*rest == bytes.substr(20 * 1024) + "tail");
}

// --- Receiving into the reader's buffer ---

std::string Pattern(size_t size, int seed) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<char>((i * 7 + static_cast<size_t>(seed)) % 251);
  }
  return bytes;
}

// What a socket transport does with a BufferedProtocol: receive into the
// lent memory; returns where the bytes went.
const char* Receive(StreamReaderProtocol& protocol, std::string_view bytes,
                    size_t size_hint = 0) {
  std::span<char> lent = protocol.GetBuffer(size_hint);
  EXPECT_GE(lent.size(), bytes.size());
  std::memcpy(lent.data(), bytes.data(), bytes.size());
  protocol.BufferUpdated(bytes.size());
  return lent.data();
}

TEST_F(StreamsTest, ALargeReadTakesTheMemoryTheTransportReceivedInto) {
  Connect();
  const std::string bytes = Pattern(100 * 1024, 1);
  const char* received = Receive(*protocol_, bytes, bytes.size());
  absl::StatusOr<std::string> read = Run(reader_->Read(256 * 1024));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == bytes);
  EXPECT_EQ(read->data(), received);  // No copy between the two.
  EXPECT_EQ(reader_->BufferedSize(), 0u);
}

TEST_F(StreamsTest, WritingAReadBackRecyclesItsBufferForTheNextRead) {
  Connect();
  const std::string bytes = Pattern(64 * 1024, 2);
  const char* received = Receive(*protocol_, bytes, bytes.size());
  absl::StatusOr<std::string> read = Run(reader_->Read(64 * 1024));
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->data(), received);
  writer_->Write(*std::move(read));
  EXPECT_TRUE(transport_->TakeSent() == bytes);
  // The next large read lands in the same memory.
  const std::string next = Pattern(64 * 1024, 3);
  EXPECT_EQ(Receive(*protocol_, next, next.size()), received);
  absl::StatusOr<std::string> again = Run(reader_->Read(64 * 1024));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(*again == next);
}

TEST_F(StreamsTest, SocketReadsAskForMoreWhileTheyFillWhatIsLentAndLessAfter) {
  Connect();
  const size_t first = protocol_->GetBuffer(0).size();
  size_t lent = first;
  // A sender faster than the reads: every read fills what it is lent.
  for (int i = 0; i < 8; ++i) {
    std::span<char> buffer = protocol_->GetBuffer(0);
    lent = buffer.size();
    std::memset(buffer.data(), 'x', lent);
    protocol_->BufferUpdated(lent);
    ASSERT_TRUE(Run(reader_->Read(1 << 30)).ok());
  }
  EXPECT_GE(lent, 64u * first) << "first lent " << first;
  EXPECT_LE(lent, 256u * 1024);
  // Then small messages: the reads shrink back.
  for (int i = 0; i < 40; ++i) {
    std::span<char> buffer = protocol_->GetBuffer(0);
    lent = buffer.size();
    buffer[0] = 'y';
    protocol_->BufferUpdated(1);
    ASSERT_EQ(*Run(reader_->Read(100)), "y");
  }
  EXPECT_LE(lent, first);
}

TEST_F(StreamsTest, AWaitingReadIsLentNoMoreThanItTakesAndTakesItWhole) {
  Connect();
  // Grow the read size past the read's.
  for (int i = 0; i < 4; ++i) {
    std::span<char> buffer = protocol_->GetBuffer(0);
    std::memset(buffer.data(), 'x', buffer.size());
    protocol_->BufferUpdated(buffer.size());
    ASSERT_TRUE(Run(reader_->Read(1 << 30)).ok());
  }
  Future<absl::StatusOr<std::string>> read =
      Spawn(*loop_, reader_->Read(20 * 1024));
  loop_->RunUntilIdle();
  std::span<char> lent = protocol_->GetBuffer(0);
  EXPECT_EQ(lent.size(), 20u * 1024);
  const std::string bytes = Pattern(20 * 1024, 4);
  std::memcpy(lent.data(), bytes.data(), bytes.size());
  protocol_->BufferUpdated(bytes.size());
  loop_->RunUntilIdle();
  ASSERT_TRUE(read.IsDone());
  ASSERT_TRUE(read.Result().ok()) << read.Result().status();
  EXPECT_TRUE(*read.Result() == bytes);
  EXPECT_EQ(read.Result()->data(), lent.data());
}

// Every byte arrives once and in order whatever the receive sizes, partial
// fills and read kinds: the buffer compacts, grows and is handed over
// underneath.
TEST_F(StreamsTest, ArbitraryReceivesAndReadsKeepEveryByteInOrder) {
  Connect(/*limit=*/256 * 1024);
  std::string sent;
  for (int line = 0; sent.size() < 3 * 1024 * 1024; ++line) {
    absl::StrAppend(&sent, Pattern(static_cast<size_t>(line * 977 % 40000), line),
                    "\n");
  }
  // Newlines inside the pattern are fine: the model is the byte stream.
  std::string got;
  size_t fed = 0;
  uint32_t random = 12345;
  auto next = [&random](uint32_t bound) {
    random = random * 1103515245u + 12345u;
    return (random >> 8) % bound;
  };
  while (got.size() < sent.size()) {
    if (fed < sent.size() && next(3) != 0) {
      const bool socket = next(2) == 0;
      std::span<char> lent = protocol_->GetBuffer(
          socket ? 0 : std::min<size_t>(sent.size() - fed, 1 + next(300000)));
      const size_t n = std::min({lent.size(), sent.size() - fed,
                                 static_cast<size_t>(1 + next(lent.size()))});
      std::memcpy(lent.data(), sent.data() + fed, n);
      protocol_->BufferUpdated(n);
      fed += n;
      continue;
    }
    if (fed == sent.size() && reader_->BufferedSize() == 0) break;
    if (reader_->BufferedSize() == 0) continue;
    absl::StatusOr<std::string> piece;
    switch (next(3)) {
      case 0:
        piece = Run(reader_->Read(1 + next(200000)));
        break;
      case 1:
        piece = Run(reader_->ReadExactly(
            std::min<size_t>(reader_->BufferedSize(), 1 + next(100000))));
        break;
      default: {
        std::string_view rest = std::string_view(sent).substr(got.size());
        const size_t newline = rest.find('\n');
        if (newline == std::string_view::npos ||
            newline >= reader_->BufferedSize()) {
          piece = Run(reader_->Read(1 + next(5000)));
        } else {
          piece = Run(reader_->ReadUntil("\n"));
        }
      }
    }
    ASSERT_TRUE(piece.ok()) << piece.status();
    got += *piece;
    ASSERT_TRUE(std::string_view(sent).substr(0, got.size()) == got)
        << "diverged at byte " << got.size() - piece->size();
  }
  EXPECT_EQ(got.size(), sent.size());
}

TEST(ReadBufferPoolTest, KeepsBuffersReadsUseAndHandsBackTheLatestThatFits) {
  using streams_internal::ReadBufferPool;
  // An empty string (with its small inline capacity) means "none".
  auto take = [](size_t size) {
    std::string buffer = ReadBufferPool::Take(size);
    return buffer.capacity() >= ReadBufferPool::kMinCapacity
               ? std::optional<std::string>(std::move(buffer))
               : std::nullopt;
  };
  // Whatever earlier tests on this thread left.
  for (size_t size = ReadBufferPool::kMinCapacity;
       size <= ReadBufferPool::kMaxCapacity; size *= 2) {
    while (take(size).has_value()) {
    }
  }
  ReadBufferPool::Give(std::string(1024, 'a'));
  ReadBufferPool::Give(std::string(2 * ReadBufferPool::kMaxCapacity, 'b'));
  EXPECT_FALSE(take(ReadBufferPool::kMinCapacity).has_value());
  EXPECT_FALSE(take(ReadBufferPool::kMaxCapacity).has_value());

  std::string older(64 * 1024, 'c');
  std::string newer(64 * 1024, 'd');
  const char* newer_data = newer.data();
  ReadBufferPool::Give(std::move(older));
  ReadBufferPool::Give(std::move(newer));
  std::optional<std::string> latest = take(64 * 1024);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->data(), newer_data);
  // Much larger than asked is not handed out (a read could not take it).
  EXPECT_FALSE(take(16 * 1024).has_value());
  std::optional<std::string> fits = take(40 * 1024);
  ASSERT_TRUE(fits.has_value());
  EXPECT_GE(fits->capacity(), 64u * 1024);

  constexpr size_t kSize = 256 * 1024;
  constexpr size_t kFit = ReadBufferPool::kMaxBytes / kSize;
  for (size_t i = 0; i < kFit + 4; ++i) {
    ReadBufferPool::Give(std::string(kSize, static_cast<char>(i)));
  }
  std::vector<char> kept;
  while (std::optional<std::string> buffer = take(kSize)) {
    kept.push_back((*buffer)[0]);
  }
  ASSERT_EQ(kept.size(), kFit);  // The oldest four were dropped.
  EXPECT_EQ(kept.front(), static_cast<char>(kFit + 3));  // Newest first.
  EXPECT_EQ(kept.back(), static_cast<char>(4));
}

TEST_F(StreamsTest, ReadLineReturnsThePartialLineAtEof) {
  Connect();
  transport_->DeliverFromPeer("line\nno newline");
  transport_->DeliverEofFromPeer();
  EXPECT_EQ(*Run(reader_->ReadLine()), "line\n");
  EXPECT_EQ(*Run(reader_->ReadLine()), "no newline");
  EXPECT_EQ(*Run(reader_->ReadLine()), "");
  absl::StatusOr<std::string> until = Run(reader_->ReadUntil());
  EXPECT_TRUE(IsIncompleteRead(until.status()));
}

TEST_F(StreamsTest, ReadAfterAnErrorReturnsTheError) {
  Connect();
  transport_->DeliverFromPeer("unread");
  transport_->ResetFromPeer(absl::UnavailableError("gone"));
  loop_->RunUntilIdle();
  EXPECT_EQ(reader_->Exception().code(), absl::StatusCode::kUnavailable);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Run(reader_->Read()).status().code(),
              absl::StatusCode::kUnavailable);
    EXPECT_EQ(Run(reader_->ReadLine()).status().code(),
              absl::StatusCode::kUnavailable);
  }
}

TEST_F(StreamsTest, OneReaderAtATime) {
  Connect();
  Future<absl::StatusOr<std::string>> first = Spawn(*loop_, reader_->Read(10));
  loop_->RunUntilIdle();
  absl::StatusOr<std::string> second = Run(reader_->Read(10));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  transport_->DeliverFromPeer("x");
  loop_->RunUntilIdle();
  EXPECT_EQ(*first.Result(), "x");
}

TEST_F(StreamsTest, CancellingAPendingReadKeepsTheStreamUsable) {
  Connect();
  Future<absl::StatusOr<std::string>> pending =
      Spawn(*loop_, reader_->ReadExactly(4));
  transport_->DeliverFromPeer("ab");
  loop_->RunUntilIdle();
  pending.Cancel();
  loop_->RunUntilIdle();
  EXPECT_EQ(pending.Result().status().code(), absl::StatusCode::kCancelled);
  transport_->DeliverFromPeer("cd");
  EXPECT_EQ(*Run(reader_->ReadExactly(4)), "abcd");  // Nothing was lost.
}

TEST_F(StreamsTest, ReaderPausesTheTransportAboveTwiceTheLimit) {
  constexpr size_t kLimit = 1000;
  Connect(kLimit);
  transport_->DeliverFromPeer(std::string(2 * kLimit, 'a'));
  loop_->RunUntilIdle();
  EXPECT_TRUE(transport_->IsReading());  // Not above 2 x limit.
  transport_->DeliverFromPeer("b");
  loop_->RunUntilIdle();
  EXPECT_FALSE(transport_->IsReading());  // 2001 > 2000.
  // Consuming down to limit + 1 is not enough; to the limit is.
  EXPECT_EQ(Run(reader_->ReadExactly(1000)).value().size(), 1000u);
  EXPECT_FALSE(transport_->IsReading());  // 1001 left.
  EXPECT_EQ(Run(reader_->ReadExactly(1)).value().size(), 1u);
  EXPECT_TRUE(transport_->IsReading());  // 1000 left.
}

TEST_F(StreamsTest, AnApplicationResumeDoesNotUndoTheReadersPause) {
  constexpr size_t kLimit = 1000;
  Connect(kLimit);
  transport_->DeliverFromPeer(std::string(2 * kLimit + 1, 'a'));
  loop_->RunUntilIdle();
  ASSERT_FALSE(transport_->IsReading());
  // The echo pattern: resume reading on ResumeWriting. The reader's limit
  // still holds, and the buffer stops growing.
  transport_->ResumeReading();
  EXPECT_FALSE(transport_->IsReading());
  transport_->DeliverFromPeer(std::string(10 * kLimit, 'b'));
  loop_->RunUntilIdle();
  EXPECT_EQ(reader_->BufferedSize(), 2 * kLimit + 1);
  // An application pause is not undone by the reader either.
  transport_->PauseReading();
  EXPECT_EQ(Run(reader_->ReadExactly(2 * kLimit)).value().size(), 2 * kLimit);
  EXPECT_FALSE(transport_->IsReading());
  transport_->ResumeReading();
  EXPECT_TRUE(transport_->IsReading());
}

TEST_F(StreamsTest, AReadLargerThanTheBufferResumesAPausedTransport) {
  constexpr size_t kLimit = 100;
  Connect(kLimit);
  transport_->DeliverFromPeer(std::string(300, 'a'));
  loop_->RunUntilIdle();
  EXPECT_FALSE(transport_->IsReading());
  Future<absl::StatusOr<std::string>> big =
      Spawn(*loop_, reader_->ReadExactly(500));
  loop_->RunUntilIdle();
  EXPECT_TRUE(transport_->IsReading());  // Or it would wait forever.
  transport_->DeliverFromPeer(std::string(200, 'b'));
  loop_->RunUntilIdle();
  ASSERT_TRUE(big.IsDone());
  EXPECT_EQ(big.Result()->size(), 500u);
}

TEST_F(StreamsTest, AReadIsWokenOnlyWhenItCanComplete) {
  constexpr size_t kLimit = 100;
  Connect(kLimit);
  Future<absl::StatusOr<std::string>> exactly =
      Spawn(*loop_, reader_->ReadExactly(5 * kLimit));
  for (int i = 0; i < 4; ++i) {
    transport_->DeliverFromPeer(std::string(kLimit, 'a' + i));
    loop_->RunUntilIdle();
    EXPECT_FALSE(exactly.IsDone());
    // Past 2 x limit too: the waiting read needs more, so reading goes on.
    EXPECT_TRUE(transport_->IsReading());
  }
  transport_->DeliverFromPeer(std::string(kLimit + 1, 'e'));
  loop_->RunUntilIdle();
  ASSERT_TRUE(exactly.IsDone());
  EXPECT_EQ(exactly.Result()->substr(4 * kLimit - 1, 2), "de");
  EXPECT_EQ(reader_->BufferedSize(), 1u);
}

TEST_F(StreamsTest, ReadToEofCollectsMoreThanTheLimitAndCancelsCleanly) {
  constexpr size_t kLimit = 100;
  Connect(kLimit);
  Future<absl::StatusOr<std::string>> all = Spawn(*loop_, reader_->Read());
  transport_->DeliverFromPeer(std::string(3 * kLimit, 'x'));
  loop_->RunUntilIdle();
  all.Cancel();
  loop_->RunUntilIdle();
  EXPECT_EQ(all.Result().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(reader_->BufferedSize(), 3 * kLimit);  // Nothing was lost.

  Future<absl::StatusOr<std::string>> again = Spawn(*loop_, reader_->Read());
  loop_->RunUntilIdle();
  EXPECT_TRUE(transport_->IsReading());
  transport_->DeliverFromPeer(std::string(3 * kLimit, 'y'));
  transport_->DeliverEofFromPeer();
  loop_->RunUntilIdle();
  ASSERT_TRUE(again.IsDone());
  EXPECT_EQ(*again.Result(),
            std::string(3 * kLimit, 'x') + std::string(3 * kLimit, 'y'));
  EXPECT_TRUE(reader_->AtEof());
}

TEST_F(StreamsTest, ASecondReaderWhileTheFirstIsWokenFails) {
  Connect();
  Future<absl::StatusOr<std::string>> first = Spawn(*loop_, reader_->Read());
  loop_->RunUntilIdle();
  transport_->DeliverFromPeer("x");
  transport_->DeliverEofFromPeer();
  // Starts after the delivery, which wakes the first reader through the
  // loop, so it runs between that wake-up and the resumption.
  Future<absl::StatusOr<std::string>> second = Spawn(*loop_, reader_->Read(10));
  loop_->RunUntilIdle();
  EXPECT_EQ(second.Result().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*first.Result(), "x");
}

TEST_F(StreamsTest, WhatAReaderLeavesOfADeliveryStaysForTheNextRead) {
  Connect();
  std::vector<std::string> got;
  auto reads = [&]() -> Task<absl::Status> {
    absl::StatusOr<std::string> line = co_await reader_->ReadUntil("\n");
    if (!line.ok()) co_return line.status();
    got.push_back(*line);
    // Sees the rest of the same delivery, needs more, waits.
    absl::StatusOr<std::string> four = co_await reader_->ReadExactly(4);
    if (!four.ok()) co_return four.status();
    got.push_back(*four);
    absl::StatusOr<std::string> line2 = co_await reader_->ReadLine();
    if (!line2.ok()) co_return line2.status();
    got.push_back(*line2);
    co_return absl::OkStatus();
  };
  Future<absl::Status> done = Spawn(*loop_, reads());
  loop_->RunUntilIdle();
  transport_->DeliverFromPeer("one\nab");
  loop_->RunUntilIdle();
  EXPECT_THAT(got, ::testing::ElementsAre("one\n"));
  EXPECT_EQ(reader_->BufferedSize(), 2u);
  transport_->DeliverFromPeer("cdtw");
  loop_->RunUntilIdle();
  transport_->DeliverFromPeer("o\nrest");
  loop_->RunUntilIdle();
  ASSERT_TRUE(done.IsDone());
  EXPECT_TRUE(done.Result().ok()) << done.Result();
  EXPECT_THAT(got, ::testing::ElementsAre("one\n", "abcd", "two\n"));
  EXPECT_EQ(*Run(reader_->Read(100)), "rest");
}

TEST_F(StreamsTest, AReadWithATimeoutGivesUpAndLeavesTheStreamUsable) {
  Connect();
  transport_->DeliverFromPeer("no newline yet");
  // On the virtual clock, which jumps to the deadline once the loop idles.
  absl::StatusOr<std::string> line =
      Run(WithTimeout(*loop_, reader_->ReadLine(), absl::Seconds(5)));
  EXPECT_EQ(line.status().code(), absl::StatusCode::kDeadlineExceeded);
  // The partial line is still there, and another read may wait.
  transport_->DeliverFromPeer("\n");
  EXPECT_EQ(*Run(reader_->ReadLine()), "no newline yet\n");
}

// A reader may hand the connection to another protocol and drop the
// streams as soon as it has its data.
TEST_F(StreamsTest, AReaderMayReplaceTheProtocolAndDropTheStreams) {
  Connect();
  std::string got;
  auto hijack = [&]() -> Task<absl::Status> {
    absl::StatusOr<std::string> data = co_await reader_->Read(1);
    if (!data.ok()) co_return data.status();
    got = *data;
    reader_.reset();
    writer_.reset();
    // Destroys the StreamReaderProtocol, and with it the last reference.
    transport_->SetProtocol(std::make_unique<Protocol>());
    co_return absl::OkStatus();
  };
  Future<absl::Status> done = Spawn(*loop_, hijack());
  loop_->RunUntilIdle();
  transport_->DeliverFromPeer("xy");
  loop_->RunUntilIdle();
  ASSERT_TRUE(done.IsDone());
  EXPECT_TRUE(done.Result().ok());
  EXPECT_EQ(got, "x");
}

TEST_F(StreamsTest, StreamsOfAReplacedProtocolFailInsteadOfReachingTheTransport) {
  Connect();
  transport_->SetPeerReading(false);
  writer_->Write(std::string(100 * 1024, 'x'));  // Paused.
  Future<absl::Status> draining = Spawn(*loop_, writer_->Drain());
  Future<absl::StatusOr<std::string>> reading = Spawn(*loop_, reader_->Read(10));
  loop_->RunUntilIdle();
  // The protocol is replaced and destroyed; the streams outlive it.
  transport_->SetProtocol(std::make_unique<Protocol>());
  loop_->RunUntilIdle();
  ASSERT_TRUE(draining.IsDone());
  EXPECT_EQ(draining.Result().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(reading.IsDone());
  EXPECT_EQ(reading.Result().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(writer_->transport(), nullptr);
  transport_->Abort();
  loop_->RunUntilIdle();  // The transport is gone now.
  writer_->Write("into the void");  // No use of the dead transport.
  writer_->Close();
  EXPECT_TRUE(writer_->IsClosing());
  absl::Status drained = Run(writer_->Drain());
  EXPECT_EQ(drained.code(), absl::StatusCode::kFailedPrecondition) << drained;
  EXPECT_THAT(drained.message(), HasSubstr("replaced"));
}

TEST_F(StreamsTest, AReplacedReaderLiftsItsReadPause) {
  Connect(/*limit=*/10);
  transport_->DeliverFromPeer(std::string(100, 'a'));
  loop_->RunUntilIdle();
  ASSERT_FALSE(transport_->IsReading());  // The reader's 2 x limit pause.
  // Kept alive by the caller (as StartTls keeps it): the handover alone
  // must detach the streams and hand a reading transport to the new one.
  std::unique_ptr<Protocol> previous =
      transport_->SetProtocol(std::make_unique<Protocol>());
  EXPECT_TRUE(transport_->IsReading());
  EXPECT_EQ(writer_->transport(), nullptr);
  EXPECT_EQ(Run(reader_->Read(1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// --- Over real sockets: OpenConnection and StartServer ---

Task<absl::Status> EchoLines(StreamReader reader, StreamWriter writer) {
  while (true) {
    absl::StatusOr<std::string> line = co_await reader.ReadLine();
    if (!line.ok()) co_return line.status();
    if (line->empty()) break;  // EOF.
    writer.Write(*line);
    absl::Status drained = co_await writer.Drain();
    if (!drained.ok()) co_return drained;
  }
  writer.Close();
  co_return absl::OkStatus();
}

Task<absl::StatusOr<std::string>> Converse(EventLoop& loop, uint16_t port) {
  absl::StatusOr<StreamPair> streams =
      co_await OpenConnection(loop, "127.0.0.1", port);
  if (!streams.ok()) co_return streams.status();
  std::string transcript;
  for (std::string line : {"one\n", "two\n", "three\n"}) {
    streams->writer.Write(line);
    absl::Status drained = co_await streams->writer.Drain();
    if (!drained.ok()) co_return drained;
    absl::StatusOr<std::string> echo = co_await streams->reader.ReadLine();
    if (!echo.ok()) co_return echo.status();
    transcript += *echo;
  }
  streams->writer.WriteEof();
  absl::StatusOr<std::string> rest = co_await streams->reader.Read();
  if (!rest.ok()) co_return rest.status();
  // The stream stays half-open after the peer's EOF until we close it.
  streams->writer.Close();
  absl::Status closed = co_await streams->writer.WaitClosed();
  if (!closed.ok()) co_return closed;
  co_return transcript + "[eof]" + *rest;
}

TEST(StreamsOverTcpTest, StartServerAndOpenConnectionEchoLines) {
  auto loop = EventLoop::Create().value();
  Handle watchdog = loop->CallLater(absl::Seconds(30), [&] {
    ADD_FAILURE() << "still running after 30 s";
    loop->Stop();
  });
  auto server = loop->RunUntilComplete(
      StartServer(*loop, EchoLines, "127.0.0.1", 0));
  ASSERT_TRUE(server.ok()) << server.status();
  uint16_t port = (*server)->addresses()[0].port();
  absl::StatusOr<std::string> transcript =
      loop->RunUntilComplete(Converse(*loop, port));
  ASSERT_TRUE(transcript.ok()) << transcript.status();
  EXPECT_EQ(*transcript, "one\ntwo\nthree\n[eof]");
  watchdog.Cancel();
}

// The reader's thresholds on a live TCP connection: the server's transport
// stops reading once more than 2 x limit bytes wait, and reads again when
// the buffer is down to the limit, not before.
TEST(StreamsOverTcpTest, TheReaderPausesAndResumesALiveTransport) {
  constexpr size_t kLimit = 4096;
  auto loop = EventLoop::Create().value();
  Handle watchdog = loop->CallLater(absl::Seconds(30), [&] {
    ADD_FAILURE() << "still running after 30 s";
    loop->Stop();
  });
  std::optional<StreamPair> accepted;
  auto keep = [&accepted](StreamReader reader,
                          StreamWriter writer) -> Task<absl::Status> {
    accepted.emplace(StreamPair{reader, writer});
    co_return absl::OkStatus();
  };
  auto server = loop->RunUntilComplete(StartServer(
      *loop, keep, "127.0.0.1", 0, StreamOptions{.limit = kLimit}));
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<StreamPair> client = loop->RunUntilComplete(
      OpenConnection(*loop, "127.0.0.1", (*server)->addresses()[0].port()));
  ASSERT_TRUE(client.ok()) << client.status();
  // More than one receive takes, so some must wait in the kernel.
  constexpr size_t kSent = 1 << 20;
  client->writer.Write(std::string(kSent, 'z'));

  auto paused = [&] {
    return accepted.has_value() && accepted->writer.transport() != nullptr &&
           !accepted->writer.transport()->IsReading();
  };
  ASSERT_TRUE(loop->RunUntil(paused));
  StreamReader& reader = accepted->reader;
  const size_t buffered = reader.BufferedSize();
  EXPECT_GT(buffered, 2 * kLimit);
  EXPECT_LT(buffered, kSent);  // The rest waits in the kernel.

  ASSERT_TRUE(loop->RunUntilComplete(reader.ReadExactly(buffered - kLimit - 1)).ok());
  EXPECT_FALSE(accepted->writer.transport()->IsReading());  // limit + 1 left.
  ASSERT_TRUE(loop->RunUntilComplete(reader.ReadExactly(1)).ok());
  EXPECT_TRUE(accepted->writer.transport()->IsReading());  // limit left.

  // Everything arrives, in order, once the reader keeps up.
  absl::StatusOr<std::string> rest =
      loop->RunUntilComplete(reader.ReadExactly(kSent - buffered + kLimit));
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, std::string(kSent - buffered + kLimit, 'z'));
  client->writer.Close();
  accepted->writer.Close();
  loop->RunUntilIdle();
  watchdog.Cancel();
}

TEST(StreamsOverTcpTest, AZeroLimitIsRefused) {
  auto loop = EventLoop::Create().value();
  auto echo = [](StreamReader, StreamWriter) -> Task<absl::Status> {
    co_return absl::OkStatus();
  };
  absl::StatusOr<std::unique_ptr<Server>> server = loop->RunUntilComplete(
      StartServer(*loop, echo, "127.0.0.1", 0, StreamOptions{.limit = 0}));
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<StreamPair> client = loop->RunUntilComplete(
      OpenConnection(*loop, "127.0.0.1", 1, StreamOptions{.limit = 0}));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartUnixServer(*loop, echo, "/tmp/unused",
                            StreamOptions{.limit = 0})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StreamsOverTcpTest, AFailingCallbackIsReportedAndClosesTheConnection) {
  auto loop = EventLoop::Create().value();
  std::vector<std::string> errors;
  loop->SetErrorHandler([&](const LoopError& e) {
    errors.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
  });
  Handle watchdog = loop->CallLater(absl::Seconds(30), [&] {
    ADD_FAILURE() << "still running after 30 s";
    loop->Stop();
  });
  auto failing = [](StreamReader, StreamWriter) -> Task<absl::Status> {
    co_return absl::InternalError("handler broke");
  };
  auto server =
      loop->RunUntilComplete(StartServer(*loop, failing, "127.0.0.1", 0));
  ASSERT_TRUE(server.ok());
  auto client = [](EventLoop& loop, uint16_t port) -> Task<absl::StatusOr<std::string>> {
    absl::StatusOr<StreamPair> streams =
        co_await OpenConnection(loop, "127.0.0.1", port);
    if (!streams.ok()) co_return streams.status();
    co_return co_await streams->reader.Read();  // Until the server closes.
  };
  absl::StatusOr<std::string> read = loop->RunUntilComplete(
      client(*loop, (*server)->addresses()[0].port()));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], HasSubstr("handler broke"));
  watchdog.Cancel();
}

}  // namespace
}  // namespace sluice
