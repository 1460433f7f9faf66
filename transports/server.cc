#include "transports/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "transports/protocol_call.h"
#include "transports/resolver.h"
#include "transports/socket_error.h"
#include "transports/socket_transport.h"

namespace sluice {
namespace {

absl::Status ValidateTls(const ServerOptions& options) {
  if (options.tls == nullptr) return absl::OkStatus();
  if (!options.tls->is_server()) {
    return absl::InvalidArgumentError(
        "ServerOptions::tls needs a server context (TlsContext::CreateServer)");
  }
  return TlsTransport::ValidateOptions(*options.tls, options.tls_options);
}

}  // namespace

// One listening socket.
class Server::Listener final : public FdHandler {
 public:
  Listener(Server& server, int fd) : server_(server), fd_(fd) {}
  ~Listener() {
    server_.loop_.UnwatchFd(fd_);
    close(fd_);
  }
  void OnFdReady(uint32_t) override { server_.Accept(fd_); }
  int fd() const { return fd_; }

 private:
  Server& server_;
  const int fd_;
};

Server::Server(EventLoop& loop, ProtocolFactory factory, ServerOptions options)
    : loop_(loop), factory_(std::move(factory)), options_(options) {
  if (options_.tls != nullptr) tls_ = *options_.tls;
  options_.tls = nullptr;
  options_.tls_options.server_name = {};
}

Server::~Server() {
  Close();
  shutdown_abort_.Cancel();
  // Connections outlive the server; they must not call back into it.
  for (SocketTransport* transport : connections_) {
    transport->SetClosedCallback(nullptr);
  }
  connections_.clear();
  for (Future<absl::Status>& waiter : waiters_) {
    waiter.SetResult(absl::OkStatus());
  }
}

absl::Status Server::Listen(const SocketAddress& address) {
  int fd =
      socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return SocketError(errno, "socket for", address.ToString());
  int one = 1;
  if (address.is_ip() && options_.reuse_address) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  }
  if (options_.reuse_port &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    absl::Status error =
        SocketError(errno, "SO_REUSEPORT on", address.ToString());
    close(fd);
    return error;
  }
  if (address.family() == AF_INET6) {
    // Dual stack is two sockets, as in asyncio.
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (bind(fd, address.data(), address.length()) != 0) {
    absl::Status error = SocketError(errno, "bind on", address.ToString());
    close(fd);
    return error;
  }
  if (listen(fd, options_.backlog) != 0) {
    absl::Status error = SocketError(errno, "listen on", address.ToString());
    close(fd);
    return error;
  }
  auto listener = std::make_unique<Listener>(*this, fd);
  absl::Status watched = loop_.WatchFd(fd, *listener, kFdReadable);
  if (!watched.ok()) return watched;  // ~Listener closes the socket.
  listeners_.push_back(std::move(listener));
  // With the port the kernel chose for port 0.
  addresses_.push_back(SocketAddress::LocalOf(fd).value_or(address));
  return absl::OkStatus();
}

// Accepts per readiness event: a burst of connects waits in the backlog for
// later iterations instead of holding up the connections already served.
constexpr int kMaxAcceptsPerEvent = 128;

void Server::Accept(int listen_fd) {
  for (int i = 0; i < kMaxAcceptsPerEvent; ++i) {
    sockaddr_storage peer;
    socklen_t length = sizeof(peer);
    int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &length,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) return;
      if (error == EINTR || error == ECONNABORTED || error == EPROTO) continue;
      absl::Status status = SocketError(
          error, "accept on",
          addresses_.empty() ? std::string() : addresses_.front().ToString());
      if (error == EMFILE || error == ENFILE || error == ENOBUFS ||
          error == ENOMEM) {
        loop_.ReportError(LoopError{
            absl::StrCat("accept out of system resources; retrying in ",
                         absl::FormatDuration(options_.accept_retry_delay)),
            status});
        PauseAccepting();
      } else {
        loop_.ReportError(LoopError{"accept failed", status});
      }
      return;
    }
    absl::StatusOr<std::unique_ptr<Protocol>> protocol = MakeProtocol(factory_);
    if (!protocol.ok()) {
      loop_.ReportError(
          LoopError{"protocol factory failed", protocol.status()});
      close(fd);
      continue;
    }
    if (tls_.has_value()) {
      // The options were validated by CreateServer: Create cannot fail.
      protocol = TlsTransport::Create(loop_, *tls_,
                                      options_.tls_options,
                                      *std::move(protocol));
      if (!protocol.ok()) {
        loop_.ReportError(LoopError{"TLS layer failed", protocol.status()});
        close(fd);
        continue;
      }
    }
    SocketTransport& transport = SocketTransport::Create(
        loop_, fd, *std::move(protocol),
        SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&peer),
                                    length));
    connections_.insert(&transport);
    transport.SetClosedCallback(
        [this, &transport] { ConnectionClosed(&transport); });
  }
}

void Server::PauseAccepting() {
  if (accepting_paused_) return;
  accepting_paused_ = true;
  for (auto& listener : listeners_) {
    loop_.SetFdInterest(listener->fd(), kFdNone).IgnoreError();
  }
  accept_retry_ = loop_.CallLater(options_.accept_retry_delay,
                                  [this] { ResumeAccepting(); });
}

void Server::ResumeAccepting() {
  accepting_paused_ = false;
  for (auto& listener : listeners_) {
    loop_.SetFdInterest(listener->fd(), kFdReadable).IgnoreError();
  }
}

