#include "transports/socket_transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <exception>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "transports/protocol_call.h"
#include "transports/socket_error.h"

namespace sluice {
namespace {

// iovecs per sendmsg; more chunks wait for the next writable event.
constexpr size_t kMaxIovecs = 64;

bool WouldBlock(int error) {
  return error == EAGAIN || error == EWOULDBLOCK || error == EINTR;
}

std::optional<SocketAddress> SockName(int fd) {
  sockaddr_storage storage;
  socklen_t length = sizeof(storage);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    return std::nullopt;
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&storage),
                                     length);
}

std::optional<SocketAddress> PeerName(int fd) {
  sockaddr_storage storage;
  socklen_t length = sizeof(storage);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    return std::nullopt;
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&storage),
                                     length);
}

// sendmsg rather than writev: writev has no MSG_NOSIGNAL.
ssize_t SendVector(int fd, const iovec* iov, size_t count) {
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(iov);
  message.msg_iovlen = count;
  return sendmsg(fd, &message, MSG_NOSIGNAL);
}

}  // namespace

SocketTransport& SocketTransport::Create(EventLoop& loop, int fd,
                                         std::unique_ptr<Protocol> protocol,
                                         std::optional<SocketAddress> peer) {
  auto* transport =
      new SocketTransport(loop, fd, std::move(protocol), std::move(peer));
  loop.Adopt(std::unique_ptr<LoopOwned>(transport));
  // Three steps, in asyncio's order: ConnectionMade, then reading (unless
  // the protocol paused it meanwhile); the creator's waiter comes after.
  loop.CallSoon([transport] {
    transport->connection_made_ = true;
    transport->Call("protocol ConnectionMade() failed", [transport] {
      transport->protocol_->ConnectionMade(*transport);
    });
  });
  loop.CallSoon([transport] { transport->StartReading(); });
  return *transport;
}

