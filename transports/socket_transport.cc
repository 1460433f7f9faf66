#include "transports/socket_transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

// SendFile's copy fallback reads the file in blocks of this size.
constexpr size_t kFileBlock = 64 * 1024;

bool WouldBlock(int error) {
  return error == EAGAIN || error == EWOULDBLOCK || error == EINTR;
}

// sendmsg rather than writev: writev has no MSG_NOSIGNAL.
ssize_t SendVector(int fd, const iovec* iov, size_t count) {
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(iov);
  message.msg_iovlen = count;
  return sendmsg(fd, &message, MSG_NOSIGNAL);
}

// sendfile(2) has no MSG_NOSIGNAL: a send to a closed peer raises SIGPIPE,
// whose default action ends the process. The signal is blocked in this
// thread around the call and, if the call raised it, taken back before the
// mask is restored (the technique of libcurl and OpenSSL's s_server).
ssize_t SendFileWithoutSigpipe(int socket_fd, int file_fd, off_t* offset,
                               size_t count) {
  sigset_t sigpipe;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &sigpipe, &previous);
  const bool was_pending_already = [&] {
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGPIPE) == 1;
  }();
  ssize_t n = sendfile(socket_fd, file_fd, offset, count);
  const int error = errno;
  // Whatever the result: a call that sent some rounds before the peer went
  // returns their count, yet its failing round raised the signal.
  if (!was_pending_already) {
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) == 1) {
      const timespec no_wait{0, 0};
      while (sigtimedwait(&sigpipe, nullptr, &no_wait) < 0 && errno == EINTR) {
      }
    }
  }
  if (!sigismember(&previous, SIGPIPE)) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
  errno = error;
  return n;
}

}  // namespace

SocketTransport& SocketTransport::Create(EventLoop& loop, int fd,
                                         std::unique_ptr<Protocol> protocol,
                                         std::optional<SocketAddress> peer) {
  return AdoptAndStart(
      loop, new SocketTransport(loop, fd, std::move(protocol), std::move(peer)));
}