void Server::ConnectionClosed(SocketTransport* transport) {
  connections_.erase(transport);
  MaybeFinishWaiters();
}

void Server::Close() {
  accept_retry_.Cancel();
  listeners_.clear();  // Unwatches and closes the sockets.
  if (!unix_path_.empty()) {
    unlink(unix_path_.c_str());
    unix_path_.clear();
  }
  MaybeFinishWaiters();
}

Future<absl::Status> Server::WaitClosed() {
  Future<absl::Status> waiter(loop_);
  waiters_.push_back(waiter);
  MaybeFinishWaiters();
  return waiter;
}

void Server::MaybeFinishWaiters() {
  if (IsServing() || !connections_.empty()) return;
  shutdown_abort_.Cancel();
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (Future<absl::Status>& waiter : waiters) {
    waiter.SetResult(absl::OkStatus());
  }
  auto shutdown_waiters = std::move(shutdown_waiters_);
  shutdown_waiters_.clear();
  const absl::Status shut_down =
      aborted_at_shutdown_ == 0
          ? absl::OkStatus()
          : absl::DeadlineExceededError(absl::StrCat(
                "shutdown aborted ", aborted_at_shutdown_,
                " connection(s) still open at its deadline"));
  for (Future<absl::Status>& waiter : shutdown_waiters) {
    waiter.SetResult(shut_down);
  }
}

Future<absl::Status> Server::Shutdown(absl::Duration grace) {
  Future<absl::Status> done(loop_);
  shutdown_waiters_.push_back(done);
  const bool first = !shutdown_deadline_.has_value();
  const MonotonicTime deadline = AddDuration(loop_.Time(), grace);
  if (first || deadline < *shutdown_deadline_) {
    shutdown_deadline_ = deadline;
    shutdown_abort_.Cancel();
    shutdown_abort_ =
        loop_.CallAt(deadline, [this] { AbortAtShutdownDeadline(); });
  }
  if (first) CloseClients();
  Close();  // Finishes `done` if no connection is open.
  return done;
}

void Server::AbortAtShutdownDeadline() {
  aborted_at_shutdown_ += connections_.size();
  AbortClients();
}

namespace {

// The top of a connection's stack: a layer (TLS) closes as its protocol
// would, after its own flush and close_notify, and then closes below.
Transport& TopOfStack(Transport& root) {
  Transport* top = &root;
  while (auto* layer = dynamic_cast<Transport*>(&top->GetProtocol())) {
    top = layer;
  }
  return *top;
}

}  // namespace

void Server::CloseClients() {
  // Copied: closing may finish a connection and edit the set.
  std::vector<SocketTransport*> open(connections_.begin(), connections_.end());
  for (SocketTransport* transport : open) TopOfStack(*transport).Close();
}

void Server::AbortClients() {
  std::vector<SocketTransport*> open(connections_.begin(), connections_.end());
  for (SocketTransport* transport : open) transport->Abort();
}

Task<absl::StatusOr<std::unique_ptr<Server>>> CreateServer(
    EventLoop& loop, ProtocolFactory factory, std::string host, uint16_t port,
    ServerOptions options) {
  if (absl::Status valid = ValidateTls(options); !valid.ok()) co_return valid;
  // Before the first suspension: it copies what options.tls points to.
  std::unique_ptr<Server> server(new Server(loop, std::move(factory), options));
  absl::StatusOr<std::vector<SocketAddress>> addresses =
      co_await Resolve(loop, host, port, ResolveOptions{.passive = true});
  if (!addresses.ok()) co_return addresses.status();
  for (const SocketAddress& address : *addresses) {
    SocketAddress target = address;
    // Port 0: every address gets the port the kernel chose for the first.
    if (port == 0 && !server->addresses_.empty()) {
      absl::StatusOr<SocketAddress> same_port = SocketAddress::FromIp(
          target.host(), server->addresses_.front().port());
      if (same_port.ok()) target = *same_port;
    }
    absl::Status listening = server->Listen(target);
    if (!listening.ok()) co_return listening;  // ~Server closes the others.
  }
  co_return server;
}

absl::StatusOr<std::unique_ptr<Server>> CreateUnixServer(
    EventLoop& loop, ProtocolFactory factory, std::string path,
    ServerOptions options) {
  if (absl::Status valid = ValidateTls(options); !valid.ok()) return valid;
  absl::StatusOr<SocketAddress> address = SocketAddress::FromUnixPath(path);
  if (!address.ok()) return address.status();
  struct stat info;
  if (path[0] != '@' && stat(path.c_str(), &info) == 0 &&
      S_ISSOCK(info.st_mode)) {
    // A socket file: stale only if nothing listens there (ECONNREFUSED).
    // The probe does not block: a live server with a full backlog answers
    // EAGAIN at once.
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) return SocketError(errno, "socket for", "unix:" + path);
    const int probed =
        connect(probe, address->data(), address->length()) == 0 ? 0 : errno;
    close(probe);
    if (probed == 0 || probed == EAGAIN || probed == EINPROGRESS) {
      return absl::AlreadyExistsError(
          absl::StrCat("a server is already listening on unix:", path));
    }
    // Otherwise (EACCES, say) the file stays, and bind reports the problem.
    if (probed == ECONNREFUSED) unlink(path.c_str());
  }
  std::unique_ptr<Server> server(new Server(loop, std::move(factory), options));
  absl::Status listening = server->Listen(*address);
  if (!listening.ok()) return listening;
  if (path[0] != '@') server->unix_path_ = path;
  return server;
}

}  // namespace sluice
