#include "transports/testing/transport_conformance.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "framework/exceptions.h"
#include "gmock/gmock.h"

namespace sluice::transport_testing {

void PrintTo(const TransportFactory& factory, std::ostream* os) {
  *os << factory.name;
}

// ---------------------------------------------------------------------------
// Record and the recording protocols.

std::string Record::CurrentCall() const {
  return in_call != nullptr && *in_call != nullptr ? *in_call : "";
}

void Record::Note(std::string_view callback) {
  const std::string name(callback);
  if (lost.has_value()) {
    violations.push_back(absl::StrCat(name, " after ConnectionLost"));
  }
  if (handed_over) {
    violations.push_back(absl::StrCat(name, " after ConnectionHandedOver"));
  }
  if (expect_connection_made && !made && callback != "ConnectionMade") {
    violations.push_back(absl::StrCat(name, " before ConnectionMade"));
  }
  // Only PauseWriting may run inside a call the protocol (here: the test)
  // made into the transport, and only inside a write or a change of limits.
  const std::string call = CurrentCall();
  if (!call.empty()) {
    const bool allowed =
        (callback == "PauseWriting" &&
         (call == "Write" || call == "Writev" ||
          call == "SetWriteBufferLimits" || call == "SetProtocol")) ||
        (callback == "ConnectionHandedOver" && call == "SetProtocol");
    if (!allowed) {
      violations.push_back(
          absl::StrCat(name, " ran synchronously inside Transport::", call));
    }
  }
}

void Record::Made(Transport& t) {
  Note("ConnectionMade");
  if (!expect_connection_made) {
    violations.push_back("ConnectionMade for a protocol set by SetProtocol");
  }
  if (made) violations.push_back("ConnectionMade twice");
  made = true;
  transport = &t;
  events.push_back("made");
  if (on_made) on_made(t);
}

void Record::Data(std::string_view bytes) {
  Note("DataReceived");
  if (eof) violations.push_back("DataReceived after EofReceived");
  if (bytes.empty()) violations.push_back("DataReceived with no bytes");
  data.append(bytes);
  if (events.empty() || events.back() != "data") events.push_back("data");
  if (on_data) on_data(bytes);
}

bool Record::Eof() {
  Note("EofReceived");
  if (eof) violations.push_back("EofReceived twice");
  eof = true;
  events.push_back("eof");
  return on_eof ? on_eof() : false;
}

void Record::Pause() {
  Note("PauseWriting");
  if (paused) violations.push_back("PauseWriting twice in a row");
  paused = true;
  if (transport != nullptr) {
    flow.push_back(FlowEvent{true, transport->GetWriteBufferSize(),
                             transport->GetWriteBufferLimits(), CurrentCall()});
  }
  events.push_back("pause");
  if (on_pause) on_pause();
}

void Record::Resume() {
  Note("ResumeWriting");
  if (!paused) violations.push_back("ResumeWriting without PauseWriting");
  paused = false;
  if (transport != nullptr) {
    flow.push_back(FlowEvent{false, transport->GetWriteBufferSize(),
                             transport->GetWriteBufferLimits(), CurrentCall()});
  }
  events.push_back("resume");
  if (on_resume) on_resume();
}

void Record::HandedOver() {
  Note("ConnectionHandedOver");
  if (handed_over) violations.push_back("ConnectionHandedOver twice");
  handed_over = true;
  events.push_back("handed-over");
}

void Record::Lost(const absl::Status& status) {
  Note("ConnectionLost");
  lost = status;
  events.push_back(absl::StrCat("lost:", absl::StatusCodeToString(status.code())));
  // The transport is still valid while the hook runs.
  if (on_lost) on_lost(status);
  transport = nullptr;
}

std::span<char> RecordingBufferedProtocol::GetBuffer(size_t /*size_hint*/) {
  record_.Note("GetBuffer");
  if (record_.eof) record_.violations.push_back("GetBuffer after EofReceived");
  lent_ = true;
  return std::span<char>(buffer_.data(), buffer_.size());
}

void RecordingBufferedProtocol::BufferUpdated(size_t size) {
  if (!lent_) record_.violations.push_back("BufferUpdated without GetBuffer");
  if (size > buffer_.size()) {
    record_.violations.push_back(absl::StrCat(
        "BufferUpdated(", size, ") beyond a buffer of ", buffer_.size()));
    size = buffer_.size();
  }
  lent_ = false;
  record_.Data(std::string_view(buffer_.data(), size));
}

// ---------------------------------------------------------------------------
// The fixture.

::testing::AssertionResult SameBytes(std::string_view actual,
                                     std::string_view expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  size_t common = std::min(actual.size(), expected.size());
  size_t first = 0;
  while (first < common && actual[first] == expected[first]) ++first;
  return ::testing::AssertionFailure()
         << "got " << actual.size() << " bytes, expected " << expected.size()
         << "; they differ from offset " << first;
}

void TransportConformanceTest::SetUp() {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok()) << loop.status();
  loop_ = std::move(*loop);
  loop_->SetErrorHandler(
      [this](const LoopError& error) { errors_.push_back(error); });
  for (Record* record : records_) record->in_call = &in_call_;
}

void TransportConformanceTest::TearDown() {
  if (loop_ == nullptr) return;
  // A test that stopped early leaves its connection open.
  for (Record* record : records_) {
    if (record->transport != nullptr) {
      record->transport->Abort();
      WaitForLost(*record);
    }
  }
  peer_.reset();
  loop_->RunUntilIdle();
  loop_.reset();
  for (Record* record : records_) {
    EXPECT_THAT(record->violations, ::testing::IsEmpty());
  }
  for (const LoopError& error : errors_) {
    ADD_FAILURE() << "unexpected error reported to the loop: " << error.message
                  << ": " << error.status;
  }
}

bool TransportConformanceTest::StartConnect(std::unique_ptr<Protocol> protocol) {
  absl::StatusOr<std::unique_ptr<Peer>> peer;
  {
    // ConnectionMade must come from the loop, not from the factory.
    InCall call(*this, "(creation)");
    peer = factory().connect(*loop_, std::move(protocol));
  }
  if (!peer.ok()) {
    ADD_FAILURE() << "cannot connect a " << factory().name
                  << " transport: " << peer.status();
    return false;
  }
  peer_ = std::move(*peer);
  return true;
}

bool TransportConformanceTest::Connect() {
  return Connect(std::make_unique<RecordingProtocol>(record_), record_);
}

bool TransportConformanceTest::Connect(std::unique_ptr<Protocol> protocol,
                                       Record& record) {
  if (!StartConnect(std::move(protocol))) return false;
  if (!WaitFor([&] { return record.made || record.lost.has_value(); },
               "ConnectionMade")) {
    return false;
  }
  if (record.transport == nullptr) {
    ADD_FAILURE() << "the connection was lost at once: "
                  << testing::PrintToString(record.events);
    return false;
  }
  return true;
}

Transport& TransportConformanceTest::transport() {
  if (record_.transport == nullptr) {
    ADD_FAILURE() << "no live transport";
    std::abort();
  }
  return *record_.transport;
}

