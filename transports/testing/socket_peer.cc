#include "transports/testing/socket_peer.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace sluice::transport_testing {
namespace {

constexpr size_t kReadSize = 64 * 1024;

std::optional<SocketAddress> Name(int fd, bool peer) {
  sockaddr_storage storage;
  socklen_t length = sizeof(storage);
  auto* address = reinterpret_cast<sockaddr*>(&storage);
  if ((peer ? getpeername(fd, address, &length)
            : getsockname(fd, address, &length)) != 0) {
    return std::nullopt;
  }
  return SocketAddress::FromSockaddr(address, length);
}

}  // namespace

SocketPeer::SocketPeer(EventLoop& loop, int fd)
    : loop_(loop), fd_(fd), read_buffer_(kReadSize) {
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  local_ = Name(fd_, /*peer=*/false);
  remote_ = Name(fd_, /*peer=*/true);
  is_tcp_ = local_.has_value() && local_->is_ip();
  StartReading();
}

SocketPeer::~SocketPeer() { CloseSocket(); }

void SocketPeer::CloseSocket() {
  if (fd_ < 0) return;
  if (reading_) loop_.RemoveReader(fd_);
  if (writing_) loop_.RemoveWriter(fd_);
  reading_ = false;
  writing_ = false;
  close(fd_);
  fd_ = -1;
}

void SocketPeer::Fail(int error, const char* operation) {
  if (error_.ok()) {
    error_ = absl::ErrnoToStatus(error, absl::StrCat("peer ", operation));
  }
}

void SocketPeer::StartReading() {
  if (reading_ || fd_ < 0 || eof_ || !error_.ok()) return;
  absl::Status added = loop_.AddReader(fd_, [this] { HandleReadable(); });
  if (!added.ok()) {
    error_ = added;
    return;
  }
  reading_ = true;
}

void SocketPeer::StopReading() {
  if (!reading_) return;
  loop_.RemoveReader(fd_);
  reading_ = false;
}

void SocketPeer::HandleReadable() {
  while (reading_) {
    ssize_t n = recv(fd_, read_buffer_.data(), read_buffer_.size(), 0);
    if (n > 0) {
      received_.append(read_buffer_.data(), static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n == 0) {
      eof_ = true;
    } else {
      Fail(errno, "recv");
    }
    StopReading();
  }
}

void SocketPeer::Write(std::string_view data) {
  if (fd_ < 0) return;
  pending_.append(data);
  Flush();
}

void SocketPeer::ShutdownWrite() {
  if (fd_ < 0) return;
  shutdown_pending_ = true;
  Flush();
}

void SocketPeer::Flush() {
  while (pending_offset_ < pending_.size()) {
    ssize_t n = send(fd_, pending_.data() + pending_offset_,
                     pending_.size() - pending_offset_, MSG_NOSIGNAL);
    if (n >= 0) {
      pending_offset_ += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!writing_) {
        absl::Status added = loop_.AddWriter(fd_, [this] { Flush(); });
        if (!added.ok()) {
          error_ = added;
          return;
        }
        writing_ = true;
      }
      return;
    }
    Fail(errno, "send");
    pending_offset_ = pending_.size();
  }
  pending_.clear();
  pending_offset_ = 0;
  if (writing_) {
    loop_.RemoveWriter(fd_);
    writing_ = false;
  }
  if (shutdown_pending_) {
    shutdown_pending_ = false;
    shutdown(fd_, SHUT_WR);
  }
}

bool AllSentAcknowledged(int fd) {
  int unacknowledged = 0;
  return ioctl(fd, SIOCOUTQ, &unacknowledged) == 0 && unacknowledged == 0;
}

bool SocketPeer::AllWritesDelivered() {
  if (pending_offset_ < pending_.size()) return false;
  if (!is_tcp_ || fd_ < 0) return true;
  return AllSentAcknowledged(fd_);
}

void SocketPeer::Close() { CloseSocket(); }

void SocketPeer::Reset() {
  if (fd_ < 0) return;
  linger abortive{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
  CloseSocket();
}

}  // namespace sluice::transport_testing
