#include "transports/datagram_transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "framework/future.h"
#include "transports/protocol_call.h"
#include "transports/resolver.h"
#include "transports/socket_error.h"

namespace sluice {
namespace {

// Datagrams read per readiness event before other fds get their turn.
constexpr int kReadBatch = 16;

}  // namespace

DatagramSocketTransport& DatagramSocketTransport::Create(
    EventLoop& loop, int fd, std::unique_ptr<DatagramProtocol> protocol,
    std::optional<SocketAddress> peer) {
  return AdoptAndStart(loop, new DatagramSocketTransport(
                                 loop, fd, std::move(protocol), std::move(peer)));
}

void DatagramSocketTransport::StartReading() {
  read_started_ = true;
  UpdateInterest();
}

DatagramSocketTransport::DatagramSocketTransport(
    EventLoop& loop, int fd, std::unique_ptr<DatagramProtocol> protocol,
    std::optional<SocketAddress> peer)
    : TransportCore(loop, std::move(protocol)),
      fd_(fd),
      peer_(std::move(peer)),
      local_(SocketAddress::LocalOf(fd)) {
  absl::Status watched = loop_.WatchFd(fd_, *this, kFdNone);
  if (watched.ok()) {
    watched_ = true;
  } else {
    loop_.ReportError(LoopError{"cannot watch the endpoint's socket", watched});
    FailConstruction(watched);
  }
}

DatagramSocketTransport::~DatagramSocketTransport() {
  report_errors_.Cancel();
  RemoveOwnFile();  // Also when the loop ends with the endpoint open.
  if (fd_ >= 0) {
    if (watched_) loop_.UnwatchFd(fd_);
    close(fd_);
  }
}

std::string DatagramSocketTransport::Describe() const {
  if (peer_.has_value()) return peer_->ToString();
  return local_.has_value() ? local_->ToString() : "datagram endpoint";
}

void DatagramSocketTransport::UpdateInterest() {
  if (fd_ < 0 || !watched_) return;
  uint32_t wanted = kFdNone;
  if (read_started_ && !closing_) wanted |= kFdReadable;
  if (!queue_.empty()) wanted |= kFdWritable;
  if (wanted == interest_) return;
  absl::Status updated = loop_.SetFdInterest(fd_, wanted);
  if (!updated.ok()) {
    ForceClose(updated);
    return;
  }
  interest_ = wanted;
}

void DatagramSocketTransport::OnFdReady(uint32_t ready) {
  if ((ready & kFdReadable) && !closing_) HandleReadable();
  if ((ready & kFdWritable) && !lost_) HandleWritable();
}

void DatagramSocketTransport::HandleReadable() {
  char* buffer = ThreadReceiveBuffer();
  for (int i = 0; i < kReadBatch && !closing_; ++i) {
    sockaddr_storage from;
    socklen_t length = sizeof(from);
    ssize_t n = recvfrom(fd_, buffer, kReceiveBufferSize, 0,
                         reinterpret_cast<sockaddr*>(&from), &length);
    if (n < 0) {
      int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) return;
      if (error == EINTR) continue;
      // E.g. ECONNREFUSED: an ICMP error for an earlier send.
      if (!Call("protocol ErrorReceived() failed", [&] {
            protocol_->ErrorReceived(
                SocketError(error, "receive on", Describe()));
          })) {
        return;
      }
      continue;
    }
    SocketAddress sender =
        SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&from), length);
    if (!Call("protocol DatagramReceived() failed", [&] {
          protocol_->DatagramReceived(
              std::string_view(buffer, static_cast<size_t>(n)), sender);
        })) {
      return;
    }
  }
}

int DatagramSocketTransport::SendOne(std::string_view data,
                                     const std::optional<SocketAddress>& to) {
  ssize_t n = to.has_value()
                  ? sendto(fd_, data.data(), data.size(), MSG_NOSIGNAL,
                           to->data(), to->length())
                  : send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
  return n < 0 ? errno : 0;
}

void DatagramSocketTransport::ReportErrorReceived(absl::Status error) {
  // On a later iteration, like every other callback a call into the
  // transport causes; cancelled if the endpoint goes first.
  pending_errors_.push_back(std::move(error));
  if (pending_errors_.size() > 1) return;
  report_errors_ = loop_.CallSoon([this] {
    std::deque<absl::Status> errors = std::move(pending_errors_);
    pending_errors_.clear();
    for (const absl::Status& pending : errors) {
      if (lost_) return;
      Call("protocol ErrorReceived() failed",
           [&] { protocol_->ErrorReceived(pending); });
    }
  });
}

