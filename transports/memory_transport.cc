#include "transports/memory_transport.h"

#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "transports/protocol_call.h"

namespace sluice {

MemoryTransport& MemoryTransport::Create(EventLoop& loop,
                                         std::unique_ptr<Protocol> protocol,
                                         Options options) {
  return AdoptAndStart(
      loop, new MemoryTransport(loop, std::move(protocol), std::move(options)));
}

void MemoryTransport::StartReading() {
  read_started_ = true;
  Deliver();
}

MemoryTransport::MemoryTransport(EventLoop& loop,
                                 std::unique_ptr<Protocol> protocol,
                                 Options options)
    : loop_(loop),
      protocol_(std::move(protocol)),
      options_(std::move(options)),
      flow_(loop) {}

MemoryTransport::~MemoryTransport() {
  delivery_.Cancel();
  flush_.Cancel();
}

bool MemoryTransport::Call(const char* what,
                           absl::FunctionRef<void()> callback) {
  absl::Status called = CallProtocol(
      loop_, what, [] { return std::string("memory transport"); }, callback);
  if (called.ok()) return true;
  ForceClose(called);
  return false;
}

bool MemoryTransport::PeerAccepting() const {
  if (!linked_) return peer_reading_;
  return linked_peer_ != nullptr && linked_peer_->IsReading();
}

void MemoryTransport::Write(std::string_view data) {
  Writev(std::span<const std::string_view>(&data, 1));
}

void MemoryTransport::Writev(std::span<const std::string_view> buffers) {
  size_t total = 0;
  for (std::string_view buffer : buffers) total += buffer.size();
  if (total == 0) return;
  if (closing_ || eof_requested_) {
    if (!dropped_write_reported_) {
      dropped_write_reported_ = true;
      loop_.ReportError(LoopError{
          "write dropped", absl::FailedPreconditionError(absl::StrCat(
                               "dropped a write of ", total,
                               " bytes to the memory transport "
                               "after ",
                               closing_ ? "Close/Abort" : "WriteEof",
                               " (further dropped writes are not reported)"))});
    }
    return;
  }
  if (linked_ && linked_peer_ == nullptr) {
    // Like writing to a socket whose peer is gone.
    ForceClose(absl::UnavailableError("the in-memory peer closed"));
    return;
  }
  // As a socket sends at once only when nothing is queued: otherwise the
  // queue drains from the loop, so ResumeWriting never runs inside Write.
  const bool was_empty = buffer_.empty();
  for (std::string_view buffer : buffers) buffer_.Append(buffer);
  if (was_empty) {
    Flush();
  } else {
    ScheduleFlush();
  }
  flow_.Update(buffer_.size(), *protocol_);
}

void MemoryTransport::Flush() {
  if (!buffer_.empty() && PeerAccepting()) {
    std::string bytes;
    bytes.reserve(buffer_.size());
    std::array<iovec, 16> iov;
    while (!buffer_.empty()) {
      size_t count = buffer_.Peek(iov);
      size_t taken = 0;
      for (size_t i = 0; i < count; ++i) {
        bytes.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
        taken += iov[i].iov_len;
      }
      buffer_.Consume(taken);
    }
    if (linked_peer_ != nullptr) {
      linked_peer_->DeliverFromPeer(bytes);
    } else if (options_.on_sent) {
      options_.on_sent(bytes);
    } else {
      sent_.append(bytes);
    }
  }
  if (!buffer_.empty() || lost_) return;
  if ((closing_ || eof_requested_) && !peer_saw_eof_) {
    peer_saw_eof_ = true;
    if (linked_peer_ != nullptr) linked_peer_->DeliverEofFromPeer();
    if (options_.on_eof) options_.on_eof();
  }
  if (closing_) {
    lost_ = true;
    loop_.CallSoon([this] { CallConnectionLost(absl::OkStatus()); });
  }
}

void MemoryTransport::ScheduleFlush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  flush_ = loop_.CallSoon([this] {
    flush_scheduled_ = false;
    if (lost_) return;
    Flush();
    flow_.Update(buffer_.size(), *protocol_);
  });
}

void MemoryTransport::SetPeerReading(bool reading) {
  peer_reading_ = reading;
  if (reading) ScheduleFlush();
}

void MemoryTransport::DeliverFromPeer(std::string_view data) {
  if (data.empty() || incoming_eof_) return;
  incoming_.emplace_back(data);
  ScheduleDelivery();
}

void MemoryTransport::DeliverEofFromPeer() {
  incoming_eof_ = true;
  ScheduleDelivery();
}

void MemoryTransport::ScheduleDelivery() {
  if (delivery_scheduled_) return;
  delivery_scheduled_ = true;
  delivery_ = loop_.CallSoon([this] {
    delivery_scheduled_ = false;
    Deliver();
  });
}

void MemoryTransport::Deliver() {
  while (!incoming_.empty() && read_started_ && IsReading() && !lost_) {
    std::string chunk = std::move(incoming_.front());
    incoming_.pop_front();
    if (!DeliverChunk(chunk)) return;
  }
  if (incoming_.empty() && incoming_eof_ && !eof_delivered_ && read_started_ &&
      !closing_) {
    eof_delivered_ = true;
    bool keep_open = false;
    if (!Call("protocol EofReceived() failed",
              [&] { keep_open = protocol_->EofReceived(); })) {
      return;
    }
    if (!keep_open) Close();
  }
}

