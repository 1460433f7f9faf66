#include "transports/testing/socket_flavours.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transports/socket_transport.h"
#include "transports/testing/socket_peer.h"
#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {
namespace {

// Small kernel buffers on both ends, so that a peer that stops reading
// pushes back on the transport after a few tens of KiB, not megabytes.
constexpr int kKernelBuffer = 16 * 1024;

// Owns an fd until released.
class OwnedFd {
 public:
  explicit OwnedFd(int fd = -1) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) close(fd_);
  }
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.release()) {}
  OwnedFd& operator=(OwnedFd&&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

absl::Status Errno(const char* what) {
  return absl::ErrnoToStatus(errno, what);
}

void SetBuffer(int fd, int option) {
  int size = kKernelBuffer;
  setsockopt(fd, SOL_SOCKET, option, &size, sizeof(size));
}

// Accepts the one pending connection on `listener`, whose other end is
// `client`.
absl::StatusOr<ConnectedSockets> Accept(int listener, OwnedFd client) {
  sockaddr_storage from;
  socklen_t from_length = sizeof(from);
  OwnedFd accepted(accept4(listener, reinterpret_cast<sockaddr*>(&from),
                           &from_length, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (accepted.get() < 0) return Errno("accept4");
  SetBuffer(accepted.get(), SO_SNDBUF);
  if (fcntl(client.get(), F_SETFL, fcntl(client.get(), F_GETFL) | O_NONBLOCK) !=
      0) {
    return Errno("fcntl");
  }
  return ConnectedSockets{
      .accepted = accepted.release(),
      .client = client.release(),
      .client_address = SocketAddress::FromSockaddr(
          reinterpret_cast<sockaddr*>(&from), from_length)};
}

// The accepted end becomes a SocketTransport owning `protocol`; the client
// end the Peer.
absl::StatusOr<std::unique_ptr<Peer>> Wrap(
    EventLoop& loop, absl::StatusOr<ConnectedSockets> sockets,
    std::unique_ptr<Protocol> protocol) {
  if (!sockets.ok()) return sockets.status();
  auto peer = std::make_unique<SocketPeer>(loop, sockets->client);
  SocketTransport::Create(loop, sockets->accepted, std::move(protocol),
                          sockets->client_address);
  return peer;
}

}  // namespace

absl::StatusOr<ConnectedSockets> ConnectTcpSockets() {
  OwnedFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) return Errno("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&address), length) !=
          0 ||
      listen(listener.get(), 1) != 0 ||
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address),
                  &length) != 0) {
    return Errno("bind/listen");
  }
  OwnedFd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (client.get() < 0) return Errno("socket");
  // Before connect: the receive window is agreed in the handshake.
  SetBuffer(client.get(), SO_RCVBUF);
  if (connect(client.get(), reinterpret_cast<sockaddr*>(&address), length) !=
      0) {
    return Errno("connect");
  }
  return Accept(listener.get(), std::move(client));
}

namespace {

// A fresh directory for one socket path: in $TEST_TMPDIR, or in /tmp when
// that name is too long for sun_path (108 bytes), as under Bazel.
absl::StatusOr<std::string> MakeSocketDirectory() {
  static std::atomic<int> counter{0};
  const char* test_tmpdir = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(test_tmpdir != nullptr ? test_tmpdir : "/tmp",
                                 "/conformance-", getpid(), "-", counter++);
  constexpr size_t kRoomForName = 16;
  if (dir.size() + kRoomForName >= sizeof(sockaddr_un{}.sun_path)) {
    char short_dir[] = "/tmp/sluice_conformance_XXXXXX";
    if (mkdtemp(short_dir) == nullptr) return Errno("mkdtemp");
    return std::string(short_dir);
  }
  if (mkdir(dir.c_str(), 0700) != 0) return Errno("mkdir");
  return dir;
}

}  // namespace

absl::StatusOr<ConnectedSockets> ConnectUnixSockets() {
  absl::StatusOr<std::string> dir = MakeSocketDirectory();
  if (!dir.ok()) return dir.status();
  const std::string path = absl::StrCat(*dir, "/s.sock");
  // The name is only needed until the connection is accepted.
  absl::Cleanup remove = [&] {
    unlink(path.c_str());
    rmdir(dir->c_str());
  };
  absl::StatusOr<SocketAddress> address = SocketAddress::FromUnixPath(path);
  if (!address.ok()) return address.status();
  OwnedFd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) return Errno("socket");
  if (bind(listener.get(), address->data(), address->length()) != 0 ||
      listen(listener.get(), 1) != 0) {
    return Errno("bind/listen");
  }
  OwnedFd client(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (client.get() < 0) return Errno("socket");
  if (connect(client.get(), address->data(), address->length()) != 0) {
    return Errno("connect");
  }
  return Accept(listener.get(), std::move(client));
}

