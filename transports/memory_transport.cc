#include "transports/memory_transport.h"

#include <sys/uio.h>

#include <array>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sluice {

MemoryTransport& MemoryTransport::Create(EventLoop& loop,
                                         std::unique_ptr<Protocol> protocol,
                                         Options options) {
  return AdoptAndStart(
      loop, new MemoryTransport(loop, std::move(protocol), std::move(options)));
}

MemoryTransport::MemoryTransport(EventLoop& loop,
                                 std::unique_ptr<Protocol> protocol,
                                 Options options)
    : StreamTransportCore(loop, std::move(protocol)),
      options_(std::move(options)) {}

MemoryTransport::~MemoryTransport() {
  delivery_.Cancel();
  flush_.Cancel();
}

std::string MemoryTransport::Describe() const {
  return options_.peer_address.has_value()
             ? absl::StrCat("memory transport to ",
                            options_.peer_address->ToString())
             : std::string("memory transport");
}

void MemoryTransport::StartReading() {
  read_started_ = true;
  Deliver();
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
  if (total == 0 || DropWriteIfClosed(total, eof_requested_)) return;
  if (linked_ && linked_peer_ == nullptr) {
    // Like writing to a socket whose peer is gone.
    ForceClose(absl::UnavailableError("the in-memory peer closed"));
    return;
  }
  if (buffer_.empty() && !flushing_ && PeerAccepting()) {
    // As a socket sends at once when nothing is queued (a single buffer
    // without an intermediate copy).
    if (buffers.size() == 1) {
      SendToPeer(buffers[0]);
      return;
    }
    std::string bytes;
    bytes.reserve(total);
    for (std::string_view buffer : buffers) bytes.append(buffer);
    SendToPeer(bytes);
    return;
  }
  // Queued: it drains from the loop, so ResumeWriting never runs inside
  // Write. PauseWriting may (the buffer checks its watermarks).
  for (std::string_view buffer : buffers) {
    buffer_.Append(buffer);
    if (lost_) return;  // PauseWriting aborted.
  }
  if (PeerAccepting()) ScheduleFlush();
}

void MemoryTransport::SendToPeer(std::string_view bytes) {
  if (linked_peer_ != nullptr) {
    linked_peer_->DeliverFromPeer(bytes);
  } else if (options_.on_sent) {
    options_.on_sent(bytes);
  } else {
    sent_.append(bytes);
  }
}

void MemoryTransport::SendEofToPeer() {
  if (peer_saw_eof_) return;
  peer_saw_eof_ = true;
  if (linked_peer_ != nullptr) linked_peer_->DeliverEofFromPeer();
  if (options_.on_eof) options_.on_eof();
}

void MemoryTransport::Flush() {
  if (lost_) return;
  if (!buffer_.empty() && PeerAccepting()) {
    // Consuming may resume the protocol, which may write again: those
    // bytes are queued behind these (no fast path while flushing).
    flushing_ = true;
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
    flushing_ = false;
    SendToPeer(bytes);
  }
  if (!buffer_.empty() || lost_) return;
  if (closing_ || eof_requested_) SendEofToPeer();
  if (closing_) FinishClose(/*now=*/false);
}

void MemoryTransport::ScheduleFlush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  flush_ = loop_.CallSoon([this] {
    flush_scheduled_ = false;
    Flush();
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
  if (!read_started_) return;
  while (!incoming_.empty() && IsReading() && !lost_) {
    std::string chunk = std::move(incoming_.front());
    incoming_.pop_front();
    const size_t delivered = DeliverData(chunk);
    if (delivered < chunk.size()) {
      // Paused in the middle: the rest waits for ResumeReading.
      if (!lost_) incoming_.emplace_front(chunk.substr(delivered));
      return;
    }
  }
  // The EOF too waits while reading is paused, as a socket's would.
  if (incoming_.empty() && incoming_eof_ && !lost_ && IsReading()) {
    DeliverEof();
  }
}

void MemoryTransport::ReadingChanged() {
  if (!IsReading()) return;
  ScheduleDelivery();
  // The other end's writes were held back while this side did not read.
  if (linked_peer_ != nullptr) linked_peer_->ScheduleFlush();
}

void MemoryTransport::ResetFromPeer(absl::Status error) { ForceClose(error); }

void MemoryTransport::WriteEof() {
  if (closing_ || eof_requested_) return;
  eof_requested_ = true;
  // Inside a flush (ResumeWriting) the bytes being flushed go first.
  if (buffer_.empty() && !flushing_) {
    SendEofToPeer();
  } else {
    ScheduleFlush();
  }
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
  if (buffer_.empty() && !flushing_) {
    SendEofToPeer();
    FinishClose(/*now=*/false);
  } else {
    ScheduleFlush();
  }
}

void MemoryTransport::Abort() { ForceClose(absl::OkStatus()); }

size_t MemoryTransport::UnreadFromPeer() const {
  if (linked_peer_ == nullptr) return 0;
  size_t unread = linked_peer_->buffer_.size();
  for (const std::string& chunk : incoming_) unread += chunk.size();
  return unread;
}

void MemoryTransport::OnForceClose(const absl::Status& /*status*/) {
  if (const size_t unread = UnreadFromPeer(); unread > 0) {
    // The peer would wait for ever to hand over or see read what it sent.
    MemoryTransport* peer = std::exchange(linked_peer_, nullptr);
    peer->linked_peer_ = nullptr;
    peer_saw_eof_ = true;
    peer->ForceClose(absl::UnavailableError(absl::StrCat(
        "connection reset by the in-memory peer (it closed with ", unread,
        " bytes unread)")));
  }
  SendEofToPeer();
}

void MemoryTransport::OnConnectionLost() {
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
  ReleaseFromLoop(this);
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
