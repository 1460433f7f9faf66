#ifndef SLUICE_TRANSPORTS_DATAGRAM_TRANSPORT_H_
#define SLUICE_TRANSPORTS_DATAGRAM_TRANSPORT_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "transports/transport_core.h"

namespace sluice {

// A UDP endpoint (asyncio's _SelectorDatagramTransport): each readiness
// event reads the datagrams waiting (up to a batch), each send goes out at
// once when nothing is queued, and datagrams the kernel refuses for now
// (EAGAIN, ENOBUFS) wait in a queue whose size drives PauseWriting /
// ResumeWriting through the same watermarks as stream transports. Errors
// of single sends and receives, such as an ICMP port-unreachable on a
// connected endpoint, reach the protocol through ErrorReceived (on a later
// iteration) and leave the endpoint open.
class DatagramSocketTransport final
    : public TransportCore<DatagramTransport, DatagramProtocol>,
      public LoopOwned,
      private FdHandler {
 public:
  static constexpr size_t kMaxDatagramSize = 256 * 1024;

  // Takes ownership of `fd`, a non-blocking datagram socket; `peer` is set
  // for a connected one. The loop owns the transport.
  static DatagramSocketTransport& Create(
      EventLoop& loop, int fd, std::unique_ptr<DatagramProtocol> protocol,
      std::optional<SocketAddress> peer);

  ~DatagramSocketTransport() override;

  // BaseTransport.
  void Close() override;
  void Abort() override;
  std::optional<SocketAddress> PeerAddress() const override { return peer_; }
  std::optional<SocketAddress> LocalAddress() const override {
    return local_;
  }
  int Fd() const override { return fd_; }

  // DatagramTransport.
  void SendTo(std::string_view data,
              std::optional<SocketAddress> to = std::nullopt) override;

  // A socket file to remove when the endpoint closes (its own, bound one),
  // if it is still the same file then.
  void RemoveFileOnClose(std::string path);

 private:
  friend class TransportCore<DatagramTransport, DatagramProtocol>;

  struct Queued {
    std::string data;
    std::optional<SocketAddress> to;
  };

  DatagramSocketTransport(EventLoop& loop, int fd,
                          std::unique_ptr<DatagramProtocol> protocol,
                          std::optional<SocketAddress> peer);

  // TransportCore.
  std::string Describe() const override;
  void StartReading() override;
  void OnForceClose(const absl::Status& status) override;
  void OnConnectionLost() override;

  void OnFdReady(uint32_t ready) override;
  void HandleReadable();
  void HandleWritable();
  void UpdateInterest();
  // Sends one datagram; returns the errno, 0 on success.
  int SendOne(std::string_view data, const std::optional<SocketAddress>& to);
  void ReportErrorReceived(absl::Status error);

  int fd_;
  bool watched_ = false;
  std::optional<SocketAddress> peer_;
  std::optional<SocketAddress> local_;
  // Datagrams the kernel refused for now; their bytes count toward the
  // watermarks as held outside the (otherwise unused) write buffer.
  std::deque<Queued> queue_;
  void RemoveOwnFile();

  uint32_t interest_ = kFdNone;
  bool read_started_ = false;
  // ErrorReceived calls waiting for the next iteration.
  std::deque<absl::Status> pending_errors_;
  Handle report_errors_;
  struct OwnedFile {
    std::string path;
    dev_t device;
    ino_t inode;
  };
  std::optional<OwnedFile> owned_path_;
};

// A host and port, as given to CreateDatagramEndpoint.
struct HostPort {
  std::string host = {};
  uint16_t port = 0;
};

struct DatagramEndpointOptions {
  // Where to bind; unset: the kernel picks on the first send (or on
  // connect). An empty host binds every interface.
  std::optional<HostPort> local = std::nullopt;
  // The peer of a connected endpoint: SendTo needs no address, and only
  // this peer's datagrams are received.
  std::optional<HostPort> remote = std::nullopt;
  // AF_INET or AF_INET6; needed when neither address is given.
  int family = AF_UNSPEC;
  bool reuse_port = false;
  bool allow_broadcast = false;
};

// A datagram endpoint and its protocol, valid until the protocol's
// ConnectionLost returns.
struct DatagramEndpoint {
  DatagramTransport* transport;
  DatagramProtocol* protocol;
};

// Creates a UDP endpoint (asyncio's create_datagram_endpoint): resolves the
// addresses without blocking, binds and/or connects, and completes after
// the protocol's ConnectionMade ran.
Task<absl::StatusOr<DatagramEndpoint>> CreateDatagramEndpoint(
    EventLoop& loop, DatagramProtocolFactory factory,
    DatagramEndpointOptions options);

struct UnixDatagramEndpointOptions {
  // The socket file to bind (a name starting with '@' is in the abstract
  // namespace); unset: unnamed, so peers cannot answer. A socket file that
  // is already there is replaced, as asyncio does; the endpoint removes its
  // own file when it closes.
  std::optional<std::string> local_path = std::nullopt;
  // The peer of a connected endpoint.
  std::optional<std::string> remote_path = std::nullopt;
};

// asyncio's create_datagram_endpoint(family=AF_UNIX): an AF_UNIX datagram
// endpoint, bound and/or connected, with the same transport, flow control
// and error reporting as UDP. Completes after ConnectionMade ran.
Task<absl::StatusOr<DatagramEndpoint>> CreateUnixDatagramEndpoint(
    EventLoop& loop, DatagramProtocolFactory factory,
    UnixDatagramEndpointOptions options);

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_DATAGRAM_TRANSPORT_H_
