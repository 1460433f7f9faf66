#ifndef SLUICE_TRANSPORTS_SOCKET_TRANSPORT_H_
#define SLUICE_TRANSPORTS_SOCKET_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/protocol.h"
#include "framework/socket_address.h"
#include "framework/transport.h"
#include "framework/write_buffer.h"
#include "transports/transport_core.h"

namespace sluice {

// The Transport of a connected stream socket, TCP or Unix (asyncio's
// _SelectorSocketTransport), with asyncio's orderings:
// - creation schedules ConnectionMade, then reading (so a protocol that
//   pauses reading in ConnectionMade never gets data);
// - Write sends at once when nothing is buffered and buffers only what the
//   kernel did not take; EPOLLOUT interest exists only while the buffer is
//   non-empty, so a request-response exchange costs no epoll_ctl;
// - reads go into one 256 KiB buffer shared by the thread's transports, or
//   into a BufferedProtocol's memory;
// - sends use MSG_NOSIGNAL: a dead peer is a kUnavailable ConnectionLost,
//   never SIGPIPE.
class SocketTransport final : public StreamTransportCore,
                              public LoopOwned,
                              private FdHandler {
 public:
  // Takes ownership of `fd`, a connected non-blocking stream socket, and
  // hands the transport to the loop (see BaseTransport for its lifetime).
  // Turns TCP_NODELAY on for TCP. `peer` saves a getpeername when the
  // caller knows it (accept).
  static SocketTransport& Create(EventLoop& loop, int fd,
                                 std::unique_ptr<Protocol> protocol,
                                 std::optional<SocketAddress> peer = {});

  ~SocketTransport() override;

  // Sends `count` bytes of the regular file `file_fd` from `offset` (count
  // 0: to the end of the file) and completes with the number of bytes sent
  // (asyncio's loop.sendfile). With an empty write buffer the kernel copies
  // the file to the socket itself (sendfile(2), with SIGPIPE suppressed);
  // otherwise, or where sendfile(2) refuses the file system, the file is
  // read in 64 KiB blocks into the write buffer as it drains, under the same
  // flow control as Write. Either way the file is read on the loop's thread
  // (a cold page cache blocks the loop). Writes made meanwhile are sent
  // after the file. `file_fd` must stay open until completion; its file
  // offset is not used or moved. May be called from inside DataReceived;
  // like Write, may call PauseWriting.
  // kFailedPrecondition while closing or while another SendFile runs,
  // kInvalidArgument for a pipe, socket or device (they have no offsets)
  // and for an offset past the end, and the connection's error if it is
  // lost first.
  Future<absl::StatusOr<size_t>> SendFile(int file_fd, int64_t offset = 0,
                                          size_t count = 0);

  // Runs once, right after ConnectionLost returned (servers count their
  // connections with it).
  void SetClosedCallback(absl::AnyInvocable<void()> callback) {
    closed_callback_ = std::move(callback);
  }

  // BaseTransport.
  void Close() override;
  void Abort() override;
  std::optional<SocketAddress> PeerAddress() const override { return peer_; }
  std::optional<SocketAddress> LocalAddress() const override {
    return local_;
  }
  int Fd() const override { return fd_; }

  // Transport.
  void Write(std::string_view data) override;
  void Writev(std::span<const std::string_view> buffers) override;
  void WriteEof() override;
  bool CanWriteEof() const override { return true; }

 private:
  friend class TransportCore<Transport, Protocol>;

  SocketTransport(EventLoop& loop, int fd, std::unique_ptr<Protocol> protocol,
                  std::optional<SocketAddress> peer);

  // TransportCore.
  std::string Describe() const override;
  void StartReading() override;
  void ReadingChanged() override { UpdateInterest(); }
  void OnForceClose(const absl::Status& status) override;
  void OnConnectionLost() override;

  void OnFdReady(uint32_t ready) override;
  void HandleReadable();
  void HandleWritable();
  // SendFile's two ways: sendfile(2) straight to the socket, or blocks of
  // the file appended to the write buffer while it is at or below low.
  void ContinueNativeFileSend();
  // Appends blocks of the file while the buffer is at or below low.
  void FeedFile();
  void FinishFileSend(absl::StatusOr<size_t> result);
  // Once the write buffer is empty: a pending Close or WriteEof.
  void AfterFlush(bool from_loop);
  void UpdateInterest();
  // Buffers what a send left over (the buffer re-checks its watermarks).
  void BufferRemainder(std::span<const std::string_view> buffers,
                       size_t sent);

  int fd_;
  bool watched_ = false;  // Registered with the loop (the constructor may fail).
  std::optional<SocketAddress> peer_;
  std::optional<SocketAddress> local_;
  struct FileSend {
    int fd;
    int64_t offset;
    size_t remaining;
    size_t sent;
    bool native;
    Future<absl::StatusOr<size_t>> done;
    // The copy fallback's read buffer, allocated when first needed.
    std::unique_ptr<char[]> block;
  };
  std::optional<FileSend> file_send_;
  // Writes made while a SendFile runs; they follow the file, and count
  // toward the watermarks as bytes the buffer holds outside itself.
  WriteBuffer after_file_;
  uint32_t interest_ = kFdNone;
  bool read_started_ = false;  // ConnectionMade has run.
  absl::AnyInvocable<void()> closed_callback_;
};

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_SOCKET_TRANSPORT_H_
