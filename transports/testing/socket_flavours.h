#ifndef SLUICE_TRANSPORTS_TESTING_SOCKET_FLAVOURS_H_
#define SLUICE_TRANSPORTS_TESTING_SOCKET_FLAVOURS_H_

#include <optional>

#include "absl/status/statusor.h"
#include "framework/socket_address.h"
#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {

// SocketTransport over TCP on 127.0.0.1, over a Unix stream socket with a
// path listener, and over a socketpair; the far end is a raw socket
// (SocketPeer) with small kernel buffers, so back-pressure comes early.
TransportFactory Tcp();
TransportFactory Unix();
TransportFactory UnixSocketpair();

// The connected sockets those flavours start from, for flavours that put
// transports of their own on both ends (the caller owns both fds): over
// TCP on 127.0.0.1 or a Unix path (removed once accepted), non-blocking,
// with the same small kernel buffers.
struct ConnectedSockets {
  int accepted = -1;
  int client = -1;
  // The client's address as the accepting end sees it.
  std::optional<SocketAddress> client_address;
};
absl::StatusOr<ConnectedSockets> ConnectTcpSockets();
absl::StatusOr<ConnectedSockets> ConnectUnixSockets();

}  // namespace sluice::transport_testing

#endif  // SLUICE_TRANSPORTS_TESTING_SOCKET_FLAVOURS_H_
