#ifndef SLUICE_TRANSPORTS_CONNECTION_H_
#define SLUICE_TRANSPORTS_CONNECTION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice {

struct ConnectOptions {
  // Bounds the whole attempt, name resolution included: kDeadlineExceeded.
  absl::Duration timeout = absl::InfiniteDuration();
  // AF_INET or AF_INET6 to use only that family.
  int family = AF_UNSPEC;
  // Binds the socket before connecting (a numeric address; port 0: any).
  std::optional<SocketAddress> local_address = std::nullopt;
  // TLS over the connection, with this client context (asyncio's ssl=),
  // which must live until the connect completes (the connection keeps its
  // own reference): the connect completes once the handshake has, and its
  // transport is the TLS one. A failed handshake is the connect's error
  // (kUnauthenticated for a certificate that did not verify); the protocol
  // never hears of it. `timeout` bounds the handshake too.
  const TlsContext* tls = nullptr;
  // The server's name (CreateConnection's default: `host`) and the
  // handshake and shutdown timeouts.
  TlsOptions tls_options = {};
};
// Options are often braced in a co_await expression, where GCC 12 copies
// them bitwise and destroys both copies: nothing in them may own anything.
static_assert(std::is_trivially_destructible_v<ConnectOptions>);

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
