#ifndef SLUICE_TRANSPORTS_MEMORY_TRANSPORT_H_
#define SLUICE_TRANSPORTS_MEMORY_TRANSPORT_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/transport.h"
#include "transports/transport_core.h"

namespace sluice {

// A Transport without a socket, for testing protocols (Twisted's
// StringTransport and loopback pump, Netty's EmbeddedChannel). It keeps
// every contract of a socket transport (callback order, flow control,
// nothing called back synchronously but PauseWriting), and lets the test
// play the peer:
//
//   auto& transport = MemoryTransport::Create(loop, std::make_unique<Mine>());
//   loop.RunUntilIdle();                      // ConnectionMade
//   transport.DeliverFromPeer("request\n");
//   loop.RunUntilIdle();                      // DataReceived
//   EXPECT_EQ(transport.TakeSent(), "response\n");
//
// While the peer is not reading (SetPeerReading(false)), what the protocol
// writes stays in the write buffer, as it would behind a slow client, and
// PauseWriting / ResumeWriting follow the watermarks. With a VirtualClock
// loop, timer-driven protocols run without waiting.
//
// ConnectInMemory links two of them: what one side writes, the other
// receives on a later iteration, and a side that pauses reading holds back
// the other side's writes.
class MemoryTransport final : public StreamTransportCore, public LoopOwned {
 public:
  struct Options {
    std::optional<SocketAddress> local_address = std::nullopt;
    std::optional<SocketAddress> peer_address = std::nullopt;
    // Receive what the transport sends, and its end of stream, instead of
    // sent() / peer_saw_eof(): a test peer that outlives the transport.
    absl::AnyInvocable<void(std::string_view)> on_sent = nullptr;
    absl::AnyInvocable<void()> on_eof = nullptr;
    // Runs right after ConnectionLost returned; the transport is gone at
    // the end of that iteration.
    absl::AnyInvocable<void()> on_lost = nullptr;
  };

  // Like SocketTransport::Create: the loop owns the transport, and
  // ConnectionMade and then reading are scheduled.
  static MemoryTransport& Create(EventLoop& loop,
                                 std::unique_ptr<Protocol> protocol,
                                 Options options);
  static MemoryTransport& Create(EventLoop& loop,
                                 std::unique_ptr<Protocol> protocol) {
    return Create(loop, std::move(protocol), Options());
  }

  ~MemoryTransport() override;

  // The peer's side, for tests.

  // What the transport sent and the test has not taken yet.
  const std::string& sent() const { return sent_; }
  std::string TakeSent() { return std::exchange(sent_, std::string()); }
  // Whether the peer consumes what the transport writes (default true).
  void SetPeerReading(bool reading);
  // Bytes from the peer, for DataReceived on a later iteration; held while
  // the protocol has paused reading.
  void DeliverFromPeer(std::string_view data);
  // The peer closed its sending side: EofReceived after the data before it.
  void DeliverEofFromPeer();
  // The peer broke the connection: ConnectionLost(`error`) on a later
  // iteration, the write buffer discarded.
  void ResetFromPeer(absl::Status error);
  // The transport closed its sending side (WriteEof or Close) and the peer
  // got everything before it.
  bool peer_saw_eof() const { return peer_saw_eof_; }

  // BaseTransport.
  void Close() override;
  void Abort() override;
  std::optional<SocketAddress> PeerAddress() const override {
    return options_.peer_address;
  }
  std::optional<SocketAddress> LocalAddress() const override {
    return options_.local_address;
  }
  int Fd() const override { return -1; }

  // Transport.
  void Write(std::string_view data) override;
  void Writev(std::span<const std::string_view> buffers) override;
  void WriteEof() override;
  bool CanWriteEof() const override { return true; }

 private:
  friend class TransportCore<Transport, Protocol>;
  friend std::pair<MemoryTransport*, MemoryTransport*> ConnectInMemory(
      EventLoop&, std::unique_ptr<Protocol>, std::unique_ptr<Protocol>,
      Options, Options);

  MemoryTransport(EventLoop& loop, std::unique_ptr<Protocol> protocol,
                  Options options);

  // TransportCore.
  std::string Describe() const override;
  void StartReading() override;
  void ReadingChanged() override;
  void OnForceClose(const absl::Status& status) override;
  void OnConnectionLost() override;

  bool PeerAccepting() const;
  // Bytes the linked peer sent that this side has not read: handed over
  // and not delivered, or held back in the peer's buffer.
  size_t UnreadFromPeer() const;
  // Hands `bytes` to the peer (or the test).
  void SendToPeer(std::string_view bytes);
  void SendEofToPeer();
  // Hands the write buffer to the peer if it accepts it, then finishes a
  // pending WriteEof or Close.
  void Flush();
  void ScheduleFlush();
  void ScheduleDelivery();
  void Deliver();

  Options options_;
  std::string sent_;
  // The other end of a ConnectInMemory pair; null for a test-driven
  // transport, or once the other end is gone.
  MemoryTransport* linked_peer_ = nullptr;
  bool linked_ = false;
  bool peer_reading_ = true;
  std::deque<std::string> incoming_;
  bool incoming_eof_ = false;
  // Pending callbacks, cancelled if the transport goes first.
  Handle delivery_;
  Handle flush_;
  bool delivery_scheduled_ = false;
  bool flush_scheduled_ = false;
  bool read_started_ = false;
  bool flushing_ = false;
  bool peer_saw_eof_ = false;
};

// Connects `client` and `server` in memory (the loopback pump). Both get
// ConnectionMade on the next iteration. The transports belong to the loop
// and live until their ConnectionLost returns.
std::pair<MemoryTransport*, MemoryTransport*> ConnectInMemory(
    EventLoop& loop, std::unique_ptr<Protocol> client,
    std::unique_ptr<Protocol> server,
    MemoryTransport::Options client_options = {},
    MemoryTransport::Options server_options = {});

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_MEMORY_TRANSPORT_H_
