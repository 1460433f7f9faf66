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
#include "framework/flow_control.h"
#include "framework/future.h"
#include "framework/protocol.h"
#include "framework/read_pauses.h"
#include "framework/socket_address.h"
#include "framework/transport.h"
#include "framework/write_buffer.h"

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
class SocketTransport final : public Transport,
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
  // offset is not used or moved. May be called from inside DataReceived.
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
  EventLoop& loop() const override { return loop_; }
  void Close() override;
  void Abort() override;
  bool IsClosing() const override { return closing_; }
  std::optional<SocketAddress> PeerAddress() const override { return peer_; }
  std::optional<SocketAddress> LocalAddress() const override {
    return local_;
  }
  int Fd() const override { return fd_; }
  absl::Status SetWriteBufferLimits(std::optional<size_t> high,
                                    std::optional<size_t> low) override;
  WriteBufferLimits GetWriteBufferLimits() const override {
    return flow_.limits();
  }
  size_t GetWriteBufferSize() const override {
    return buffer_.size() + after_file_.size();
  }

  // Transport.
  void Write(std::string_view data) override;
  void Writev(std::span<const std::string_view> buffers) override;
  void WriteEof() override;
  bool CanWriteEof() const override { return true; }
  void PauseReadingFor(ReadPause reason) override;
  void ResumeReadingFor(ReadPause reason) override;
  bool IsReading() const override {
    return read_pauses_.empty() && !closing_ && !read_eof_;
  }
  bool IsWritingPaused() const override { return flow_.paused(); }
  std::unique_ptr<Protocol> SetProtocol(
      std::unique_ptr<Protocol> protocol) override;
  Protocol& GetProtocol() const override { return *protocol_; }

 private:
  SocketTransport(EventLoop& loop, int fd, std::unique_ptr<Protocol> protocol,
                  std::optional<SocketAddress> peer);

  void OnFdReady(uint32_t ready) override;
  void HandleReadable();
  void HandleWritable();
  // SendFile's two ways: sendfile(2) straight to the socket, or blocks of
  // the file appended to the write buffer while it is at or below low.
  void ContinueNativeFileSend();
  void FeedFile();
  void FinishFileSend(absl::StatusOr<size_t> result);
  // Once the write buffer is empty: a pending Close or WriteEof.
  void AfterFlush(bool from_loop);
  template <class T>
  friend T& AdoptAndStart(EventLoop& loop, T* transport);
  void StartReading();
  void UpdateInterest();
  // Buffers what a send left over, then re-checks the watermarks.
  void BufferRemainder(std::span<const std::string_view> buffers,
                       size_t sent);
  bool DropWriteIfClosed(size_t size);
  // A send or receive failed, or a protocol callback threw: discards the
  // buffer and reports `status` through ConnectionLost.
  void FatalError(const absl::Status& status);
  void ForceClose(const absl::Status& status);
  void CallConnectionLost(const absl::Status& status);
  // Runs a protocol callback; one that throws is a fatal error.
  bool Call(const char* what, absl::FunctionRef<void()> callback);
  std::string Describe() const;

  EventLoop& loop_;
  int fd_;
  std::unique_ptr<Protocol> protocol_;
  BufferedProtocol* buffered_;  // protocol_ if it lends buffers.
  std::optional<SocketAddress> peer_;
  std::optional<SocketAddress> local_;
  WriteBuffer buffer_;
  FlowControl flow_;
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
  // Writes made while a SendFile runs; they follow the file.
  WriteBuffer after_file_;
  uint32_t interest_ = kFdNone;
  ReadPauses read_pauses_;
  bool read_started_ = false;      // ConnectionMade has run.
  bool read_eof_ = false;          // The peer's EOF was seen.
  bool closing_ = false;           // Close, Abort or a fatal error.
  bool eof_requested_ = false;     // WriteEof was called.
  bool lost_ = false;              // ConnectionLost is scheduled or ran.
  bool connection_made_ = false;   // ConnectionMade ran.
  bool dropped_write_reported_ = false;
  absl::AnyInvocable<void()> closed_callback_;
};

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_SOCKET_TRANSPORT_H_
