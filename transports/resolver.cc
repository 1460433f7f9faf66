#include "transports/resolver.h"

#include <netdb.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "framework/future.h"

namespace sluice {
namespace {

using Addresses = absl::StatusOr<std::vector<SocketAddress>>;

// Runs on an executor thread.
Addresses BlockingLookup(const std::string& host, uint16_t port,
                         ResolveOptions options) {
  addrinfo hints{};
  hints.ai_family = options.family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | (options.passive ? AI_PASSIVE : 0);
  addrinfo* results = nullptr;
  std::string service = absl::StrCat(port);
  int error = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                          service.c_str(), &hints, &results);
  if (error != 0) {
    std::string message =
        absl::StrCat("cannot resolve '", host, "': ", gai_strerror(error));
    if (error == EAI_NONAME || error == EAI_NODATA || error == EAI_FAMILY) {
      return absl::NotFoundError(message);
    }
    return absl::UnavailableError(message);
  }
  std::vector<SocketAddress> addresses;
  for (addrinfo* ai = results; ai != nullptr; ai = ai->ai_next) {
    SocketAddress address = SocketAddress::FromSockaddr(ai->ai_addr,
                                                        ai->ai_addrlen);
    if (std::find(addresses.begin(), addresses.end(), address) ==
        addresses.end()) {
      addresses.push_back(std::move(address));
    }
  }
  freeaddrinfo(results);
  return addresses;
}

}  // namespace

Task<Addresses> Resolve(EventLoop& loop, std::string host, uint16_t port,
                        ResolveOptions options) {
  if (host.empty() && !options.passive) {
    co_return absl::InvalidArgumentError("cannot connect to an empty host");
  }
  // Numeric addresses need no lookup (asyncio's _ipaddr_info).
  if (!host.empty()) {
    absl::StatusOr<SocketAddress> numeric = SocketAddress::FromIp(host, port);
    if (numeric.ok()) {
      if (options.family != AF_UNSPEC && numeric->family() != options.family) {
        co_return absl::NotFoundError(absl::StrCat(
            "'", host, "' is not an address of the requested family"));
      }
      co_return std::vector<SocketAddress>{*numeric};
    }
  }
  Future<Addresses> looked_up(loop);
  loop.RunInExecutor([&loop, looked_up, host, port, options]() mutable {
    Addresses result = BlockingLookup(host, port, options);
    // The future is only touched on the loop's thread.
    loop.CallSoonThreadsafe(
        [looked_up = std::move(looked_up),
         result = std::move(result)]() mutable {
          looked_up.SetResult(std::move(result));
        });
  });
  co_return co_await std::move(looked_up);
}

}  // namespace sluice
