#include "transports/connection.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "framework/future.h"
#include "framework/timeout.h"
#include "transports/protocol_call.h"
#include "transports/resolver.h"
#include "transports/socket_error.h"
#include "transports/socket_transport.h"

namespace sluice {
namespace {

// Completes when `fd` becomes writable: a non-blocking connect finished.
class WritableWaiter final : public FdHandler {
 public:
  WritableWaiter(EventLoop& loop, int fd)
      : loop_(loop), fd_(fd), ready_(loop) {}
  ~WritableWaiter() {
    if (watching_) loop_.UnwatchFd(fd_);
  }

  absl::Status Start() {
    absl::Status watched = loop_.WatchFd(fd_, *this, kFdWritable);
    watching_ = watched.ok();
    return watched;
  }
  Future<absl::Status> ready() const { return ready_; }

 private:
  void OnFdReady(uint32_t) override {
    loop_.UnwatchFd(fd_);
    watching_ = false;
    ready_.SetResult(absl::OkStatus());
  }

  EventLoop& loop_;
  const int fd_;
  Future<absl::Status> ready_;
  bool watching_ = false;
};

// A connected, non-blocking socket to `address`.
Task<absl::StatusOr<int>> ConnectSocket(EventLoop& loop, SocketAddress address,
                                        std::optional<SocketAddress> local) {
  int fd =
      socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) co_return SocketError(errno, "socket for", address.ToString());
  absl::Cleanup close_fd = [&fd] {
    if (fd >= 0) close(fd);
  };
  if (local.has_value() && bind(fd, local->data(), local->length()) != 0) {
    co_return SocketError(errno, "bind to", local->ToString());
  }
  if (connect(fd, address.data(), address.length()) != 0) {
    if (errno != EINPROGRESS) {
      co_return SocketError(errno, "connect to", address.ToString());
    }
    WritableWaiter waiter(loop, fd);
    absl::Status watching = waiter.Start();
    if (!watching.ok()) co_return watching;
    absl::Status ready = co_await waiter.ready();
    if (!ready.ok()) co_return ready;  // Cancelled.
    int error = 0;
    socklen_t length = sizeof(error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      co_return SocketError(error, "connect to", address.ToString());
    }
  }
  co_return std::exchange(fd, -1);
}

// Wraps connected `fd` in a transport (under TLS if `options` say so) and
// completes once the protocol's ConnectionMade ran.
Task<absl::StatusOr<Connection>> StartTransport(EventLoop& loop, int fd,
                                                ProtocolFactory factory,
                                                const ConnectOptions& options,
                                                std::string_view server_name) {
  absl::StatusOr<std::unique_ptr<Protocol>> made_protocol =
      MakeProtocol(factory);
  if (!made_protocol.ok()) {
    close(fd);
    co_return made_protocol.status();
  }
  std::unique_ptr<Protocol> protocol = *std::move(made_protocol);
  Protocol* raw_protocol = protocol.get();
  TlsTransport* tls = nullptr;
  if (options.tls != nullptr) {
    TlsOptions tls_options = options.tls_options;
    tls_options.server_name = server_name;
    absl::StatusOr<std::unique_ptr<TlsTransport>> layer = TlsTransport::Create(
        loop, *options.tls, tls_options, std::move(protocol));
    if (!layer.ok()) {
      close(fd);
      co_return layer.status();
    }
    tls = layer->get();
    protocol = *std::move(layer);
  }
  SocketTransport& transport =
      SocketTransport::Create(loop, fd, std::move(protocol));
  // The transport may be lost before this coroutine resumes (the protocol
  // aborts in ConnectionMade); then it must not hand out the pointer.
  Future<absl::Status> lost(loop);
  transport.SetClosedCallback(
      [lost]() mutable { lost.SetResult(absl::OkStatus()); });
  // Scheduled after ConnectionMade and the start of reading.
  Future<absl::Status> made(loop);
  loop.CallSoon([made]() mutable { made.SetResult(absl::OkStatus()); });
  absl::Status waited = co_await made;
  if (lost.IsDone()) {
    co_return absl::UnavailableError(
        "the connection was closed during ConnectionMade");
  }
  if (!waited.ok()) {
    transport.Abort();  // Cancelled: nobody will own the connection.
    co_return waited;
  }
  if (tls != nullptr) {
    // Cancelling this await aborts the connection (see Handshake()); a
    // failed handshake has closed it already.
    absl::Status handshake = co_await tls->Handshake();
    if (!handshake.ok()) co_return handshake;
    if (lost.IsDone()) {
      co_return absl::UnavailableError(
          "the connection was closed right after the TLS handshake");
    }
  }
  transport.SetClosedCallback(nullptr);
  if (tls != nullptr) co_return Connection{tls, raw_protocol};
  co_return Connection{&transport, raw_protocol};
}

Task<absl::StatusOr<Connection>> ConnectToAny(EventLoop& loop,
                                              ProtocolFactory factory,
                                              std::string host, uint16_t port,
                                              ConnectOptions options,
                                              std::string server_name) {
  absl::StatusOr<std::vector<SocketAddress>> addresses = co_await Resolve(
      loop, host, port, ResolveOptions{.family = options.family});
  if (!addresses.ok()) co_return addresses.status();
  std::vector<std::string> errors;
  absl::Status first_error;
  for (const SocketAddress& address : *addresses) {
    absl::StatusOr<int> fd =
        co_await ConnectSocket(loop, address, options.local_address);
    if (fd.ok()) {
      co_return co_await StartTransport(loop, *fd, std::move(factory), options,
                                        server_name);
    }
    if (fd.status().code() == absl::StatusCode::kCancelled) {
      co_return fd.status();
    }
    if (first_error.ok()) first_error = fd.status();
    errors.push_back(std::string(fd.status().message()));
  }
  if (errors.size() == 1) co_return first_error;
  co_return absl::UnavailableError(absl::StrCat("cannot connect to ", host, ":",
                                                port, ": ",
                                                absl::StrJoin(errors, "; ")));
}

Task<absl::StatusOr<Connection>> WithConnectTimeout(
    EventLoop& loop, Task<absl::StatusOr<Connection>> attempt,
    std::string target, absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration())
    co_return co_await std::move(attempt);
  absl::StatusOr<Connection> connected =
      co_await WithTimeout(loop, std::move(attempt), timeout);
  if (connected.status().code() == absl::StatusCode::kDeadlineExceeded) {
    co_return absl::DeadlineExceededError(
        absl::StrCat("connect to ", target, " timed out after ",
                     absl::FormatDuration(timeout)));
  }
  co_return connected;
}

}  // namespace

