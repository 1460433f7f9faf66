#include "transports/tls/start_tls.h"

#include <utility>

#include "framework/future.h"

namespace sluice {
namespace {

Task<absl::StatusOr<Transport*>> AwaitHandshake(
    absl::StatusOr<TlsTransport*> tls) {
  if (!tls.ok()) co_return tls.status();
  // Cancelling this await aborts the connection (see Handshake()); a failed
  // handshake has closed it already.
  absl::Status done = co_await (*tls)->Handshake();
  if (!done.ok()) co_return done;
  co_return *tls;
}

}  // namespace

Task<absl::StatusOr<Transport*>> StartTls(Transport& transport,
                                          const TlsContext& context,
                                          TlsOptions options) {
  // Not a coroutine itself: the layer goes in at once, before the bytes
  // that follow can reach the protocol (and GCC 12 copies a coroutine's
  // braced-initialised by-value parameters bitwise).
  return AwaitHandshake(
      TlsTransport::Upgrade(transport, context, std::move(options)));
}

}  // namespace sluice
