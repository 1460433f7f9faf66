#ifndef SLUICE_FRAMEWORK_SOCKET_ADDRESS_H_
#define SLUICE_FRAMEWORK_SOCKET_ADDRESS_H_

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice {

// An IPv4, IPv6 or Unix-domain socket address (a sockaddr_storage and its
// length), printable as "127.0.0.1:80", "[::1]:80" or "unix:/path".
class SocketAddress {
 public:
  // AF_UNSPEC: no address.
  SocketAddress() = default;

  // Copies `length` bytes of `address`.
  static SocketAddress FromSockaddr(const sockaddr* address, socklen_t length);
  // The local (getsockname) or peer (getpeername) address of socket `fd`;
  // nullopt if the call fails (e.g. not connected).
  static std::optional<SocketAddress> LocalOf(int fd);
  static std::optional<SocketAddress> PeerOf(int fd);
  // A numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "fe80::1%lo").
  // kInvalidArgument for anything else (names need a resolver).
  static absl::StatusOr<SocketAddress> FromIp(std::string_view ip,
                                              uint16_t port);
  // A Unix-domain path; a leading '@' names an abstract socket.
  // kInvalidArgument if empty or longer than sun_path.
  static absl::StatusOr<SocketAddress> FromUnixPath(std::string_view path);

  int family() const { return storage_.ss_family; }
  bool empty() const { return family() == AF_UNSPEC; }
  bool is_ip() const { return family() == AF_INET || family() == AF_INET6; }

  const sockaddr* data() const {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  socklen_t length() const { return length_; }

  // The numeric host ("127.0.0.1", "::1") or the Unix path.
  std::string host() const;
  // The port of an IP address; 0 otherwise.
  uint16_t port() const;
  std::string ToString() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b);

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_SOCKET_ADDRESS_H_