Task<absl::StatusOr<Connection>> CreateConnection(EventLoop& loop,
                                                  ProtocolFactory factory,
                                                  std::string host,
                                                  uint16_t port,
                                                  ConnectOptions options) {
  std::string target = absl::StrCat(host, ":", port);
  // Copied now: the options' view need not outlive this call.
  std::string server_name(options.tls_options.server_name.empty()
                              ? std::string_view(host)
                              : options.tls_options.server_name);
  options.tls_options.server_name = {};
  const absl::Duration timeout = options.timeout;
  return WithConnectTimeout(
      loop,
      ConnectToAny(loop, std::move(factory), std::move(host), port,
                   std::move(options), std::move(server_name)),
      std::move(target), timeout);
}

Task<absl::StatusOr<Connection>> CreateUnixConnection(EventLoop& loop,
                                                      ProtocolFactory factory,
                                                      std::string path,
                                                      ConnectOptions options) {
  auto attempt = [](EventLoop& loop, ProtocolFactory factory,
                    std::string path, ConnectOptions options,
                    std::string server_name) -> Task<absl::StatusOr<Connection>> {
    absl::StatusOr<SocketAddress> address = SocketAddress::FromUnixPath(path);
    if (!address.ok()) co_return address.status();
    absl::StatusOr<int> fd =
        co_await ConnectSocket(loop, *address, options.local_address);
    if (!fd.ok()) co_return fd.status();
    co_return co_await StartTransport(loop, *fd, std::move(factory), options,
                                      server_name);
  };
  std::string target = absl::StrCat("unix:", path);
  std::string server_name(options.tls_options.server_name);
  options.tls_options.server_name = {};
  const absl::Duration timeout = options.timeout;
  return WithConnectTimeout(loop,
                            attempt(loop, std::move(factory), std::move(path),
                                    std::move(options), std::move(server_name)),
                            std::move(target), timeout);
}

}  // namespace sluice