SocketTransport::SocketTransport(EventLoop& loop, int fd,
                                 std::unique_ptr<Protocol> protocol,
                                 std::optional<SocketAddress> peer)
    : loop_(loop),
      fd_(fd),
      protocol_(std::move(protocol)),
      buffered_(protocol_->AsBufferedProtocol()),
      peer_(peer.has_value() ? std::move(peer) : PeerName(fd)),
      local_(SockName(fd)),
      flow_(loop) {
  if (local_.has_value() && local_->is_ip()) {
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  // Registered without interest: no epoll_ctl until there is something to
  // wait for.
  absl::Status watched = loop_.WatchFd(fd_, *this, kFdNone);
  if (!watched.ok()) {
    // Only a programming error (the fd already watched) gets here.
    loop_.ReportError(LoopError{"cannot watch the transport's socket", watched});
    ForceClose(watched);
  }
}

SocketTransport::~SocketTransport() {
  if (fd_ >= 0) {
    loop_.UnwatchFd(fd_);
    close(fd_);
  }
}

std::string SocketTransport::Describe() const {
  return peer_.has_value() ? peer_->ToString() : absl::StrCat("fd ", fd_);
}

bool SocketTransport::Call(const char* what,
                           absl::FunctionRef<void()> callback) {
  absl::Status called = CallProtocol(loop_, what, Describe(), callback);
  if (called.ok()) return true;
  ForceClose(called);
  return false;
}

void SocketTransport::StartReading() {
  read_started_ = true;
  UpdateInterest();
}

void SocketTransport::UpdateInterest() {
  if (fd_ < 0) return;
  uint32_t wanted = kFdNone;
  if (reading_ && read_started_ && !closing_ && !read_eof_) {
    wanted |= kFdReadable;
  }
  if (!buffer_.empty()) wanted |= kFdWritable;
  if (wanted == interest_) return;
  absl::Status updated = loop_.SetFdInterest(fd_, wanted);
  if (!updated.ok()) {
    FatalError(updated);
    return;
  }
  interest_ = wanted;
}

void SocketTransport::OnFdReady(uint32_t ready) {
  if ((ready & kFdReadable) && !lost_) HandleReadable();
  if ((ready & kFdWritable) && !lost_) HandleWritable();
}

void SocketTransport::HandleReadable() {
  if (!reading_ || closing_) return;  // Paused by an earlier callback.
  char* into;
  size_t capacity;
  if (buffered_ != nullptr) {
    std::span<char> lent;
    if (!Call("protocol GetBuffer() failed",
                      [&] { lent = buffered_->GetBuffer(0); })) {
      return;
    }
    if (lent.empty()) {
      FatalError(absl::InternalError(absl::StrCat(
          "protocol GetBuffer() returned an empty buffer on ", Describe())));
      return;
    }
    into = lent.data();
    capacity = lent.size();
  } else {
    into = ThreadReceiveBuffer();
    capacity = kReceiveBufferSize;
  }
  ssize_t n = recv(fd_, into, capacity, 0);
  if (n > 0) {
    if (buffered_ != nullptr) {
      Call("protocol BufferUpdated() failed",
                   [&] { buffered_->BufferUpdated(static_cast<size_t>(n)); });
    } else {
      Call("protocol DataReceived() failed", [&] {
        protocol_->DataReceived(std::string_view(into, static_cast<size_t>(n)));
      });
    }
    return;
  }
  if (n < 0) {
    if (!WouldBlock(errno)) {
      FatalError(SocketError(errno, "receive from", Describe()));
    }
    return;
  }
  // EOF. Reading stops for good; the protocol decides about the rest.
  read_eof_ = true;
  UpdateInterest();
  bool keep_open = false;
  if (!Call("protocol EofReceived() failed",
                    [&] { keep_open = protocol_->EofReceived(); })) {
    return;
  }
  if (!keep_open) Close();
}

void SocketTransport::HandleWritable() {
  std::array<iovec, kMaxIovecs> iov;
  size_t count = buffer_.Peek(iov);
  if (count == 0) return;
  ssize_t n = SendVector(fd_, iov.data(), count);
  if (n < 0) {
    if (!WouldBlock(errno)) {
      FatalError(SocketError(errno, "send to", Describe()));
    }
    return;
  }
  buffer_.Consume(static_cast<size_t>(n));
  // ResumeWriting may write again, refilling the buffer.
  flow_.Update(buffer_.size(), *protocol_);
  if (!buffer_.empty() || lost_) return;
  UpdateInterest();
  if (closing_) {
    // Close() was waiting for this flush (asyncio calls connection_lost
    // right here, not on the next iteration).
    lost_ = true;
    CallConnectionLost(absl::OkStatus());
  } else if (eof_requested_) {
    shutdown(fd_, SHUT_WR);
  }
}

bool SocketTransport::DropWriteIfClosed(size_t size) {
  if (!closing_ && !eof_requested_) return false;
  if (!dropped_write_reported_) {
    dropped_write_reported_ = true;
    loop_.ReportError(LoopError{
        "write dropped",
        absl::FailedPreconditionError(absl::StrCat(
            "dropped a write of ", size, " bytes to ", Describe(), " after ",
            closing_ ? "Close/Abort" : "WriteEof",
            " (further dropped writes are not reported)"))});
  }
  return true;
}

void SocketTransport::Write(std::string_view data) {
  Writev(std::span<const std::string_view>(&data, 1));
}

void SocketTransport::Writev(std::span<const std::string_view> buffers) {
  size_t total = 0;
  for (std::string_view buffer : buffers) total += buffer.size();
  if (total == 0 || DropWriteIfClosed(total)) return;
  size_t sent = 0;
  if (buffer_.empty()) {
    // The fast path: straight from the caller's memory to the kernel.
    ssize_t n;
    if (buffers.size() == 1) {
      n = send(fd_, buffers[0].data(), buffers[0].size(), MSG_NOSIGNAL);
    } else {
      absl::InlinedVector<iovec, 8> iov;
      for (std::string_view buffer : buffers) {
        if (iov.size() == kMaxIovecs) break;
        if (buffer.empty()) continue;
        iov.push_back(iovec{const_cast<char*>(buffer.data()), buffer.size()});
      }
      n = SendVector(fd_, iov.data(), iov.size());
    }
    if (n < 0) {
      if (!WouldBlock(errno)) {
        FatalError(SocketError(errno, "send to", Describe()));
        return;
      }
      n = 0;
    }
    sent = static_cast<size_t>(n);
    if (sent == total) return;
  }
  BufferRemainder(buffers, sent);
}

void SocketTransport::BufferRemainder(std::span<const std::string_view> buffers,
                                      size_t sent) {
  for (std::string_view buffer : buffers) {
    if (sent >= buffer.size()) {
      sent -= buffer.size();
      continue;
    }
    buffer_.Append(buffer.substr(sent));
    sent = 0;
  }
  UpdateInterest();
  flow_.Update(buffer_.size(), *protocol_);
}

void SocketTransport::WriteEof() {
  if (closing_ || eof_requested_) return;
  eof_requested_ = true;
  if (buffer_.empty()) shutdown(fd_, SHUT_WR);
}

void SocketTransport::Close() {
  if (closing_) return;
  closing_ = true;
  UpdateInterest();  // Stops reading; keeps flushing.
  if (buffer_.empty()) {
    lost_ = true;
    loop_.CallSoon([this] { CallConnectionLost(absl::OkStatus()); });
  }
}

void SocketTransport::Abort() { ForceClose(absl::OkStatus()); }

void SocketTransport::FatalError(const absl::Status& status) {
  // Peer resets and the like are ordinary: reported to the protocol only.
  ForceClose(status);
}

void SocketTransport::ForceClose(const absl::Status& status) {
  if (lost_) return;
  lost_ = true;
  closing_ = true;
  buffer_.Clear();
  UpdateInterest();
  loop_.CallSoon([this, status] { CallConnectionLost(status); });
}

void SocketTransport::CallConnectionLost(const absl::Status& status) {
  if (connection_made_) {
    // Reported if it throws; the transport is going anyway.
    CallProtocol(loop_, "protocol ConnectionLost() failed", Describe(),
                 [&] { protocol_->ConnectionLost(status); })
        .IgnoreError();
  }
  // The socket closes after the protocol was told, as in asyncio.
  if (fd_ >= 0) {
    loop_.UnwatchFd(fd_);
    close(fd_);
    fd_ = -1;
  }
  if (closed_callback_) {
    auto callback = std::move(closed_callback_);
    closed_callback_ = nullptr;
    callback();
  }
  loop_.Release(this);
}

void SocketTransport::PauseReading() {
  if (closing_ || !reading_) return;
  reading_ = false;
  UpdateInterest();
}

void SocketTransport::ResumeReading() {
  if (closing_ || reading_) return;
  reading_ = true;
  UpdateInterest();
}

absl::Status SocketTransport::SetWriteBufferLimits(std::optional<size_t> high,
                                                   std::optional<size_t> low) {
  return flow_.SetLimitsAndCheck(high, low, buffer_.size(), *protocol_);
}

std::unique_ptr<Protocol> SocketTransport::SetProtocol(
    std::unique_ptr<Protocol> protocol) {
  std::swap(protocol_, protocol);
  buffered_ = protocol_->AsBufferedProtocol();
  return protocol;
}

}  // namespace sluice
