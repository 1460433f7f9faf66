#include "transports/transport_layer.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace sluice {

TransportLayer::~TransportLayer() { deliver_pending_.Cancel(); }

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