SocketTransport::SocketTransport(EventLoop& loop, int fd,
                                 std::unique_ptr<Protocol> protocol,
                                 std::optional<SocketAddress> peer)
    : StreamTransportCore(loop, std::move(protocol)),
      fd_(fd),
      peer_(peer.has_value() ? std::move(peer) : SocketAddress::PeerOf(fd)),
      local_(SocketAddress::LocalOf(fd)) {
  if (local_.has_value() && local_->is_ip()) {
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  // Registered without interest: no epoll_ctl until there is something to
  // wait for.
  absl::Status watched = loop_.WatchFd(fd_, *this, kFdNone);
  if (watched.ok()) {
    watched_ = true;
  } else {
    // Only a programming error (the fd already watched, by someone else)
    // gets here: ConnectionMade, then ConnectionLost with the error.
    loop_.ReportError(
        LoopError{"cannot watch the transport's socket", watched});
    FailConstruction(watched);
  }
}

SocketTransport::~SocketTransport() {
  if (fd_ >= 0) {
    if (watched_) loop_.UnwatchFd(fd_);
    close(fd_);
  }
}

std::string SocketTransport::Describe() const {
  return peer_.has_value() ? peer_->ToString() : absl::StrCat("fd ", fd_);
}

void SocketTransport::StartReading() {
  read_started_ = true;
  UpdateInterest();
}

void SocketTransport::UpdateInterest() {
  if (fd_ < 0 || !watched_) return;
  uint32_t wanted = kFdNone;
  if (read_pauses_.empty() && read_started_ && !closing_ && !read_eof_) {
    wanted |= kFdReadable;
  }
  if (!buffer_.empty() || (file_send_.has_value() && file_send_->native)) {
    wanted |= kFdWritable;
  }
  if (wanted == interest_) return;
  absl::Status updated = loop_.SetFdInterest(fd_, wanted);
  if (!updated.ok()) {
    ForceClose(updated);
    return;
  }
  interest_ = wanted;
}

void SocketTransport::OnFdReady(uint32_t ready) {
  if ((ready & kFdReadable) && !lost_) HandleReadable();
  if ((ready & kFdWritable) && !lost_) HandleWritable();
}

void SocketTransport::HandleReadable() {
  if (!IsReading()) return;  // Paused by an earlier callback.
  char* into;
  size_t capacity;
  BufferedProtocol* const buffered = buffered_;  // Follows SetProtocol.
  if (buffered != nullptr) {
    std::span<char> lent = LendBuffer(*buffered, 0);
    if (lent.empty()) return;
    into = lent.data();
    capacity = lent.size();
  } else {
    into = ThreadReceiveBuffer();
    capacity = kReceiveBufferSize;
  }
  ssize_t n = recv(fd_, into, capacity, 0);
  if (n > 0) {
    if (buffered != nullptr) {
      Call("protocol BufferUpdated() failed",
           [&] { buffered->BufferUpdated(static_cast<size_t>(n)); });
    } else {
      Call("protocol DataReceived() failed", [&] {
        protocol_->DataReceived(std::string_view(into, static_cast<size_t>(n)));
      });
    }
    return;
  }
  if (n < 0) {
    if (!WouldBlock(errno)) {
      ForceClose(SocketError(errno, "receive from", Describe()));
    }
    return;
  }
  // EOF. Reading stops for good; the protocol decides about the rest.
  DeliverEof();
}

void SocketTransport::HandleWritable() {
  if (file_send_.has_value() && file_send_->native) {
    ContinueNativeFileSend();
    return;
  }
  std::array<iovec, kMaxIovecs> iov;
  size_t count = buffer_.Peek(iov);
  if (count == 0) return;
  ssize_t n = SendVector(fd_, iov.data(), count);
  if (n < 0) {
    if (!WouldBlock(errno)) {
      ForceClose(SocketError(errno, "send to", Describe()));
    }
    return;
  }
  const size_t sent = static_cast<size_t>(n);
  if (file_send_.has_value() && !file_send_->native) {
    // The next blocks of a copied file go in before the watermarks look at
    // the drained buffer: the protocol stays paused for the file instead
    // of resuming and pausing again at every block.
    buffer_.ConsumeUnchecked(sent);
    FeedFile();
    if (lost_) return;
    buffer_.Recheck();
  } else {
    // May resume the protocol, which may write again, refilling the buffer.
    buffer_.Consume(sent);
  }
  if (!buffer_.empty() || lost_) return;
  UpdateInterest();
  AfterFlush(/*from_loop=*/true);
}

void SocketTransport::AfterFlush(bool from_loop) {
  if (file_send_.has_value() || !buffer_.empty() || lost_) return;
  if (closing_) {
    // Close() was waiting for this flush; from the loop, asyncio calls
    // connection_lost right here, not on the next iteration.
    FinishClose(/*now=*/from_loop);
  } else if (eof_requested_) {
    shutdown(fd_, SHUT_WR);
  }
}

Future<absl::StatusOr<size_t>> SocketTransport::SendFile(int file_fd,
                                                         int64_t offset,
                                                         size_t count) {
  Future<absl::StatusOr<size_t>> done(loop_);
  if (closing_ || eof_requested_) {
    done.SetResult(absl::FailedPreconditionError(absl::StrCat(
        "SendFile to ", Describe(), " after Close, Abort or WriteEof")));
    return done;
  }
  if (file_send_.has_value()) {
    done.SetResult(absl::FailedPreconditionError(
        absl::StrCat("another SendFile to ", Describe(), " is running")));
    return done;
  }
  struct stat info;
  if (fstat(file_fd, &info) != 0) {
    done.SetResult(absl::ErrnoToStatus(errno, "SendFile: fstat"));
    return done;
  }
  if (!S_ISREG(info.st_mode)) {
    // Pipes and sockets have no offsets for sendfile(2) or pread to use.
    done.SetResult(absl::InvalidArgumentError(absl::StrCat(
        "SendFile needs a regular file; fd ", file_fd,
        " is a pipe, socket or device (write its bytes instead)")));
    return done;
  }
  if (offset < 0 || offset > info.st_size) {
    done.SetResult(absl::InvalidArgumentError(
        absl::StrCat("SendFile: offset ", offset, " is outside the file (",
                     static_cast<int64_t>(info.st_size), " bytes)")));
    return done;
  }
  if (count == 0) count = static_cast<size_t>(info.st_size - offset);
  if (count == 0) {
    done.SetResult(size_t{0});
    return done;
  }
  file_send_ =
      FileSend{file_fd, offset, count, 0, buffer_.empty(), done, nullptr};
  if (file_send_->native) {
    ContinueNativeFileSend();
  } else {
    FeedFile();
  }
  UpdateInterest();
  return done;
}

void SocketTransport::ContinueNativeFileSend() {
  FileSend& file = *file_send_;
  while (file.remaining > 0) {
    off_t offset = file.offset;
    ssize_t n = SendFileWithoutSigpipe(
        fd_, file.fd, &offset,
        std::min<size_t>(file.remaining, size_t{1} << 30));
    if (n > 0) {
      file.offset += n;
      file.remaining -= static_cast<size_t>(n);
      file.sent += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) break;  // The file is shorter than asked: done.
    int error = errno;
    if (error == EINTR) continue;
    if (WouldBlock(error)) {
      UpdateInterest();
      return;
    }
    if (file.sent == 0 &&
        (error == EINVAL || error == ENOSYS || error == EOPNOTSUPP)) {
      // A file system that sendfile(2) cannot read: copy it ourselves.
      file.native = false;
      FeedFile();
      UpdateInterest();
      return;
    }
    if (error == EPIPE || error == ECONNRESET || error == ENOTCONN) {
      ForceClose(SocketError(error, "sendfile to", Describe()));
      return;
    }
    // A failure of the file: the connection itself is fine.
    FinishFileSend(absl::ErrnoToStatus(error, "SendFile: sendfile"));
    return;
  }
  FinishFileSend(file.sent);
}

void SocketTransport::FeedFile() {
  // Not the thread's receive buffer: SendFile may be called from inside a
  // DataReceived that is still reading it.
  if (file_send_->block == nullptr) {
    file_send_->block = std::make_unique<char[]>(kFileBlock);
  }
  bool ended = false;
  while (file_send_->remaining > 0 &&
         buffer_.size() <= buffer_.limits().low) {
    FileSend& file = *file_send_;
    ssize_t n = pread(file.fd, file.block.get(),
                      std::min(file.remaining, kFileBlock), file.offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      FinishFileSend(absl::ErrnoToStatus(errno, "SendFile: read"));
      return;
    }
    if (n == 0) {
      ended = true;
      break;
    }
    file.offset += n;
    file.remaining -= static_cast<size_t>(n);
    file.sent += static_cast<size_t>(n);
    // May pause the protocol, which may abort: then the send is gone.
    buffer_.Append(std::string_view(file.block.get(), static_cast<size_t>(n)));
    if (lost_ || !file_send_.has_value()) return;
  }
  if (file_send_->remaining == 0 || ended) FinishFileSend(file_send_->sent);
}

void SocketTransport::FinishFileSend(absl::StatusOr<size_t> result) {
  Future<absl::StatusOr<size_t>> done = file_send_->done;
  file_send_.reset();
  // Writes made meanwhile follow the file.
  std::array<iovec, kMaxIovecs> iov;
  while (!after_file_.empty()) {
    size_t count = after_file_.Peek(iov);
    size_t moved = 0;
    for (size_t i = 0; i < count; ++i) {
      buffer_.AppendFromOutside(std::string_view(
          static_cast<const char*>(iov[i].iov_base), iov[i].iov_len));
      moved += iov[i].iov_len;
    }
    after_file_.Consume(moved);
  }
  done.SetResult(std::move(result));
  UpdateInterest();
  AfterFlush(/*from_loop=*/false);
}

void SocketTransport::Write(std::string_view data) {
  Writev(std::span<const std::string_view>(&data, 1));
}

void SocketTransport::Writev(std::span<const std::string_view> buffers) {
  size_t total = 0;
  for (std::string_view buffer : buffers) total += buffer.size();
  if (total == 0 || DropWriteIfClosed(total, eof_requested_)) return;
  if (file_send_.has_value()) {
    for (std::string_view buffer : buffers) after_file_.Append(buffer);
    buffer_.AddOutside(total);  // May pause the protocol.
    return;
  }
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
        ForceClose(SocketError(errno, "send to", Describe()));
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
    buffer_.Append(buffer.substr(sent));  // May pause the protocol...
    sent = 0;
    if (lost_) return;  // ... which may abort.
  }
  UpdateInterest();
}

