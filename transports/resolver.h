#ifndef SLUICE_TRANSPORTS_RESOLVER_H_
#define SLUICE_TRANSPORTS_RESOLVER_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "framework/event_loop.h"
#include "framework/socket_address.h"
#include "framework/task.h"

namespace sluice {

struct ResolveOptions {
  // AF_INET, AF_INET6 or AF_UNSPEC (both).
  int family = AF_UNSPEC;
  // For binding: an empty host means every interface (0.0.0.0 and ::).
  bool passive = false;
};

// Resolves `host` to stream socket addresses with `port`, in getaddrinfo's
// order and without duplicates. Numeric addresses are parsed on the spot;
// names are looked up on the loop's executor, so the loop never blocks on
// DNS. kNotFound when the name does not resolve, kInvalidArgument for an
// empty host that is not passive.
Task<absl::StatusOr<std::vector<SocketAddress>>> Resolve(
    EventLoop& loop, std::string host, uint16_t port,
    ResolveOptions options = {});

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_RESOLVER_H_