void DatagramSocketTransport::SendTo(std::string_view data,
                                     std::optional<SocketAddress> to) {
  if (DropWriteIfClosed(data.size())) return;
  if (peer_.has_value()) {
    if (to.has_value() && !(*to == *peer_)) {
      ReportErrorReceived(absl::InvalidArgumentError(
          absl::StrCat("this endpoint is connected to ", peer_->ToString(),
                       "; cannot send to ", to->ToString())));
      return;
    }
    to.reset();  // Connected: plain send().
  } else if (!to.has_value()) {
    ReportErrorReceived(absl::InvalidArgumentError(
        "SendTo without an address on an unconnected endpoint"));
    return;
  }
  if (queue_.empty()) {
    int error = SendOne(data, to);
    if (error == 0) return;
    if (error != EAGAIN && error != EWOULDBLOCK && error != ENOBUFS &&
        error != EINTR) {
      ReportErrorReceived(SocketError(
          error, "send to",
          to.has_value() ? to->ToString()
                         : (peer_.has_value() ? peer_->ToString() : "")));
      return;
    }
  }
  queue_.push_back(Queued{std::string(data), std::move(to)});
  UpdateInterest();
  buffer_.AddOutside(data.size());  // May pause the protocol.
}

void DatagramSocketTransport::HandleWritable() {
  while (!queue_.empty()) {
    Queued& next = queue_.front();
    int error = SendOne(next.data, next.to);
    if (error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS ||
        error == EINTR) {
      break;
    }
    if (error != 0) {
      ReportErrorReceived(SocketError(
          error, "send to", next.to.has_value() ? next.to->ToString() : ""));
    }
    const size_t sent = next.data.size();
    queue_.pop_front();
    buffer_.RemoveOutside(sent);  // May resume the protocol.
    if (lost_) return;
  }
  if (!queue_.empty() || lost_) return;
  UpdateInterest();
  if (closing_) FinishClose(/*now=*/true);
}

void DatagramSocketTransport::Close() {
  if (closing_) return;
  closing_ = true;
  UpdateInterest();
  if (queue_.empty()) FinishClose(/*now=*/false);
}

void DatagramSocketTransport::Abort() { ForceClose(absl::OkStatus()); }

void DatagramSocketTransport::OnForceClose(const absl::Status& /*status*/) {
  queue_.clear();
  UpdateInterest();
}

void DatagramSocketTransport::RemoveOwnFile() {
  if (!owned_path_.has_value()) return;
  // Only if the file is still ours: another endpoint may have replaced it.
  struct stat info;
  if (stat(owned_path_->path.c_str(), &info) == 0 &&
      info.st_dev == owned_path_->device && info.st_ino == owned_path_->inode) {
    unlink(owned_path_->path.c_str());
  }
  owned_path_.reset();
}

void DatagramSocketTransport::RemoveFileOnClose(std::string path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return;
  owned_path_ = OwnedFile{std::move(path), info.st_dev, info.st_ino};
}

void DatagramSocketTransport::OnConnectionLost() {
  if (fd_ >= 0) {
    if (watched_) loop_.UnwatchFd(fd_);
    close(fd_);
    fd_ = -1;
  }
  report_errors_.Cancel();
  pending_errors_.clear();
  RemoveOwnFile();
  ReleaseFromLoop(this);
}

namespace {

Task<absl::StatusOr<std::optional<SocketAddress>>> ResolveOne(
    EventLoop& loop, std::optional<HostPort> where, int family, bool passive) {
  if (!where.has_value()) co_return std::optional<SocketAddress>();
  absl::StatusOr<std::vector<SocketAddress>> addresses =
      co_await Resolve(loop, where->host, where->port,
                       ResolveOptions{.family = family, .passive = passive});
  if (!addresses.ok()) co_return addresses.status();
  co_return std::optional<SocketAddress>(addresses->front());
}

// The common end of creating an endpoint: the protocol, the transport, and
// the wait for ConnectionMade. A transport the protocol closed in there is
// not handed out: by the time the creator resumes, it may be gone.
Task<absl::StatusOr<DatagramEndpoint>> StartEndpoint(
    EventLoop& loop, DatagramProtocolFactory& factory, int fd,
    std::optional<SocketAddress> remote, std::string owned_path) {
  absl::StatusOr<std::unique_ptr<DatagramProtocol>> made_protocol =
      MakeProtocol(factory);
  if (!made_protocol.ok()) {
    close(fd);
    if (!owned_path.empty()) unlink(owned_path.c_str());
    co_return made_protocol.status();
  }
  std::unique_ptr<DatagramProtocol> protocol = *std::move(made_protocol);
  DatagramProtocol* raw_protocol = protocol.get();
  DatagramSocketTransport& transport = DatagramSocketTransport::Create(
      loop, fd, std::move(protocol), std::move(remote));
  if (!owned_path.empty()) transport.RemoveFileOnClose(std::move(owned_path));
  Future<absl::Status> made(loop);
  loop.CallSoon([made, &transport]() mutable {
    made.SetResult(transport.IsClosing()
                       ? absl::UnavailableError(
                             "the endpoint was closed during ConnectionMade")
                       : absl::OkStatus());
  });
  absl::Status waited = co_await made;
  if (waited.code() == absl::StatusCode::kCancelled) transport.Abort();
  if (!waited.ok()) co_return waited;
  co_return DatagramEndpoint{&transport, raw_protocol};
}

}  // namespace

