#ifndef SLUICE_TRANSPORTS_TESTING_SOCKET_PEER_H_
#define SLUICE_TRANSPORTS_TESTING_SOCKET_PEER_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "framework/event_loop.h"
#include "framework/socket_address.h"
#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {

// The far end of a socket transport under test: a raw non-blocking stream
// socket (TCP or Unix) whose reads and pending writes are driven by the
// loop's AddReader/AddWriter, so tests wait for it with RunUntil.
// Whether a TCP socket's peer has acknowledged everything sent on it
// (SIOCOUTQ is 0): the bytes are in the receiving socket's queue.
bool AllSentAcknowledged(int fd);

class SocketPeer final : public Peer {
 public:
  // Takes ownership of `fd`, a connected stream socket; makes it
  // non-blocking and starts reading on `loop`, which must outlive this.
  SocketPeer(EventLoop& loop, int fd);
  ~SocketPeer() override;

  SocketPeer(const SocketPeer&) = delete;
  SocketPeer& operator=(const SocketPeer&) = delete;

  void Write(std::string_view data) override;
  void ShutdownWrite() override;
  void StopReading() override;
  void StartReading() override;
  const std::string& received() const override { return received_; }
  bool saw_eof() const override { return eof_; }
  absl::Status error() const override { return error_; }
  // TCP: nothing unacknowledged (SIOCOUTQ); Unix: a send queues directly
  // at the receiver, so nothing left to send.
  bool AllWritesDelivered() override;
  void Close() override;
  // SO_LINGER {1, 0} and close: TCP sends RST.
  void Reset() override;
  std::optional<SocketAddress> LocalAddress() const override { return local_; }
  std::optional<SocketAddress> RemoteAddress() const override {
    return remote_;
  }

 private:
  void HandleReadable();
  void Flush();
  void Fail(int error, const char* operation);
  // Drops the loop registrations and closes the socket.
  void CloseSocket();

  EventLoop& loop_;
  int fd_;
  bool is_tcp_ = false;
  std::optional<SocketAddress> local_;
  std::optional<SocketAddress> remote_;
  std::string received_;
  std::string pending_;
  size_t pending_offset_ = 0;  // Bytes of pending_ already sent.
  std::vector<char> read_buffer_;
  bool reading_ = false;
  bool writing_ = false;  // A writer callback is registered.
  bool shutdown_pending_ = false;
  bool eof_ = false;
  absl::Status error_;
};

}  // namespace sluice::transport_testing

#endif  // SLUICE_TRANSPORTS_TESTING_SOCKET_PEER_H_
