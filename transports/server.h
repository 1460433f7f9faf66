#ifndef SLUICE_TRANSPORTS_SERVER_H_
#define SLUICE_TRANSPORTS_SERVER_H_

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/task.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_transport.h"

namespace sluice {

class SocketTransport;

struct ServerOptions {
  // listen()'s backlog. The default is the kernel's maximum, as nginx's and
  // Envoy's: Linux caps it at net.core.somaxconn (4096 by default), and a
  // burst of connects beyond the backlog is dropped or reset. (asyncio's 100
  // reset 5-15% of a burst of 1,000 connects.)
  int backlog = SOMAXCONN;
  bool reuse_address = true;
  // SO_REUSEPORT: several servers share the port, the kernel balances.
  bool reuse_port = false;
  // How long accepting pauses when the process or system is out of
  // descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), instead of
  // spinning on a listening socket that stays readable.
  absl::Duration accept_retry_delay = absl::Seconds(1);
  // TLS on every accepted connection, with this server context (asyncio's
  // ssl=): each gets a TlsTransport between its socket and its protocol,
  // which hears of the connection once the handshake is done and never of
  // one whose handshake failed (garbage, a plaintext client, a certificate
  // that did not verify: that connection closes, the server serves on).
  // The context is copied when the server is created.
  const TlsContext* tls = nullptr;
  // The handshake and shutdown timeouts (server_name is for clients).
  TlsOptions tls_options = {};
};
// Options are often braced in a co_await expression, where GCC 12 copies
// them bitwise and destroys both copies: nothing in them may own anything.
static_assert(std::is_trivially_destructible_v<ServerOptions>);

// A listening server (asyncio.Server). It owns its listening sockets, not
// its connections: those belong to the loop and outlive Close() and the
// Server itself. Loop-affine.
class Server {
 public:
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound addresses, with the ports the kernel chose for port 0.
  std::span<const SocketAddress> addresses() const { return addresses_; }
  bool IsServing() const { return !listeners_.empty(); }
  // Connections accepted and not yet lost.
  size_t active_connections() const { return connections_.size(); }

  // Stops listening and closes the listening sockets (and a Unix server's
  // socket file). Existing connections stay open. Idempotent.
  void Close();
  // Completes with OK once the server is closed and its last connection is
  // lost (asyncio 3.12.1+ semantics).
  Future<absl::Status> WaitClosed();
  // Close() / Abort() every connection still open. Close goes to the top of
  // each connection's stack, so that a layer (TLS) closes as it would for
  // its protocol (close_notify after what is buffered).
  void CloseClients();
  void AbortClients();

  // Stops listening, closes every connection gracefully (CloseClients) and
  // aborts those still open `grace` later: a peer that never reads would
  // hold a graceful close forever. Completes once the last connection is
  // lost: OK, or kDeadlineExceeded saying how many were aborted. A second
  // call can only bring the deadline forward: Shutdown(absl::ZeroDuration())
  // aborts at once (a second Ctrl-C).
  Future<absl::Status> Shutdown(absl::Duration grace);

 private:
  class Listener;
  friend Task<absl::StatusOr<std::unique_ptr<Server>>> CreateServer(
      EventLoop&, ProtocolFactory, std::string, uint16_t, ServerOptions);
  friend absl::StatusOr<std::unique_ptr<Server>> CreateUnixServer(
      EventLoop&, ProtocolFactory, std::string, ServerOptions);

  Server(EventLoop& loop, ProtocolFactory factory, ServerOptions options);

  absl::Status Listen(const SocketAddress& address);
  void Accept(int listen_fd);
  void PauseAccepting();
  void ResumeAccepting();
  void ConnectionClosed(SocketTransport* transport);
  void MaybeFinishWaiters();
  void AbortAtShutdownDeadline();

  EventLoop& loop_;
  ProtocolFactory factory_;
  ServerOptions options_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<SocketAddress> addresses_;
  absl::flat_hash_set<SocketTransport*> connections_;
  std::vector<Future<absl::Status>> waiters_;
  std::vector<Future<absl::Status>> shutdown_waiters_;
  std::optional<MonotonicTime> shutdown_deadline_;
  Handle shutdown_abort_;
  size_t aborted_at_shutdown_ = 0;
  std::string unix_path_;  // Removed on Close.
  std::optional<TlsContext> tls_;  // options_.tls's, copied.
  Handle accept_retry_;
  bool accepting_paused_ = false;
};

// Listens on `host`:`port` (asyncio's create_server). An empty host listens
// on every interface, IPv4 and IPv6 (separate sockets, IPV6_V6ONLY); a
// name listens on every address it resolves to. Port 0 picks a free port,
// the same one for every address. Each accepted connection gets a protocol
// from `factory` and a SocketTransport. Bind errors name the address.
Task<absl::StatusOr<std::unique_ptr<Server>>> CreateServer(
    EventLoop& loop, ProtocolFactory factory, std::string host, uint16_t port,
    ServerOptions options = {});

// Listens on a Unix-domain socket at `path` ('@name': abstract). A stale
// socket file (no server answers on it) is replaced; a live one is
// kAlreadyExists.
absl::StatusOr<std::unique_ptr<Server>> CreateUnixServer(
    EventLoop& loop, ProtocolFactory factory, std::string path,
    ServerOptions options = {});

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_SERVER_H_