Task<absl::StatusOr<DatagramEndpoint>> CreateDatagramEndpoint(
    EventLoop& loop, DatagramProtocolFactory factory,
    DatagramEndpointOptions options) {
  int family = options.family;
  auto remote = co_await ResolveOne(loop, options.remote, family, false);
  if (!remote.ok()) co_return remote.status();
  if (remote->has_value() && family == AF_UNSPEC) family = (*remote)->family();
  auto local = co_await ResolveOne(loop, options.local, family, true);
  if (!local.ok()) co_return local.status();
  if (local->has_value() && family == AF_UNSPEC) family = (*local)->family();
  if (family == AF_UNSPEC) {
    co_return absl::InvalidArgumentError(
        "a datagram endpoint needs a local or remote address, or a family");
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) co_return SocketError(errno, "datagram socket");
  absl::Cleanup close_fd = [&fd] {
    if (fd >= 0) close(fd);
  };
  int one = 1;
  if (options.reuse_port &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    co_return SocketError(errno, "SO_REUSEPORT");
  }
  if (options.allow_broadcast &&
      setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) != 0) {
    co_return SocketError(errno, "SO_BROADCAST");
  }
  if (local->has_value() &&
      bind(fd, (*local)->data(), (*local)->length()) != 0) {
    co_return SocketError(errno, "bind on", (*local)->ToString());
  }
  if (remote->has_value() &&
      connect(fd, (*remote)->data(), (*remote)->length()) != 0) {
    co_return SocketError(errno, "connect to", (*remote)->ToString());
  }
  co_return co_await StartEndpoint(loop, factory, std::exchange(fd, -1),
                                   *remote, std::string());
}

Task<absl::StatusOr<DatagramEndpoint>> CreateUnixDatagramEndpoint(
    EventLoop& loop, DatagramProtocolFactory factory,
    UnixDatagramEndpointOptions options) {
  std::optional<SocketAddress> local;
  std::optional<SocketAddress> remote;
  if (options.local_path.has_value()) {
    absl::StatusOr<SocketAddress> address =
        SocketAddress::FromUnixPath(*options.local_path);
    if (!address.ok()) co_return address.status();
    local = *address;
  }
  if (options.remote_path.has_value()) {
    absl::StatusOr<SocketAddress> address =
        SocketAddress::FromUnixPath(*options.remote_path);
    if (!address.ok()) co_return address.status();
    remote = *address;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) co_return SocketError(errno, "unix datagram socket");
  absl::Cleanup close_fd = [&fd] {
    if (fd >= 0) close(fd);
  };
  std::string owned_path;
  if (local.has_value()) {
    const std::string& path = *options.local_path;
    struct stat info;
    if (path[0] != '@' && stat(path.c_str(), &info) == 0 &&
        S_ISSOCK(info.st_mode)) {
      unlink(path.c_str());  // asyncio replaces a socket file, too.
    }
    if (bind(fd, local->data(), local->length()) != 0) {
      co_return SocketError(errno, "bind on", local->ToString());
    }
    if (path[0] != '@') owned_path = path;
  }
  absl::Cleanup remove_file = [&owned_path] {
    if (!owned_path.empty()) unlink(owned_path.c_str());
  };
  if (remote.has_value() &&
      connect(fd, remote->data(), remote->length()) != 0) {
    co_return SocketError(errno, "connect to", remote->ToString());
  }
  co_return co_await StartEndpoint(loop, factory, std::exchange(fd, -1), remote,
                                   std::exchange(owned_path, std::string()));
}

}  // namespace sluice
