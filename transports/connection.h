#ifndef SLUICE_TRANSPORTS_CONNECTION_H_
#define SLUICE_TRANSPORTS_CONNECTION_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/task.h"
#include "framework/transport.h"

namespace sluice {

struct ConnectOptions {
  // Bounds the whole attempt, name resolution included: kDeadlineExceeded.
  absl::Duration timeout = absl::InfiniteDuration();
  // AF_INET or AF_INET6 to use only that family.
  int family = AF_UNSPEC;
  // Binds the socket before connecting (a numeric address; port 0: any).
  std::optional<SocketAddress> local_address = std::nullopt;
};

// A connected transport and its protocol. Both stay valid until the
// protocol's ConnectionLost returns; the loop owns them.
struct Connection {
  Transport* transport;
  Protocol* protocol;
};

// Connects to `host`:`port` (asyncio's create_connection): resolves the
// name without blocking the loop, tries each address in turn, and once one
// connects, makes the protocol with `factory` and completes after its
// ConnectionMade ran. If every address fails: that error for one address,
// else kUnavailable listing each address's error.
Task<absl::StatusOr<Connection>> CreateConnection(EventLoop& loop,
                                                  ProtocolFactory factory,
                                                  std::string host,
                                                  uint16_t port,
                                                  ConnectOptions options = {});

// Connects to the Unix-domain socket at `path` ('@name': abstract).
Task<absl::StatusOr<Connection>> CreateUnixConnection(
    EventLoop& loop, ProtocolFactory factory, std::string path,
    ConnectOptions options = {});

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_CONNECTION_H_