namespace {

absl::StatusOr<std::unique_ptr<Peer>> ConnectTcp(
    EventLoop& loop, std::unique_ptr<Protocol> protocol) {
  return Wrap(loop, ConnectTcpSockets(), std::move(protocol));
}

absl::StatusOr<std::unique_ptr<Peer>> ConnectUnix(
    EventLoop& loop, std::unique_ptr<Protocol> protocol) {
  return Wrap(loop, ConnectUnixSockets(), std::move(protocol));
}

absl::StatusOr<std::unique_ptr<Peer>> ConnectSocketpair(
    EventLoop& loop, std::unique_ptr<Protocol> protocol) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                 fds) != 0) {
    return Errno("socketpair");
  }
  SetBuffer(fds[0], SO_SNDBUF);
  auto peer = std::make_unique<SocketPeer>(loop, fds[1]);
  SocketTransport::Create(loop, fds[0], std::move(protocol));
  return peer;
}

void CheckTcpExtraInfo(Transport& transport, Peer& peer) {
  ASSERT_TRUE(transport.LocalAddress().has_value());
  ASSERT_TRUE(transport.PeerAddress().has_value());
  ASSERT_TRUE(peer.LocalAddress().has_value());
  ASSERT_TRUE(peer.RemoteAddress().has_value());
  EXPECT_EQ(transport.LocalAddress()->family(), AF_INET);
  EXPECT_EQ(transport.LocalAddress()->host(), "127.0.0.1");
  EXPECT_EQ(transport.PeerAddress()->host(), "127.0.0.1");
  EXPECT_NE(transport.LocalAddress()->port(), 0);
  EXPECT_EQ(transport.LocalAddress()->port(), peer.RemoteAddress()->port());
  EXPECT_EQ(transport.PeerAddress()->port(), peer.LocalAddress()->port());
  // asyncio turns Nagle off for TCP transports.
  int nodelay = 0;
  socklen_t length = sizeof(nodelay);
  ASSERT_EQ(getsockopt(transport.Fd(), IPPROTO_TCP, TCP_NODELAY, &nodelay,
                       &length),
            0);
  EXPECT_NE(nodelay, 0);
}

void CheckUnixExtraInfo(Transport& transport, Peer&) {
  ASSERT_TRUE(transport.LocalAddress().has_value());
  ASSERT_TRUE(transport.PeerAddress().has_value());
  EXPECT_EQ(transport.LocalAddress()->family(), AF_UNIX);
  EXPECT_EQ(transport.PeerAddress()->family(), AF_UNIX);
  // The accepting end is named after the listener; the client is unnamed.
  EXPECT_THAT(transport.LocalAddress()->host(), ::testing::EndsWith("/s.sock"));
  EXPECT_EQ(transport.PeerAddress()->host(), "");
}

void CheckSocketpairExtraInfo(Transport& transport, Peer&) {
  ASSERT_TRUE(transport.LocalAddress().has_value());
  ASSERT_TRUE(transport.PeerAddress().has_value());
  EXPECT_EQ(transport.LocalAddress()->family(), AF_UNIX);
  EXPECT_EQ(transport.LocalAddress()->host(), "");
  EXPECT_EQ(transport.PeerAddress()->host(), "");
}

}  // namespace

TransportFactory Tcp() {
  return TransportFactory{.name = "Tcp",
                          .connect = ConnectTcp,
                          .supports_reset = true,
                          .has_fd = true,
                          .check_extra_info = CheckTcpExtraInfo};
}

TransportFactory Unix() {
  return TransportFactory{.name = "Unix",
                          .connect = ConnectUnix,
                          .supports_reset = false,
                          .has_fd = true,
                          .check_extra_info = CheckUnixExtraInfo};
}

TransportFactory UnixSocketpair() {
  return TransportFactory{.name = "UnixSocketpair",
                          .connect = ConnectSocketpair,
                          .supports_reset = false,
                          .has_fd = true,
                          .check_extra_info = CheckSocketpairExtraInfo};
}

}  // namespace sluice::transport_testing