bool TransportConformanceTest::WaitFor(absl::FunctionRef<bool()> done,
                                       std::string_view what, bool poll) {
  bool timed_out = false;
  Handle deadline =
      loop_->CallLater(kWaitTimeout, [&timed_out] { timed_out = true; });
  Handle tick;
  std::function<void()> schedule_tick = [&] {
    tick = loop_->CallLater(absl::Milliseconds(1), [&] { schedule_tick(); });
  };
  if (poll) schedule_tick();
  loop_->RunUntil([&] { return timed_out || done(); });
  deadline.Cancel();
  tick.Cancel();
  if (done()) return true;
  ADD_FAILURE() << "timed out after " << kWaitTimeout << " waiting for "
                << what << "; events so far: "
                << testing::PrintToString(record_.events);
  return false;
}

bool TransportConformanceTest::WaitForLost(Record& record) {
  return WaitFor([&] { return record.lost.has_value(); }, "ConnectionLost");
}

void TransportConformanceTest::ExpectPausedIfAboveHigh(const char* after) {
  if (record_.transport == nullptr) return;
  const size_t size = record_.transport->GetWriteBufferSize();
  const size_t high = record_.transport->GetWriteBufferLimits().high;
  if (size > high) {
    EXPECT_TRUE(record_.paused)
        << "the write buffer holds " << size << " bytes, above high (" << high
        << "), after " << after << ", but PauseWriting did not run";
  }
}

void TransportConformanceTest::Write(std::string_view data) {
  Transport& t = transport();
  {
    InCall call(*this, "Write");
    t.Write(data);
  }
  sent_.append(data);
  ExpectPausedIfAboveHigh("Write");
}

void TransportConformanceTest::Writev(
    std::span<const std::string_view> buffers) {
  Transport& t = transport();
  {
    InCall call(*this, "Writev");
    t.Writev(buffers);
  }
  for (std::string_view buffer : buffers) sent_.append(buffer);
  ExpectPausedIfAboveHigh("Writev");
}

std::string TransportConformanceTest::Pattern(size_t size) const {
  // splitmix64 of the 8-byte block index: no period a test could hit.
  auto block = [](uint64_t index) {
    uint64_t z = index + 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  };
  std::string out(size, '\0');
  const size_t offset = sent_.size();
  for (size_t i = 0; i < size; ++i) {
    const size_t at = offset + i;
    out[i] = static_cast<char>(block(at / 8) >> (8 * (at % 8)));
  }
  return out;
}

bool TransportConformanceTest::FillUntil(absl::FunctionRef<bool()> done,
                                         size_t chunk) {
  constexpr size_t kLimit = 64 * 1024 * 1024;
  for (size_t total = 0; !done(); total += chunk) {
    if (total >= kLimit || record_.transport == nullptr ||
        record_.transport->IsClosing()) {
      ADD_FAILURE() << "wrote " << total
                    << " bytes without reaching the condition; buffered: "
                    << (record_.transport != nullptr
                            ? record_.transport->GetWriteBufferSize()
                            : 0);
      return false;
    }
    Write(Pattern(chunk));
  }
  return true;
}

void TransportConformanceTest::WriteTwiceAfterTheEnd() {
  InCall call(*this, "Write");
  transport().Write("after-1");
  transport().Write("after-2");
}

void TransportConformanceTest::EndInsideCallback(EndInside where, bool abort) {
  auto end = [this, abort] {
    if (abort) {
      record_.transport->Abort();
    } else {
      record_.transport->Close();
    }
  };
  switch (where) {
    case EndInside::kConnectionMade:
      record_.on_made = [end](Transport& t) {
        t.Write("bye");
        end();
      };
      break;
    case EndInside::kDataReceived:
      record_.on_data = [this, end](std::string_view) {
        record_.transport->Write("bye");
        end();
      };
      break;
    case EndInside::kEofReceived:
      record_.on_eof = [this, end] {
        record_.transport->Write("bye");
        end();
        return true;
      };
      break;
    case EndInside::kPauseWriting:
      record_.on_pause = end;
      break;
    case EndInside::kResumeWriting:
      record_.on_resume = end;
      break;
  }
  ASSERT_TRUE(Connect());
  const bool flow = where == EndInside::kPauseWriting ||
                    where == EndInside::kResumeWriting;
  if (where == EndInside::kDataReceived) peer_->Write("hi");
  if (where == EndInside::kEofReceived) peer_->ShutdownWrite();
  if (flow) {
    peer_->StopReading();
    ASSERT_TRUE(FillUntil([&] {
      return record_.paused || record_.transport == nullptr ||
             record_.transport->IsClosing();
    }));
    peer_->StartReading();
  }
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(record_.lost->ok()) << *record_.lost;
  EXPECT_EQ(record_.events.back(), "lost:OK");
  if (abort) return;
  // A close flushes first: the peer gets every byte, then the EOF.
  ASSERT_TRUE(WaitFor([&] { return peer_->saw_eof(); }, "EOF at the peer"));
  if (flow) {
    ASSERT_TRUE(WaitFor([&] { return peer_->received().size() >= sent_.size(); },
                        "every byte at the peer"));
    EXPECT_TRUE(SameBytes(peer_->received(), sent_));
  } else {
    EXPECT_EQ(peer_->received(), "bye");
  }
}

std::vector<LoopError> TransportConformanceTest::TakeErrors() {
  return std::exchange(errors_, {});
}

// ---------------------------------------------------------------------------
// The tests.

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr size_t kKiB = 1024;
// Far above anything a test buffers: flow control out of the way.
constexpr size_t kHugeHigh = size_t{1} << 30;
// More than the buffering between transport and a peer that does not read
// (kernel buffers: see TransportFactory), so that a buffer this large
// cannot drain until the peer reads again.
constexpr size_t kBeyondPeerBuffering = 1024 * kKiB;

bool IsPrefix(std::string_view prefix, std::string_view of) {
  return of.substr(0, prefix.size()) == prefix;
}

// --- 1. Callback order; ConnectionLost exactly once and last. ---

TEST_P(TransportConformanceTest, CallbacksInOrderWhenPeerWritesThenCloses) {
  auto protocol = std::make_unique<RecordingProtocol>(record_);
  Protocol* const raw = protocol.get();
  ASSERT_TRUE(Connect(std::move(protocol), record_));
  Transport& t = transport();
  EXPECT_EQ(&t.GetProtocol(), raw);
  EXPECT_EQ(&t.loop(), loop_.get());
  EXPECT_FALSE(t.IsClosing());
  EXPECT_TRUE(t.IsReading());

  peer_->Write("hello, ");
  peer_->Write("transport");
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitForLost());
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "eof", "lost:OK"));
  EXPECT_EQ(record_.data, "hello, transport");
  // EofReceived returned false: the transport closed its side too.
  EXPECT_TRUE(WaitFor([&] { return peer_->saw_eof(); }, "EOF at the peer"));
  EXPECT_TRUE(peer_->received().empty());
}

