#include "framework/socket_address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace sluice {

SocketAddress SocketAddress::FromSockaddr(const sockaddr* address,
                                          socklen_t length) {
  SocketAddress result;
  if (length > sizeof(result.storage_)) length = sizeof(result.storage_);
  std::memcpy(&result.storage_, address, length);
  result.length_ = length;
  return result;
}

namespace {

// getsockname or getpeername of `fd`; nullopt if it fails.
std::optional<SocketAddress> QueryAddress(int fd,
                                          int (*query)(int, sockaddr*,
                                                       socklen_t*)) {
  sockaddr_storage storage;
  socklen_t length = sizeof(storage);
  if (query(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    return std::nullopt;
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&storage),
                                     length);
}

}  // namespace

std::optional<SocketAddress> SocketAddress::LocalOf(int fd) {
  return QueryAddress(fd, getsockname);
}

std::optional<SocketAddress> SocketAddress::PeerOf(int fd) {
  return QueryAddress(fd, getpeername);
}

absl::StatusOr<SocketAddress> SocketAddress::FromIp(std::string_view ip,
                                                    uint16_t port) {
  std::string text(ip);
  SocketAddress result;
  sockaddr_in v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    return FromSockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof(v4));
  }
  // An IPv6 address may carry a zone: "fe80::1%eth0".
  std::string zone;
  if (size_t percent = text.find('%'); percent != std::string::npos) {
    zone = text.substr(percent + 1);
    text.resize(percent);
  }
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    if (!zone.empty()) {
      v6.sin6_scope_id = if_nametoindex(zone.c_str());
      if (v6.sin6_scope_id == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown IPv6 zone '", zone, "' in '", std::string(ip), "'"));
      }
    }
    return FromSockaddr(reinterpret_cast<const sockaddr*>(&v6), sizeof(v6));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", std::string(ip), "' is not a numeric IP address"));
}

absl::StatusOr<SocketAddress> SocketAddress::FromUnixPath(
    std::string_view path) {
  sockaddr_un un{};
  if (path.empty() || path.size() >= sizeof(un.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Unix socket path must have 1 to ", sizeof(un.sun_path) - 1,
        " bytes, got ", path.size()));
  }
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  if (path[0] == '@') un.sun_path[0] = '\0';  // Abstract namespace.
  socklen_t length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                             (path[0] == '@' ? 0 : 1));
  return FromSockaddr(reinterpret_cast<const sockaddr*>(&un), length);
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_INET: {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage_);
      inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof(buf));
      return buf;
    }
    case AF_INET6: {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
      inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof(buf));
      return buf;
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      size_t size = length_ > offsetof(sockaddr_un, sun_path)
                        ? length_ - offsetof(sockaddr_un, sun_path)
                        : 0;
      if (size == 0) return "";  // Unnamed (e.g. a socketpair end).
      if (un->sun_path[0] == '\0') {
        return absl::StrCat("@", std::string(un->sun_path + 1, size - 1));
      }
      return std::string(un->sun_path, strnlen(un->sun_path, size));
    }
    default:
      return "";
  }
}

uint16_t SocketAddress::port() const {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

std::string SocketAddress::ToString() const {
  switch (family()) {
    case AF_INET:
      return absl::StrCat(host(), ":", port());
    case AF_INET6:
      return absl::StrCat("[", host(), "]:", port());
    case AF_UNIX: {
      std::string path = host();
      return absl::StrCat("unix:", path.empty() ? "(unnamed)" : path);
    }
    default:
      return "(no address)";
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  return a.length_ == b.length_ &&
         std::memcmp(&a.storage_, &b.storage_, a.length_) == 0;
}

}  // namespace sluice