void SocketTransport::WriteEof() {
  if (closing_ || eof_requested_) return;
  eof_requested_ = true;
  if (buffer_.empty() && !file_send_.has_value()) shutdown(fd_, SHUT_WR);
}

void SocketTransport::Close() {
  if (closing_) return;
  closing_ = true;
  UpdateInterest();  // Stops reading; keeps flushing.
  AfterFlush(/*from_loop=*/false);
}

void SocketTransport::Abort() { ForceClose(absl::OkStatus()); }

void SocketTransport::OnForceClose(const absl::Status& status) {
  after_file_.Clear();
  if (file_send_.has_value()) {
    file_send_->done.SetResult(status.ok()
                                   ? absl::UnavailableError(absl::StrCat(
                                         "the connection to ", Describe(),
                                         " was closed during SendFile"))
                                   : status);
    file_send_.reset();
  }
  UpdateInterest();
}

void SocketTransport::OnConnectionLost() {
  // The socket closes after the protocol was told, as in asyncio.
  if (fd_ >= 0) {
    if (watched_) loop_.UnwatchFd(fd_);
    close(fd_);
    fd_ = -1;
  }
  if (closed_callback_) {
    auto callback = std::move(closed_callback_);
    closed_callback_ = nullptr;
    callback();
  }
  ReleaseFromLoop(this);
}

}  // namespace sluice
