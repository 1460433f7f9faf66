#ifndef SLUICE_TRANSPORTS_TESTING_TRANSPORT_CONFORMANCE_H_
#define SLUICE_TRANSPORTS_TESTING_TRANSPORT_CONFORMANCE_H_

// A conformance suite for sluice::Transport, written once against the
// interface and run against every implementation (the shape of gRPC's
// EventEngine test suite). It checks the ordering rules of
// docs/architecture.md ("The contracts") on live connections.
//
// To run it against a transport, link :transport_conformance and
// instantiate the suite with one factory per flavour:
//
//   INSTANTIATE_TEST_SUITE_P(
//       SocketTransport, TransportConformanceTest,
//       ::testing::Values(Tcp(), Unix()),  // TransportFactory values
//       TransportConformanceTest::Name);
//
// (socket_transport_conformance_test.cc is the worked example.) Tests that
// a flavour cannot support are skipped by capability flags in the factory
// (supports_reset, CanWriteEof(), has_fd), never by name.
//
// The factory makes a connected pair: the transport under test, which owns
// the protocol it is given (the loop owns the transport), and a Peer, the
// far end that the tests drive. Nothing here assumes that the far end is a
// socket: an in-memory transport provides an in-memory Peer.

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/transport.h"
#include "gtest/gtest.h"

namespace sluice::transport_testing {

// The far end of a connection under test. Driven by the test, on the same
// loop as the transport: its progress (reading, flushing what it was asked
// to write) happens in loop callbacks, so a test waits for it with
// EventLoop::RunUntil. A Peer reads from the start.
class Peer {
 public:
  virtual ~Peer() = default;

  // Sends `data` to the transport in order; what cannot be sent at once is
  // kept and sent from the loop. Ignored after Close or Reset.
  virtual void Write(std::string_view data) = 0;
  // Closes the sending side once everything written so far has been sent.
  virtual void ShutdownWrite() = 0;

  // Stops (resumes) consuming bytes. A peer that does not read lets
  // back-pressure reach the transport: its write buffer grows.
  virtual void StopReading() = 0;
  virtual void StartReading() = 0;

  // Everything received from the transport so far.
  virtual const std::string& received() const = 0;
  // Whether the transport's end of stream was received.
  virtual bool saw_eof() const = 0;
  // An error the peer saw while reading or writing (e.g. a reset); OK if
  // none.
  virtual absl::Status error() const = 0;

  // Whether every byte given to Write has reached the transport's side (is
  // queued there, possibly unread). May change without a loop event: tests
  // poll it.
  virtual bool AllWritesDelivered() = 0;

  // Closes both directions, gracefully (a socket peer sends FIN).
  virtual void Close() = 0;
  // Closes abortively (TCP: RST). Only when TransportFactory::supports_reset.
  virtual void Reset() = 0;