TEST_P(TransportConformanceTest, ConnectionMadeComesFromTheLoopBeforeData) {
  ASSERT_TRUE(StartConnect(std::make_unique<RecordingProtocol>(record_)));
  // The peer writes before the loop ran once: the bytes wait for
  // ConnectionMade.
  peer_->Write("early");
  EXPECT_TRUE(record_.events.empty());
  ASSERT_TRUE(WaitFor([&] { return record_.data == "early"; }, "the data"));
  EXPECT_THAT(record_.events, ElementsAre("made", "data"));
}

TEST_P(TransportConformanceTest, EofReceivedTrueKeepsTransportHalfOpen) {
  if (!factory().supports_half_close) GTEST_SKIP() << "no half-close";
  record_.on_eof = [] { return true; };
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  peer_->Write("ping");
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitFor([&] { return record_.eof; }, "EofReceived"));
  EXPECT_FALSE(t.IsClosing());

  // Still writable, and it stays open until the protocol closes it.
  Write("pong");
  ASSERT_TRUE(WaitFor([&] { return peer_->received() == "pong"; },
                      "the reply at the peer"));
  EXPECT_FALSE(record_.lost.has_value());
  EXPECT_FALSE(peer_->saw_eof());
  {
    InCall call(*this, "Close");
    t.Close();
  }
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(WaitFor([&] { return peer_->saw_eof(); }, "EOF at the peer"));
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "eof", "lost:OK"));
}

TEST_P(TransportConformanceTest, CloseFromInsideDataReceived) {
  record_.on_data = [this](std::string_view) {
    record_.transport->Write("bye");
    record_.transport->Close();
  };
  ASSERT_TRUE(Connect());
  peer_->Write("hi");
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(record_.lost->ok()) << *record_.lost;
  ASSERT_TRUE(WaitFor([&] { return peer_->saw_eof(); }, "EOF at the peer"));
  EXPECT_EQ(peer_->received(), "bye");
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "lost:OK"));
}

// Close or Abort from inside each callback: the transport ends once, with
// ConnectionLost(OK) last; Close still delivers what was written before
// it, Abort may drop it. (Record turns any callback after ConnectionLost,
// and any callback run synchronously inside those calls, into a failure.)
#define SLUICE_END_INSIDE_TEST(where, abort, name)   \
  TEST_P(TransportConformanceTest, name) {           \
    EndInsideCallback(EndInside::where, abort);      \
  }
SLUICE_END_INSIDE_TEST(kConnectionMade, false, CloseInsideConnectionMade)
SLUICE_END_INSIDE_TEST(kConnectionMade, true, AbortInsideConnectionMade)
SLUICE_END_INSIDE_TEST(kDataReceived, false, CloseInsideDataReceivedFlushes)
SLUICE_END_INSIDE_TEST(kDataReceived, true, AbortInsideDataReceived)
SLUICE_END_INSIDE_TEST(kEofReceived, false, CloseInsideEofReceived)
SLUICE_END_INSIDE_TEST(kEofReceived, true, AbortInsideEofReceived)
SLUICE_END_INSIDE_TEST(kPauseWriting, false, CloseInsidePauseWriting)
SLUICE_END_INSIDE_TEST(kPauseWriting, true, AbortInsidePauseWriting)
SLUICE_END_INSIDE_TEST(kResumeWriting, false, CloseInsideResumeWriting)
SLUICE_END_INSIDE_TEST(kResumeWriting, true, AbortInsideResumeWriting)
#undef SLUICE_END_INSIDE_TEST

// --- 2. Peer reset. ---

TEST_P(TransportConformanceTest, PeerResetIsUnavailable) {
  if (!factory().supports_reset) GTEST_SKIP() << "the peer cannot reset";
  ASSERT_TRUE(Connect());
  peer_->Reset();
  ASSERT_TRUE(WaitForLost());
  EXPECT_EQ(record_.lost->code(), absl::StatusCode::kUnavailable)
      << *record_.lost;
  EXPECT_FALSE(record_.lost->message().empty());
  EXPECT_THAT(record_.events, ElementsAre("made", "lost:UNAVAILABLE"));
}

// --- 3. Write flow control: PauseWriting / ResumeWriting. ---

