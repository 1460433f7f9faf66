#ifndef SLUICE_TRANSPORTS_TLS_START_TLS_H_
#define SLUICE_TRANSPORTS_TLS_START_TLS_H_

#include "absl/status/statusor.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice {

// asyncio's loop.start_tls: upgrades a live connection to TLS on either
// side (TlsTransport::Upgrade, at once, when called) and completes once the handshake has, with
// the TLS transport the connection's protocol writes to from now on (valid
// until that protocol's ConnectionLost returns), or with why the handshake
// failed (the connection is closed then, and the protocol told).
// Cancelling it while the handshake runs aborts the connection.
//
//   // A server's line protocol, after sending "220 Ready to start TLS":
//   absl::StatusOr<Transport*> tls = co_await StartTls(*transport, context);
Task<absl::StatusOr<Transport*>> StartTls(Transport& transport,
                                          const TlsContext& context,
                                          TlsOptions options = {});

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_TLS_START_TLS_H_