  // The peer's own address and the address it is connected to, if the
  // transport has addresses at all.
  virtual std::optional<SocketAddress> LocalAddress() const = 0;
  virtual std::optional<SocketAddress> RemoteAddress() const = 0;
};

// One flavour of transport under test.
//
// Tests make a peer stop reading and expect back-pressure soon: keep the
// buffering between the two ends (kernel socket buffers) well under 1 MiB,
// e.g. with small SO_SNDBUF / SO_RCVBUF.
struct TransportFactory {
  // A test-name suffix: letters, digits and underscores.
  std::string name;
  // Makes the transport under test, owning `protocol` and handed to `loop`,
  // connected to the returned Peer. Must not call into `protocol`: the
  // transport calls ConnectionMade from the loop.
  std::function<absl::StatusOr<std::unique_ptr<Peer>>(
      EventLoop& loop, std::unique_ptr<Protocol> protocol)>
      connect;
  // Peer::Reset works and surfaces as ConnectionLost(kUnavailable).
  bool supports_reset = false;
  // The peer keeps its side open after the transport's EOF and the other
  // way round (TCP); a TLS peer answers close_notify with its own.
  bool supports_half_close = true;
  // Transport::Fd() is the connected stream socket.
  bool has_fd = false;
  // Checks of the extra information that only this flavour can make (e.g.
  // the address family); runs while connected. May be empty.
  std::function<void(Transport& transport, Peer& peer)> check_extra_info;
};

// So that gtest prints a factory by its name.
void PrintTo(const TransportFactory& factory, std::ostream* os);

// A protocol callback as the recording protocols saw it: write flow control
// events with the transport's state at that moment.
struct FlowEvent {
  bool pause;  // PauseWriting, else ResumeWriting.
  size_t buffer_size;
  WriteBufferLimits limits;
  // The transport call the test was making when the callback ran ("" when
  // it ran from the loop).
  std::string during;
};

// What the recording protocols saw, owned by the test: the transport owns
// and destroys the protocol after ConnectionLost, so the record must outlive
// it. Also checks the callback state machine as it goes; a breach is added
// to `violations`.
struct Record {
  // "made", "data" (consecutive deliveries recorded once), "eof", "pause",
  // "resume", "lost:<CODE>" (e.g. "lost:OK", "lost:UNAVAILABLE").
  std::vector<std::string> events;
  // Every byte delivered, in order.
  std::string data;
  std::optional<absl::Status> lost;
  // Valid from ConnectionMade until ConnectionLost (exclusive), else null.
  Transport* transport = nullptr;
  bool paused = false;
  std::vector<FlowEvent> flow;
  std::vector<std::string> violations;
  bool made = false;
  bool eof = false;
  bool handed_over = false;

  // False for a protocol installed with SetProtocol: it gets no
  // ConnectionMade, and `transport` must be set by the test.
  bool expect_connection_made = true;
  // The transport call the test is making, or null (see
  // TransportConformanceTest::InCall). Set by the fixture.
  const char* const* in_call = nullptr;

  // Custom behaviour, run after the event was recorded. A hook may throw.
  absl::AnyInvocable<void(Transport&)> on_made;
  absl::AnyInvocable<void(std::string_view)> on_data;
  // The EofReceived result; false when unset.
  absl::AnyInvocable<bool()> on_eof;
  absl::AnyInvocable<void()> on_pause;
  absl::AnyInvocable<void()> on_resume;
  absl::AnyInvocable<void(const absl::Status&)> on_lost;

  // Bookkeeping shared by the recording protocols.
  void Note(std::string_view callback);
  void Made(Transport& transport);
  void Data(std::string_view bytes);
  bool Eof();
  void Pause();
  void Resume();
  void Lost(const absl::Status& status);
  void HandedOver();
  std::string CurrentCall() const;
};

// Records the callbacks every stream protocol has into a Record.
template <class Base>
class Recording : public Base {
 public:
  explicit Recording(Record& record) : record_(record) {}

  void ConnectionMade(Transport& transport) override { record_.Made(transport); }
  bool EofReceived() override { return record_.Eof(); }
  void PauseWriting() override { record_.Pause(); }
  void ResumeWriting() override { record_.Resume(); }
  void ConnectionHandedOver() override { record_.HandedOver(); }
  void ConnectionLost(const absl::Status& status) override {
    record_.Lost(status);
  }

 protected:
  Record& record_;
};

// Records every callback, data included.
class RecordingProtocol final : public Recording<Protocol> {
 public:
  using Recording::Recording;
  void DataReceived(std::string_view data) override { record_.Data(data); }
};

// A BufferedProtocol that lends a buffer of a fixed size (0: an empty span,
// which must abort the connection) and records like RecordingProtocol.
class RecordingBufferedProtocol final : public Recording<BufferedProtocol> {
 public:
  RecordingBufferedProtocol(Record& record, size_t buffer_size)
      : Recording(record), buffer_(buffer_size) {}

  std::span<char> GetBuffer(size_t size_hint) override;
  void BufferUpdated(size_t size) override;