TEST_P(TransportConformanceTest, PauseAndResumeWritingAlternateOverCycles) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  const WriteBufferLimits limits = t.GetWriteBufferLimits();
  constexpr int kCycles = 3;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    SCOPED_TRACE(absl::StrCat("cycle ", cycle));
    peer_->StopReading();
    size_t before = 0;  // The buffer before the write that paused.
    ASSERT_TRUE(FillUntil([&] {
      if (record_.paused) return true;
      before = t.GetWriteBufferSize();
      return false;
    }));
    // PauseWriting ran inside the Write that first lifted the buffer above
    // high.
    EXPECT_LE(before, limits.high);
    const FlowEvent pause = record_.flow.back();
    EXPECT_TRUE(pause.pause);
    EXPECT_EQ(pause.during, "Write");
    EXPECT_GT(pause.buffer_size, limits.high);
    // Writes while paused are accepted (and do not pause again).
    Write(Pattern(4 * kKiB));

    peer_->StartReading();
    ASSERT_TRUE(WaitFor([&] { return !record_.paused; }, "ResumeWriting"));
    const FlowEvent resume = record_.flow.back();
    EXPECT_FALSE(resume.pause);
    EXPECT_EQ(resume.during, "");
    EXPECT_LE(resume.buffer_size, limits.low);
  }
  ASSERT_TRUE(WaitFor([&] { return peer_->received().size() >= sent_.size(); },
                      "every byte at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
  EXPECT_THAT(record_.events, ElementsAre("made", "pause", "resume", "pause",
                                          "resume", "pause", "resume"));
  t.Close();
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(record_.lost->ok()) << *record_.lost;
}

TEST_P(TransportConformanceTest, ZeroWatermarksPauseWhenBufferedResumeWhenEmpty) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  ASSERT_TRUE(t.SetWriteBufferLimits(0, 0).ok());
  peer_->StopReading();
  size_t before = 0;
  ASSERT_TRUE(FillUntil([&] {
    if (record_.paused) return true;
    before = t.GetWriteBufferSize();
    return false;
  }));
  EXPECT_EQ(before, 0u);
  EXPECT_GT(record_.flow.back().buffer_size, 0u);
  peer_->StartReading();
  ASSERT_TRUE(WaitFor([&] { return !record_.paused; }, "ResumeWriting"));
  // Envoy#9499: with low = 0 the low edge is "== 0", and it must fire.
  EXPECT_EQ(record_.flow.back().buffer_size, 0u);
  ASSERT_TRUE(WaitFor([&] { return peer_->received().size() >= sent_.size(); },
                      "every byte at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
  EXPECT_THAT(record_.events, ElementsAre("made", "pause", "resume"));
}

// --- 4. SetWriteBufferLimits. ---

void ExpectLimits(const Transport& t, size_t low, size_t high) {
  const WriteBufferLimits limits = t.GetWriteBufferLimits();
  EXPECT_EQ(limits.low, low);
  EXPECT_EQ(limits.high, high);
}

TEST_P(TransportConformanceTest, SetWriteBufferLimitsValidatesAndDefaults) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  InCall call(*this, "SetWriteBufferLimits");
  ExpectLimits(t, 16384, 65536);

  absl::Status status = t.SetWriteBufferLimits(/*high=*/100, /*low=*/200);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  ExpectLimits(t, 16384, 65536);

  EXPECT_TRUE(t.SetWriteBufferLimits(std::nullopt, 1000).ok());
  ExpectLimits(t, 1000, 4000);
  EXPECT_TRUE(t.SetWriteBufferLimits(1000).ok());
  ExpectLimits(t, 250, 1000);
  EXPECT_TRUE(t.SetWriteBufferLimits(5000, 5000).ok());
  ExpectLimits(t, 5000, 5000);
  EXPECT_TRUE(t.SetWriteBufferLimits(0, 0).ok());
  ExpectLimits(t, 0, 0);
  status = t.SetWriteBufferLimits(std::nullopt, 5000);  // high = 20000
  EXPECT_TRUE(status.ok()) << status;
  status = t.SetWriteBufferLimits(10, 11);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  ExpectLimits(t, 5000, 20000);
  EXPECT_TRUE(t.SetWriteBufferLimits().ok());
  ExpectLimits(t, 16384, 65536);
  EXPECT_THAT(record_.events, ElementsAre("made"));
}

TEST_P(TransportConformanceTest, RaisingLowWhilePausedResumesOnlyFromTheLoop) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  peer_->StopReading();
  ASSERT_TRUE(FillUntil([&] { return record_.paused; }));
  {
    // A low above what is buffered: no resume inside this call, nor inside
    // the writes that follow (Record flags a ResumeWriting inside Write).
    InCall call(*this, "SetWriteBufferLimits");
    ASSERT_TRUE(t.SetWriteBufferLimits(kHugeHigh, kHugeHigh - 1).ok());
  }
  Write(Pattern(kKiB));
  Write(Pattern(kKiB));
  EXPECT_TRUE(record_.paused);
  peer_->StartReading();
  ASSERT_TRUE(WaitFor([&] { return !record_.paused; }, "ResumeWriting"));
  EXPECT_EQ(record_.flow.back().during, "");
  ASSERT_TRUE(WaitFor([&] { return peer_->received().size() >= sent_.size(); },
                      "every byte at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
}

TEST_P(TransportConformanceTest, APauseInsideConnectionMadeIsToldOnce) {
  record_.on_made = [this](Transport& t) {
    peer_->StopReading();
    t.Write(Pattern(kBeyondPeerBuffering));
  };
  ASSERT_TRUE(Connect());
  EXPECT_TRUE(record_.paused);
  peer_->StartReading();
  ASSERT_TRUE(WaitFor([&] { return !record_.paused; }, "ResumeWriting"));
  EXPECT_THAT(record_.events, ElementsAre("made", "pause", "resume"));
  transport().Close();
  ASSERT_TRUE(WaitForLost());
}

TEST_P(TransportConformanceTest, SetWriteBufferLimitsAppliesToLiveTransport) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  ASSERT_TRUE(t.SetWriteBufferLimits(kHugeHigh).ok());
  peer_->StopReading();
  ASSERT_TRUE(FillUntil([&] { return t.GetWriteBufferSize() > 8 * kKiB; }));
  EXPECT_FALSE(record_.paused);

  // Already above the new high: paused before the call returns.
  {
    InCall call(*this, "SetWriteBufferLimits");
    ASSERT_TRUE(t.SetWriteBufferLimits(4 * kKiB, kKiB).ok());
  }
  ASSERT_TRUE(record_.paused);
  EXPECT_EQ(record_.flow.back().during, "SetWriteBufferLimits");
  EXPECT_GT(record_.flow.back().buffer_size, 4 * kKiB);

  // Raising the limits while paused does not resume inside the call (a
  // protocol callback inside the protocol's own call; asyncio does not
  // either): ResumeWriting comes from the loop, at the next drain.
  {
    InCall call(*this, "SetWriteBufferLimits");
    ASSERT_TRUE(t.SetWriteBufferLimits(kHugeHigh).ok());
  }
  EXPECT_TRUE(record_.paused);
  peer_->StartReading();
  ASSERT_TRUE(WaitFor([&] { return !record_.paused; }, "ResumeWriting"));
  EXPECT_EQ(record_.flow.back().during, "");
  ASSERT_TRUE(WaitFor([&] { return peer_->received().size() >= sent_.size(); },
                      "every byte at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
  EXPECT_THAT(record_.events, ElementsAre("made", "pause", "resume"));
}

// --- 5. Writes after Close / Abort / WriteEof. ---

// Checks that exactly one "write dropped" diagnostic was reported.
void ExpectOneDroppedWriteReport(std::vector<LoopError> errors) {
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("write dropped"));
  EXPECT_EQ(errors[0].status.code(), absl::StatusCode::kFailedPrecondition)
      << errors[0].status;
}

TEST_P(TransportConformanceTest, WritesAfterCloseAreDropped) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  Write("before");
  {
    InCall call(*this, "Close");
    t.Close();
  }
  EXPECT_TRUE(t.IsClosing());
  EXPECT_FALSE(t.IsReading());
  WriteTwiceAfterTheEnd();
  {
    InCall call(*this, "Writev");
    const std::string_view buffers[] = {"after-3", "after-4"};
    t.Writev(buffers);
  }
  ExpectOneDroppedWriteReport(TakeErrors());
  ASSERT_TRUE(WaitForLost());
  ASSERT_TRUE(WaitFor([&] { return peer_->saw_eof(); }, "EOF at the peer"));
  EXPECT_EQ(peer_->received(), "before");
  EXPECT_THAT(record_.events, ElementsAre("made", "lost:OK"));
}

TEST_P(TransportConformanceTest, WritesAfterAbortAreDropped) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  Write("before");
  {
    InCall call(*this, "Abort");
    t.Abort();
  }
  EXPECT_TRUE(t.IsClosing());
  WriteTwiceAfterTheEnd();
  ExpectOneDroppedWriteReport(TakeErrors());
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(record_.lost->ok()) << *record_.lost;
  ASSERT_TRUE(WaitFor([&] { return peer_->saw_eof() || !peer_->error().ok(); },
                      "the end of the stream at the peer"));
  EXPECT_TRUE(IsPrefix(peer_->received(), "before")) << peer_->received();
  EXPECT_THAT(record_.events, ElementsAre("made", "lost:OK"));
}

TEST_P(TransportConformanceTest, WritesAfterWriteEofAreDropped) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  if (!t.CanWriteEof()) GTEST_SKIP() << "no WriteEof";
  if (!factory().supports_half_close) GTEST_SKIP() << "no half-close";
  Write("before");
  {
    InCall call(*this, "WriteEof");
    t.WriteEof();
  }
  WriteTwiceAfterTheEnd();
  ExpectOneDroppedWriteReport(TakeErrors());
  ASSERT_TRUE(WaitFor([&] { return peer_->saw_eof(); }, "EOF at the peer"));
  EXPECT_EQ(peer_->received(), "before");
  // Only the sending side is closed.
  EXPECT_FALSE(t.IsClosing());
  peer_->Write("still open");
  ASSERT_TRUE(WaitFor([&] { return record_.data == "still open"; },
                      "data after WriteEof"));
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitForLost());
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "eof", "lost:OK"));
}