bool MemoryTransport::DeliverChunk(std::string_view chunk) {
  // A BufferedProtocol is filled here, not through its DataReceived, so
  // that one which swaps itself out in BufferUpdated (and is destroyed) gets
  // nothing more: the protocol is looked up afresh for every piece.
  while (!chunk.empty()) {
    if (!IsReading() || lost_) {
      // Paused (or gone) in the middle: the rest waits for ResumeReading.
      incoming_.emplace_front(chunk);
      return false;
    }
    BufferedProtocol* buffered = protocol_->AsBufferedProtocol();
    if (buffered == nullptr) {
      return Call("protocol DataReceived() failed",
                  [&] { protocol_->DataReceived(chunk); });
    }
    std::span<char> lent;
    if (!Call("protocol GetBuffer() failed",
              [&] { lent = buffered->GetBuffer(chunk.size()); })) {
      return false;
    }
    if (lent.empty()) {
      absl::Status empty = absl::InternalError(
          "protocol GetBuffer() returned an empty buffer on memory transport");
      loop_.ReportError(LoopError{"protocol GetBuffer() failed", empty});
      ForceClose(empty);
      return false;
    }
    const size_t n = std::min(lent.size(), chunk.size());
    std::memcpy(lent.data(), chunk.data(), n);
    chunk.remove_prefix(n);
    if (!Call("protocol BufferUpdated() failed",
              [&] { buffered->BufferUpdated(n); })) {
      return false;
    }
  }
  return true;
}

void MemoryTransport::ResetFromPeer(absl::Status error) { ForceClose(error); }

void MemoryTransport::WriteEof() {
  if (closing_ || eof_requested_) return;
  eof_requested_ = true;
  Flush();
}

void MemoryTransport::Close() {
  if (closing_) return;
  closing_ = true;
  if (UnreadFromPeer() > 0) {
    // What a socket does when closed with input unread: a reset, which
    // also discards what it had left to send.
    ForceClose(absl::OkStatus());
    return;
  }
  Flush();
}

void MemoryTransport::Abort() { ForceClose(absl::OkStatus()); }

size_t MemoryTransport::UnreadFromPeer() const {
  if (linked_peer_ == nullptr) return 0;
  size_t unread = linked_peer_->buffer_.size();
  for (const std::string& chunk : incoming_) unread += chunk.size();
  return unread;
}

void MemoryTransport::ForceClose(const absl::Status& status) {
  if (lost_) return;
  lost_ = true;
  closing_ = true;
  buffer_.Clear();
  if (const size_t unread = UnreadFromPeer(); unread > 0) {
    // The peer would wait for ever to hand over or see read what it sent.
    MemoryTransport* peer = std::exchange(linked_peer_, nullptr);
    peer->linked_peer_ = nullptr;
    peer_saw_eof_ = true;
    peer->ForceClose(absl::UnavailableError(absl::StrCat(
        "connection reset by the in-memory peer (it closed with ", unread,
        " bytes unread)")));
  }
  if (!peer_saw_eof_) {
    peer_saw_eof_ = true;
    if (linked_peer_ != nullptr) linked_peer_->DeliverEofFromPeer();
    if (options_.on_eof) options_.on_eof();
  }
  loop_.CallSoon([this, status] { CallConnectionLost(status); });
}

void MemoryTransport::CallConnectionLost(const absl::Status& status) {
  if (connection_made_) {
    CallProtocol(
        loop_, "protocol ConnectionLost() failed",
        [] { return std::string("memory transport"); },
        [&] { protocol_->ConnectionLost(status); })
        .IgnoreError();  // Reported; the transport is going anyway.
  }
  if (linked_peer_ != nullptr) {
    MemoryTransport* peer = std::exchange(linked_peer_, nullptr);
    peer->linked_peer_ = nullptr;
    if (!peer->buffer_.empty()) {
      // What it still holds for us can never be delivered now (it wrote
      // after we had begun to close).
      peer->ForceClose(absl::UnavailableError(
          "connection reset: the in-memory peer closed with bytes unsent to "
          "it"));
    }
  }
  if (options_.on_lost) options_.on_lost();
  loop_.Release(this);
}

void MemoryTransport::PauseReadingFor(ReadPause reason) {
  if (closing_) return;
  read_pauses_.Add(reason);
}

void MemoryTransport::ResumeReadingFor(ReadPause reason) {
  if (closing_ || !read_pauses_.Remove(reason)) return;
  ScheduleDelivery();
  // The other end's writes were held back while this side did not read.
  if (linked_peer_ != nullptr) linked_peer_->ScheduleFlush();
}

absl::Status MemoryTransport::SetWriteBufferLimits(std::optional<size_t> high,
                                                   std::optional<size_t> low) {
  return flow_.SetLimitsAndCheck(high, low, buffer_.size(), *protocol_);
}

std::unique_ptr<Protocol> MemoryTransport::SetProtocol(
    std::unique_ptr<Protocol> protocol) {
  auto where = [] { return std::string("memory transport"); };
  std::unique_ptr<Protocol> previous =
      SwapProtocol(loop_, protocol_, std::move(protocol), where);
  if (previous == nullptr) return nullptr;
  PauseIfWritingPaused(loop_, *protocol_, flow_.paused(), where);
  return previous;
}

std::pair<MemoryTransport*, MemoryTransport*> ConnectInMemory(
    EventLoop& loop, std::unique_ptr<Protocol> client,
    std::unique_ptr<Protocol> server, MemoryTransport::Options client_options,
    MemoryTransport::Options server_options) {
  MemoryTransport& client_end = MemoryTransport::Create(
      loop, std::move(client), std::move(client_options));
  MemoryTransport& server_end = MemoryTransport::Create(
      loop, std::move(server), std::move(server_options));
  client_end.linked_ = server_end.linked_ = true;
  client_end.linked_peer_ = &server_end;
  server_end.linked_peer_ = &client_end;
  return {&client_end, &server_end};
}

}  // namespace sluice
