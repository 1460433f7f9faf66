#include "transports/transport_layer.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace sluice {

TransportLayer::~TransportLayer() { deliver_pending_.Cancel(); }

absl::Status TransportLayer::Insert(Transport& lower,
                                    std::unique_ptr<TransportLayer> layer) {
  if (lower.IsClosing()) {
    return absl::FailedPreconditionError(
        "cannot put a layer into a transport that is closing");
  }
  TransportLayer& self = *layer;
  const bool write_paused = lower.IsWritingPaused();
  self.protocol_ = lower.ReplaceProtocolWithLayer(std::move(layer));
  self.buffered_ = self.protocol_->AsBufferedProtocol();
  // Connected already, through `lower`.
  self.connection_made_ = true;
  // What the protocol was told holds: `lower` pausing is this layer's
  // reason now, and the protocol hears of it no second time.
  self.told_paused_ = write_paused;
  if (write_paused) self.PauseWriting();
  // The protocol's read pauses are this layer's to apply, as kUpperLayer
  // below (unless the layer needs to read), once the layer is connected.
  constexpr ReadPause kProtocolReasons[] = {ReadPause::kApplication,
                                            ReadPause::kStreamReader};
  for (ReadPause reason : kProtocolReasons) {
    if (lower.IsReadingPausedFor(reason)) self.read_pauses_.Add(reason);
  }
  self.ConnectionMade(lower);
  for (ReadPause reason : kProtocolReasons) {
    if (self.read_pauses_.Has(reason)) lower.ResumeReadingFor(reason);
  }
  return absl::OkStatus();
}

std::string TransportLayer::Describe() const {
  std::optional<SocketAddress> peer = PeerAddress();
  return peer.has_value() ? peer->ToString() : std::string("a stacked transport");
}

void TransportLayer::ConnectionMade(Transport& lower) {
  lower_ = &lower;
  OnLowerConnected();
  // The protocol above may have paused reading inside its ConnectionMade.
  UpdateLowerReading();
}

void TransportLayer::ConnectionHandedOver() {
  // The transport below now belongs to someone else: this layer, and the
  // protocol above it, are done with it.
  lower_ = nullptr;
  const absl::Status handed_over = absl::FailedPreconditionError(
      "the transport below this layer was handed to another protocol");
  ForceClose(handed_over);
  DeliverConnectionLost(loss_.value_or(handed_over));
}

void TransportLayer::ConnectionLost(const absl::Status& status) {
  lost_ = true;
  closing_ = true;
  deliver_pending_.Cancel();
  // A failure of the layer itself wins over how the layer below ended.
  DeliverConnectionLost(loss_.has_value() ? *loss_ : status);
  lower_ = nullptr;
}

void TransportLayer::OnForceClose(const absl::Status& /*status*/) {
  pending_.clear();
  deliver_pending_.Cancel();
  if (lower_ != nullptr) lower_->Abort();
}

void TransportLayer::ScheduleConnectionLost(absl::Status status) {
  // Delivered when the layer below reports its loss (it always does once
  // closed or aborted), inside its ConnectionLost.
  if (!loss_.has_value()) loss_ = std::move(status);
}

void TransportLayer::ReadingChanged() { UpdateLowerReading(); }

void TransportLayer::UpdateLowerReading() {
  if (lower_ == nullptr || lost_) return;
  // Only the protocol above's own reasons: at EOF or while closing there
  // is nothing to hold back.
  const bool pause = !read_pauses_.empty() && !closing_ && !NeedsToRead();
  if (pause != lower_paused_by_us_) {
    lower_paused_by_us_ = pause;
    if (pause) {
      lower_->PauseReadingFor(ReadPause::kUpperLayer);
    } else {
      lower_->ResumeReadingFor(ReadPause::kUpperLayer);
    }
  }
  if (IsReading() && (!pending_.empty() || eof_pending_) &&
      !pending_scheduled_) {
    // From the loop, not inside the ResumeReading the protocol is making.
    deliver_pending_ = loop_.CallSoon([this] {
      pending_scheduled_ = false;
      DeliverPending();
    });
    pending_scheduled_ = true;
  }
}

void TransportLayer::DeliverUp(std::string_view data) {
  if (data.empty() || lost_) return;
  if (!pending_.empty()) {
    pending_.append(data);
    return;
  }
  const size_t delivered = DeliverData(data);
  if (delivered < data.size() && !lost_) {
    pending_.assign(data.substr(delivered));
  }
}

void TransportLayer::DeliverEofUp() {
  if (lost_) return;
  if (!pending_.empty() || !IsReading()) {
    eof_pending_ = true;
    return;
  }
  DeliverEof();
}

void TransportLayer::DeliverPending() {
  if (lost_) return;
  std::string pending = std::move(pending_);
  pending_.clear();
  const size_t delivered = DeliverData(pending);
  if (delivered < pending.size()) {
    if (!lost_) pending_ = pending.substr(delivered);
    return;
  }
  if (eof_pending_ && IsReading()) {
    eof_pending_ = false;
    DeliverEof();
  }
}

}  // namespace sluice