// --- 6. Abort discards, Close flushes. ---

TEST_P(TransportConformanceTest, AbortDiscardsTheBuffer) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  peer_->StopReading();
  ASSERT_TRUE(FillUntil([&] { return t.GetWriteBufferSize() > 0; }));
  const size_t buffered = t.GetWriteBufferSize();
  {
    InCall call(*this, "Abort");
    t.Abort();
  }
  EXPECT_TRUE(t.IsClosing());
  EXPECT_EQ(t.GetWriteBufferSize(), 0u);
  peer_->StartReading();
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(record_.lost->ok()) << *record_.lost;
  ASSERT_TRUE(WaitFor([&] { return peer_->saw_eof() || !peer_->error().ok(); },
                      "the end of the stream at the peer"));
  EXPECT_LE(peer_->received().size(), sent_.size() - buffered);
  EXPECT_TRUE(IsPrefix(peer_->received(), sent_));
  EXPECT_THAT(record_.events, ElementsAre("made", "lost:OK"));
}

TEST_P(TransportConformanceTest, CloseFlushesBeforeConnectionLost) {
  std::optional<size_t> buffered_at_lost;
  record_.on_lost = [&](const absl::Status&) {
    buffered_at_lost = record_.transport->GetWriteBufferSize();
  };
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  ASSERT_TRUE(t.SetWriteBufferLimits(kHugeHigh).ok());
  peer_->StopReading();
  ASSERT_TRUE(
      FillUntil([&] { return t.GetWriteBufferSize() > kBeyondPeerBuffering; }));
  {
    InCall call(*this, "Close");
    t.Close();
    t.Close();  // Idempotent.
  }
  EXPECT_TRUE(t.IsClosing());
  EXPECT_FALSE(t.IsReading());
  // Nothing can drain while the peer does not read: no ConnectionLost yet.
  loop_->RunUntilIdle();
  EXPECT_FALSE(record_.lost.has_value());
  EXPECT_GT(t.GetWriteBufferSize(), 0u);

  peer_->StartReading();
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(record_.lost->ok()) << *record_.lost;
  EXPECT_EQ(buffered_at_lost, 0u);
  ASSERT_TRUE(WaitFor([&] { return peer_->saw_eof(); }, "EOF at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
  EXPECT_THAT(record_.events, ElementsAre("made", "lost:OK"));
}

TEST_P(TransportConformanceTest, CloseAndAbortAreIdempotent) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  {
    InCall call(*this, "Close/Abort");
    t.Close();
    t.Close();
    t.Abort();
    t.Abort();
  }
  EXPECT_TRUE(t.IsClosing());
  ASSERT_TRUE(WaitForLost());
  loop_->RunUntilIdle();
  EXPECT_THAT(record_.events, ElementsAre("made", "lost:OK"));
}

TEST_P(TransportConformanceTest, AbortOverridesAPendingCloseFlush) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  ASSERT_TRUE(t.SetWriteBufferLimits(kHugeHigh).ok());
  peer_->StopReading();
  ASSERT_TRUE(FillUntil([&] { return t.GetWriteBufferSize() > 0; }));
  {
    InCall call(*this, "Close/Abort");
    t.Close();
    t.Abort();
  }
  EXPECT_EQ(t.GetWriteBufferSize(), 0u);
  // No flush to wait for: lost although the peer still does not read.
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(record_.lost->ok()) << *record_.lost;
  EXPECT_THAT(record_.events, ElementsAre("made", "lost:OK"));
}

TEST_P(TransportConformanceTest, PeerEofWithWritesPendingFlushesThenCloses) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  ASSERT_TRUE(t.SetWriteBufferLimits(kHugeHigh).ok());
  peer_->StopReading();
  ASSERT_TRUE(
      FillUntil([&] { return t.GetWriteBufferSize() > kBeyondPeerBuffering; }));
  // EofReceived returns false: the transport closes, which flushes first.
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitFor([&] { return record_.eof; }, "EofReceived"));
  ASSERT_FALSE(record_.lost.has_value())
      << "lost before the buffer could drain: " << *record_.lost << " "
      << testing::PrintToString(record_.events);
  EXPECT_TRUE(t.IsClosing());
  peer_->StartReading();
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(record_.lost->ok()) << *record_.lost;
  ASSERT_TRUE(WaitFor([&] { return peer_->saw_eof(); }, "EOF at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
  EXPECT_THAT(record_.events, ElementsAre("made", "eof", "lost:OK"));
}

TEST_P(TransportConformanceTest, PeerGoneWhileWritesAreBlockedIsUnavailable) {
  ASSERT_TRUE(Connect());
  peer_->StopReading();
  ASSERT_TRUE(FillUntil([&] { return record_.paused; }));
  if (factory().supports_reset) {
    peer_->Reset();
  } else {
    peer_->Close();
  }
  ASSERT_TRUE(WaitForLost());
  EXPECT_EQ(record_.lost->code(), absl::StatusCode::kUnavailable)
      << *record_.lost;
  // A peer that closes may first be seen as EOF; no ResumeWriting either
  // way.
  ASSERT_GE(record_.events.size(), 3u);
  EXPECT_EQ(record_.events[0], "made");
  EXPECT_EQ(record_.events[1], "pause");
  EXPECT_EQ(record_.events.back(), "lost:UNAVAILABLE");
  EXPECT_THAT(record_.events, ::testing::Not(::testing::Contains("resume")));
}

// --- 7. Half-close both ways. ---

TEST_P(TransportConformanceTest, WriteEofHalfClosesAfterFlushingAndKeepsReading) {
  if (!factory().supports_half_close) GTEST_SKIP() << "no half-close";
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  if (!t.CanWriteEof()) GTEST_SKIP() << "no WriteEof";
  ASSERT_TRUE(t.SetWriteBufferLimits(kHugeHigh).ok());
  peer_->StopReading();
  ASSERT_TRUE(FillUntil([&] { return t.GetWriteBufferSize() > 0; }));
  {
    InCall call(*this, "WriteEof");
    t.WriteEof();
    t.WriteEof();  // Idempotent.
  }
  EXPECT_FALSE(t.IsClosing());
  peer_->StartReading();
  ASSERT_TRUE(WaitFor([&] { return peer_->saw_eof(); }, "EOF at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
  EXPECT_TRUE(t.IsReading());

  peer_->Write("reply");
  ASSERT_TRUE(WaitFor([&] { return record_.data == "reply"; }, "the reply"));
  EXPECT_FALSE(record_.lost.has_value());
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitForLost());
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "eof", "lost:OK"));
}

// --- 8. BufferedProtocol. ---

TEST_P(TransportConformanceTest, BufferedProtocolWithTinyBufferGetsEverything) {
  ASSERT_TRUE(Connect(std::make_unique<RecordingBufferedProtocol>(record_, 7),
                      record_));
  const std::string payload = Pattern(256 * kKiB);
  peer_->Write(payload);
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(SameBytes(record_.data, payload));
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "eof", "lost:OK"));
}