 private:
  std::vector<char> buffer_;
  bool lent_ = false;
};

// The suite. Every wait is event-driven and bounded by kWaitTimeout.
class TransportConformanceTest
    : public ::testing::TestWithParam<TransportFactory> {
 public:
  // How long any single wait may take before the test fails.
  static constexpr absl::Duration kWaitTimeout = absl::Seconds(20);

  // For INSTANTIATE_TEST_SUITE_P: names the instantiation after the factory.
  static std::string Name(
      const ::testing::TestParamInfo<TransportFactory>& info) {
    return info.param.name;
  }

 protected:
  void SetUp() override;
  void TearDown() override;

  const TransportFactory& factory() const { return GetParam(); }

  // Connects a RecordingProtocol on `record_` (or `protocol`, which records
  // into some Record) and waits for ConnectionMade. False (and a failure)
  // if that did not happen.
  bool Connect();
  bool Connect(std::unique_ptr<Protocol> protocol, Record& record);
  // Connects without waiting for ConnectionMade.
  bool StartConnect(std::unique_ptr<Protocol> protocol);

  // The live transport of `record_`; requires a connection.
  Transport& transport();

  // Runs the loop until `done()`; false (and a failure naming `what`) after
  // kWaitTimeout. With `poll`, `done()` is also re-checked every
  // millisecond, for conditions that change without a loop event.
  bool WaitFor(absl::FunctionRef<bool()> done, std::string_view what,
               bool poll = false);
  // Waits for ConnectionLost of `record` (default `record_`).
  bool WaitForLost() { return WaitForLost(record_); }
  bool WaitForLost(Record& record);

  // Marks a call into the transport: a protocol callback other than
  // PauseWriting that runs during it is a violation.
  class InCall {
   public:
    InCall(TransportConformanceTest& test, const char* what)
        : test_(test), saved_(test.in_call_) {
      test_.in_call_ = what;
    }
    ~InCall() { test_.in_call_ = saved_; }

   private:
    TransportConformanceTest& test_;
    const char* saved_;
  };

  // Transport::Write / Writev of bytes that must arrive: remembered in
  // `sent_`, and checked against the pause rule (above high after the call
  // => the protocol is paused).
  void Write(std::string_view data);
  void Writev(std::span<const std::string_view> buffers);
  // The pause rule after a call into the transport.
  void ExpectPausedIfAboveHigh(const char* after);
  // The next `size` bytes of a pattern in which no two stretches of a few
  // bytes look alike (so reordering shows up).
  std::string Pattern(size_t size) const;
  // Writes pattern chunks until `done()`; false (and a failure) if 64 MiB
  // did not get there.
  bool FillUntil(absl::FunctionRef<bool()> done, size_t chunk = 16 * 1024);

  // Writes twice after the transport stopped sending (Close, Abort,
  // WriteEof): both writes must be dropped.
  void WriteTwiceAfterTheEnd();

  // Connects with Close (or Abort) called from inside the callback `where`
  // and checks how the connection ends.
  enum class EndInside {
    kConnectionMade,
    kDataReceived,
    kEofReceived,
    kPauseWriting,
    kResumeWriting,
  };
  void EndInsideCallback(EndInside where, bool abort);

  // Removes and returns the errors the loop's error handler received.
  std::vector<LoopError> TakeErrors();

  // Declared in destruction order: the records outlive the loop (and the
  // protocols the loop's transports own); the peer goes before the loop.
  Record record_;
  // For a protocol installed with SetProtocol.
  Record second_record_;
  std::vector<Record*> records_{&record_, &second_record_};
  std::vector<LoopError> errors_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Peer> peer_;
  // Every byte handed to Write/Writev that the peer must receive.
  std::string sent_;
  const char* in_call_ = nullptr;
};

// "a" vs "b" without printing megabytes: the sizes and the first offset at
// which they differ.
::testing::AssertionResult SameBytes(std::string_view actual,
                                     std::string_view expected);

}  // namespace sluice::transport_testing

#endif  // SLUICE_TRANSPORTS_TESTING_TRANSPORT_CONFORMANCE_H_