TEST_P(TransportConformanceTest, EmptyBufferFromGetBufferAborts) {
  ASSERT_TRUE(Connect(std::make_unique<RecordingBufferedProtocol>(record_, 0),
                      record_));
  peer_->Write("x");
  ASSERT_TRUE(WaitForLost());
  EXPECT_EQ(record_.lost->code(), absl::StatusCode::kInternal)
      << *record_.lost;
  EXPECT_THAT(record_.events, ElementsAre("made", "lost:INTERNAL"));
  // A protocol bug: reported to the loop too, once, naming the callback.
  std::vector<LoopError> errors = TakeErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(std::string(errors[0].status.message()), HasSubstr("GetBuffer"));
}

// --- 9. PauseReading / ResumeReading. ---

TEST_P(TransportConformanceTest, PauseReadingHoldsDataUntilResumeReading) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  EXPECT_TRUE(t.IsReading());
  {
    InCall call(*this, "PauseReading");
    t.PauseReading();
    t.PauseReading();  // Idempotent.
  }
  EXPECT_FALSE(t.IsReading());
  peer_->Write("abc");
  // The bytes are at the transport's door; a few more iterations would
  // deliver them if it were still reading.
  ASSERT_TRUE(WaitFor([&] { return peer_->AllWritesDelivered(); },
                      "the bytes to reach the transport", /*poll=*/true));
  for (int i = 0; i < 3; ++i) loop_->RunOnce(absl::ZeroDuration());
  EXPECT_EQ(record_.data, "");

  {
    InCall call(*this, "ResumeReading");
    t.ResumeReading();
    t.ResumeReading();  // Idempotent.
  }
  EXPECT_TRUE(t.IsReading());
  ASSERT_TRUE(WaitFor([&] { return record_.data == "abc"; }, "the data"));
  peer_->Write("def");
  ASSERT_TRUE(WaitFor([&] { return record_.data == "abcdef"; }, "more data"));

  // Ignored while closing.
  {
    InCall call(*this, "Close");
    t.Close();
    t.ResumeReading();
    t.PauseReading();
    t.ResumeReading();
  }
  EXPECT_FALSE(t.IsReading());
  ASSERT_TRUE(WaitForLost());
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "lost:OK"));
}

TEST_P(TransportConformanceTest, ReadPauseReasonsDoNotUndoEachOther) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  {
    InCall call(*this, "PauseReadingFor");
    t.PauseReadingFor(ReadPause::kStreamReader);
    t.PauseReading();
    // The application resumes: the reader's reason still holds.
    t.ResumeReading();
  }
  EXPECT_FALSE(t.IsReading());
  peer_->Write("abc");
  ASSERT_TRUE(WaitFor([&] { return peer_->AllWritesDelivered(); },
                      "the bytes to reach the transport", /*poll=*/true));
  for (int i = 0; i < 3; ++i) loop_->RunOnce(absl::ZeroDuration());
  EXPECT_EQ(record_.data, "");
  {
    InCall call(*this, "ResumeReadingFor");
    t.ResumeReadingFor(ReadPause::kUpperLayer);  // Never set: no effect.
    EXPECT_FALSE(t.IsReading());
    t.ResumeReadingFor(ReadPause::kStreamReader);
  }
  EXPECT_TRUE(t.IsReading());
  ASSERT_TRUE(WaitFor([&] { return record_.data == "abc"; }, "the data"));
  t.Close();
  ASSERT_TRUE(WaitForLost());
}

TEST_P(TransportConformanceTest, PauseReadingHoldsTheEofToo) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  record_.on_eof = [] { return true; };  // Half-open: the test closes.
  {
    InCall call(*this, "PauseReading");
    t.PauseReading();
  }
  peer_->Write("last");
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitFor([&] { return peer_->AllWritesDelivered(); },
                      "the bytes to reach the transport", /*poll=*/true));
  for (int i = 0; i < 3; ++i) loop_->RunOnce(absl::ZeroDuration());
  EXPECT_EQ(record_.data, "");
  EXPECT_FALSE(record_.eof);
  {
    InCall call(*this, "ResumeReading");
    t.ResumeReading();
  }
  ASSERT_TRUE(WaitFor([&] { return record_.eof; }, "the EOF"));
  EXPECT_EQ(record_.data, "last");
  t.Close();
  ASSERT_TRUE(WaitForLost());
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "eof", "lost:OK"));
}

TEST_P(TransportConformanceTest, PauseReadingInsideConnectionMadeHoldsData) {
  record_.on_made = [](Transport& t) { t.PauseReading(); };
  ASSERT_TRUE(StartConnect(std::make_unique<RecordingProtocol>(record_)));
  peer_->Write("early");
  ASSERT_TRUE(WaitFor([&] { return record_.made; }, "ConnectionMade"));
  ASSERT_TRUE(WaitFor([&] { return peer_->AllWritesDelivered(); },
                      "the bytes to reach the transport", /*poll=*/true));
  for (int i = 0; i < 3; ++i) loop_->RunOnce(absl::ZeroDuration());
  EXPECT_EQ(record_.data, "");
  Transport& t = transport();
  EXPECT_FALSE(t.IsReading());
  t.ResumeReading();
  ASSERT_TRUE(WaitFor([&] { return record_.data == "early"; }, "the data"));
}

TEST_P(TransportConformanceTest, PauseAndResumeReadingLoseNothing) {
  // Pause inside every DataReceived, resume on the next iteration.
  record_.on_data = [this](std::string_view) {
    record_.transport->PauseReading();
    if (record_.transport->IsReading()) {
      record_.violations.push_back("IsReading after PauseReading");
    }
    loop_->CallSoon([this] {
      if (record_.transport != nullptr) record_.transport->ResumeReading();
    });
  };
  ASSERT_TRUE(Connect());
  const std::string payload = Pattern(1024 * kKiB);
  peer_->Write(payload);
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitForLost());
  EXPECT_TRUE(SameBytes(record_.data, payload));
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "eof", "lost:OK"));
}

// --- 10. A throwing protocol callback (builds with exceptions only). ---

#if SLUICE_HAS_EXCEPTIONS
void ExpectReportedInternal(std::vector<LoopError> errors,
                            std::string_view what) {
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].status.code(), absl::StatusCode::kInternal)
      << errors[0].status;
  EXPECT_THAT(std::string(errors[0].status.message()),
              HasSubstr(std::string(what)));
}

TEST_P(TransportConformanceTest, ThrowingDataReceivedIsInternal) {
  record_.on_data = [](std::string_view) {
    throw std::runtime_error("boom in DataReceived");
  };
  ASSERT_TRUE(Connect());
  peer_->Write("x");
  ASSERT_TRUE(WaitForLost());
  EXPECT_EQ(record_.lost->code(), absl::StatusCode::kInternal) << *record_.lost;
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "lost:INTERNAL"));
  ExpectReportedInternal(TakeErrors(), "boom in DataReceived");
}

TEST_P(TransportConformanceTest, ThrowingEofReceivedIsInternal) {
  record_.on_eof = []() -> bool {
    throw std::runtime_error("boom in EofReceived");
  };
  ASSERT_TRUE(Connect());
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitForLost());
  EXPECT_EQ(record_.lost->code(), absl::StatusCode::kInternal) << *record_.lost;
  EXPECT_THAT(record_.events, ElementsAre("made", "eof", "lost:INTERNAL"));
  ExpectReportedInternal(TakeErrors(), "boom in EofReceived");
}

TEST_P(TransportConformanceTest, ThrowingConnectionMadeIsInternal) {
  record_.on_made = [](Transport&) {
    throw std::runtime_error("boom in ConnectionMade");
  };
  ASSERT_TRUE(StartConnect(std::make_unique<RecordingProtocol>(record_)));
  ASSERT_TRUE(WaitForLost());
  EXPECT_EQ(record_.lost->code(), absl::StatusCode::kInternal) << *record_.lost;
  EXPECT_THAT(record_.events, ElementsAre("made", "lost:INTERNAL"));
  ExpectReportedInternal(TakeErrors(), "boom in ConnectionMade");
}

TEST_P(TransportConformanceTest, ThrowingPauseWritingIsReportedOnly) {
  // As asyncio's _FlowControlMixin (transport_core.h): a failing
  // PauseWriting/ResumeWriting is reported to the loop and the state
  // changes all the same; the connection stays up.
  record_.on_pause = [] { throw std::runtime_error("boom in PauseWriting"); };
  record_.on_resume = [] { throw std::runtime_error("boom in ResumeWriting"); };
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  peer_->StopReading();
  ASSERT_TRUE(FillUntil([&] { return record_.paused; }));
  peer_->StartReading();
  ASSERT_TRUE(WaitFor([&] { return !record_.paused; }, "ResumeWriting"));
  ASSERT_TRUE(WaitFor([&] { return peer_->received().size() >= sent_.size(); },
                      "every byte at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
  EXPECT_FALSE(t.IsClosing());
  EXPECT_FALSE(record_.lost.has_value());
  const std::vector<LoopError> errors = TakeErrors();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_THAT(errors[0].message, HasSubstr("PauseWriting"));
  EXPECT_THAT(errors[1].message, HasSubstr("ResumeWriting"));
  EXPECT_THAT(record_.events, ElementsAre("made", "pause", "resume"));
}

// --- 11. Write never calls back synchronously. ---

#endif  // SLUICE_HAS_EXCEPTIONS

TEST_P(TransportConformanceTest, WriteNeverCallsBackSynchronously) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  // Data waiting to be read does not make Write deliver it.
  peer_->Write("incoming");
  ASSERT_TRUE(WaitFor([&] { return peer_->AllWritesDelivered(); },
                      "the bytes to reach the transport", /*poll=*/true));
  Write("outgoing");
  ASSERT_TRUE(WaitFor([&] { return record_.data == "incoming"; }, "the data"));

  // A send that fails: the transport learns of the dead peer only by
  // writing, because it does not read.
  t.PauseReading();
  if (factory().supports_reset) {
    peer_->Reset();
  } else {
    peer_->Close();
  }
  const std::string chunk(100, 'w');
  // Until the transport notices, however long the peer takes to go (a TLS
  // peer first waits for its close_notify to be answered): 100000 writes
  // can all be done before that.
  const absl::Time give_up = absl::Now() + kWaitTimeout;
  for (int i = 0; record_.transport != nullptr && !t.IsClosing(); ++i) {
    if (absl::Now() > give_up) break;
    {
      InCall call(*this, "Write");
      t.Write(chunk);
    }
    ASSERT_FALSE(record_.lost.has_value())
        << "ConnectionLost ran inside Write";
    // Give a slow reset time to arrive (the transport may then see the
    // failure while flushing, from the loop); after the first 100000
    // writes, one per loop iteration, so that the buffers stay small.
    if (i % 64 == 63 || i >= 100000) loop_->RunOnce(absl::Milliseconds(1));
  }
  ASSERT_TRUE(WaitForLost());
  EXPECT_EQ(record_.lost->code(), absl::StatusCode::kUnavailable)
      << *record_.lost;
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "lost:UNAVAILABLE"));
}

TEST_P(TransportConformanceTest, SmallWriteToIdleConnectionIsNotBuffered) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  Write("ping");
  EXPECT_EQ(t.GetWriteBufferSize(), 0u);
  ASSERT_TRUE(WaitFor([&] { return peer_->received() == "ping"; },
                      "the bytes at the peer"));
}

// --- 12. Writev. ---

TEST_P(TransportConformanceTest, WritevDeliversBuffersInOrder) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  {
    InCall call(*this, "Writev");
    t.Writev({});
    const std::string_view empties[] = {"", "", ""};
    t.Writev(empties);
  }
  EXPECT_EQ(t.GetWriteBufferSize(), 0u);

  // More buffers than one sendmsg takes, more bytes than the kernel takes,
  // empty ones among them; then more while some are still buffered.
  for (size_t count : {300, 100}) {
    std::vector<size_t> sizes;
    size_t total = 0;
    for (size_t i = 0; i < count; ++i) {
      sizes.push_back((i * 977) % 5000);
      total += sizes.back();
    }
    std::string bytes = Pattern(total);
    std::vector<std::string> storage;
    for (size_t i = 0, at = 0; i < count; at += sizes[i], ++i) {
      storage.push_back(bytes.substr(at, sizes[i]));
    }
    std::vector<std::string_view> views(storage.begin(), storage.end());
    Writev(views);
    // The caller may reuse its memory at once.
    for (std::string& s : storage) s.assign(s.size(), 'Z');
  }
  Write(Pattern(1000));
  ASSERT_TRUE(WaitFor([&] { return peer_->received().size() >= sent_.size(); },
                      "every byte at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
}

// --- 13. Extra info. ---

TEST_P(TransportConformanceTest, ExtraInfoDescribesTheConnection) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  if (std::optional<SocketAddress> peer_local = peer_->LocalAddress()) {
    ASSERT_TRUE(t.PeerAddress().has_value());
    EXPECT_TRUE(*t.PeerAddress() == *peer_local)
        << t.PeerAddress()->ToString() << " vs " << peer_local->ToString();
  }
  if (std::optional<SocketAddress> peer_remote = peer_->RemoteAddress()) {
    ASSERT_TRUE(t.LocalAddress().has_value());
    EXPECT_TRUE(*t.LocalAddress() == *peer_remote)
        << t.LocalAddress()->ToString() << " vs " << peer_remote->ToString();
  }
  if (factory().has_fd) {
    const int fd = t.Fd();
    ASSERT_GE(fd, 0);
    struct stat info;
    ASSERT_EQ(fstat(fd, &info), 0);
    EXPECT_TRUE(S_ISSOCK(info.st_mode));
    int type = 0;
    socklen_t length = sizeof(type);
    ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length), 0);
    EXPECT_EQ(type, SOCK_STREAM);
    sockaddr_storage local;
    socklen_t local_length = sizeof(local);
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&local),
                          &local_length),
              0);
    ASSERT_TRUE(t.LocalAddress().has_value());
    EXPECT_TRUE(*t.LocalAddress() ==
                SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&local),
                                            local_length));
  } else {
    EXPECT_EQ(t.Fd(), -1);
  }
  if (factory().check_extra_info) factory().check_extra_info(t, *peer_);
}

// --- SetProtocol. ---

TEST_P(TransportConformanceTest, SetProtocolHandsTheConnectionOver) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  Protocol& first = t.GetProtocol();
  second_record_.expect_connection_made = false;
  // A switch of kind too: the reads go into the new protocol's buffer.
  auto next = std::make_unique<RecordingBufferedProtocol>(second_record_, 5);
  Protocol* const raw = next.get();
  std::unique_ptr<Protocol> previous;
  {
    InCall call(*this, "SetProtocol");
    previous = t.SetProtocol(std::move(next));
  }
  EXPECT_EQ(previous.get(), &first);
  EXPECT_EQ(&t.GetProtocol(), raw);
  second_record_.transport = &t;
  record_.transport = nullptr;

  const std::string payload = Pattern(64 * kKiB);
  peer_->Write(payload);
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitForLost(second_record_));
  EXPECT_TRUE(SameBytes(second_record_.data, payload));
  EXPECT_THAT(second_record_.events, ElementsAre("data", "eof", "lost:OK"));
  EXPECT_THAT(record_.events, ElementsAre("made", "handed-over"));
}

TEST_P(TransportConformanceTest, SetProtocolWhilePausedPausesTheNewProtocol) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  peer_->StopReading();
  ASSERT_TRUE(FillUntil([&] { return record_.paused; }));
  ASSERT_TRUE(t.IsWritingPaused());
  second_record_.expect_connection_made = false;
  second_record_.transport = &t;
  std::unique_ptr<Protocol> previous;
  {
    InCall call(*this, "SetProtocol");
    previous = t.SetProtocol(std::make_unique<RecordingProtocol>(second_record_));
  }
  // The new protocol learnt of the pause before SetProtocol returned.
  EXPECT_THAT(second_record_.events, ElementsAre("pause"));
  record_.transport = nullptr;
  previous.reset();  // The transport never touches it again.
  peer_->StartReading();
  ASSERT_TRUE(WaitFor([&] { return !second_record_.paused; }, "ResumeWriting"));
  EXPECT_THAT(second_record_.events, ElementsAre("pause", "resume"));
  EXPECT_THAT(record_.events, ElementsAre("made", "pause", "handed-over"));
  ASSERT_TRUE(WaitFor([&] { return peer_->received().size() >= sent_.size(); },
                      "every byte at the peer"));
  EXPECT_TRUE(SameBytes(peer_->received(), sent_));
  t.Close();
  ASSERT_TRUE(WaitForLost(second_record_));
}

// A protocol that hands its connection over, and is destroyed, from inside
// one of its own callbacks.
template <class Base>
class SwapsItselfOut : public Base {
 public:
  SwapsItselfOut(Record& record, Record& next) : record_(record), next_(next) {}
  void ConnectionMade(Transport& transport) override {
    record_.Made(transport);
    transport_ = &transport;
  }
  void ConnectionHandedOver() override { record_.HandedOver(); }
  void ConnectionLost(const absl::Status& status) override {
    record_.Lost(status);
  }

 protected:
  // Records `data`, then hands the connection to a RecordingProtocol on
  // `next_`, which destroys this object: nothing of it is touched after.
  void SwapOut(std::string_view data) {
    record_.Data(data);
    Record& next = next_;
    Transport* transport = transport_;
    next.expect_connection_made = false;
    next.transport = transport;
    record_.transport = nullptr;
    transport->SetProtocol(std::make_unique<RecordingProtocol>(next));
  }

 private:
  Record& record_;
  Record& next_;
  Transport* transport_ = nullptr;
};

// Swaps protocols from inside the first DataReceived, as a protocol upgrade
// (STARTTLS, HTTP Upgrade) does.
class SwapsInDataReceived final : public SwapsItselfOut<Protocol> {
 public:
  using SwapsItselfOut::SwapsItselfOut;
  void DataReceived(std::string_view data) override { SwapOut(data); }
};

// The same by a protocol that lends its buffer.
class SwapsInBufferUpdated final : public SwapsItselfOut<BufferedProtocol> {
 public:
  using SwapsItselfOut::SwapsItselfOut;
  std::span<char> GetBuffer(size_t) override { return buffer_; }
  void BufferUpdated(size_t size) override {
    SwapOut(std::string_view(buffer_, size));
  }

 private:
  char buffer_[7];
};

TEST_P(TransportConformanceTest, AProtocolMaySwapItselfOutInsideDataReceived) {
  ASSERT_TRUE(Connect(
      std::make_unique<SwapsInDataReceived>(record_, second_record_), record_));
  peer_->Write("upgrade");
  ASSERT_TRUE(WaitFor([&] { return !record_.data.empty(); }, "the first bytes"));
  const std::string rest = Pattern(64 * kKiB);
  peer_->Write(rest);
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitForLost(second_record_));
  // Every byte arrived exactly once, in order, across the two protocols.
  EXPECT_TRUE(SameBytes(record_.data + second_record_.data, "upgrade" + rest));
  EXPECT_THAT(second_record_.events, ElementsAre("data", "eof", "lost:OK"));
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "handed-over"));
}

TEST_P(TransportConformanceTest, ABufferedProtocolMaySwapItselfOutInBufferUpdated) {
  // The same upgrade by a protocol that lends its buffer: the rest of a
  // delivery goes to the new protocol, none to the destroyed one.
  ASSERT_TRUE(Connect(
      std::make_unique<SwapsInBufferUpdated>(record_, second_record_), record_));
  const std::string payload = Pattern(64 * kKiB);
  peer_->Write(payload);
  peer_->ShutdownWrite();
  ASSERT_TRUE(WaitForLost(second_record_));
  EXPECT_EQ(record_.data.size(), 7u);
  EXPECT_TRUE(SameBytes(record_.data + second_record_.data, payload));
  EXPECT_THAT(record_.events, ElementsAre("made", "data", "handed-over"));
}

TEST_P(TransportConformanceTest, SetProtocolNullIsRefusedAndReported) {
  ASSERT_TRUE(Connect());
  Transport& t = transport();
  Protocol& current = t.GetProtocol();
  std::unique_ptr<Protocol> returned;
  {
    InCall call(*this, "SetProtocol");
    returned = t.SetProtocol(nullptr);
  }
  EXPECT_EQ(returned, nullptr);
  EXPECT_EQ(&t.GetProtocol(), &current);
  std::vector<LoopError> errors = TakeErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].status.code(), absl::StatusCode::kInvalidArgument);
  peer_->Write("still here");
  ASSERT_TRUE(WaitFor([&] { return record_.data == "still here"; }, "data"));
  t.Close();
  ASSERT_TRUE(WaitForLost());
}

}  // namespace
}  // namespace sluice::transport_testing
