#include "transports/passthrough_transport.h"

namespace sluice {

void PassthroughTransport::Close() {
  if (closing_) return;
  closing_ = true;
  // The loss, OK once the layer below has flushed, comes from below.
  if (lower() != nullptr) lower()->Close();
}

absl::Status PassthroughTransport::SetWriteBufferLimits(
    std::optional<size_t> high, std::optional<size_t> low) {
  if (lower() == nullptr) {
    return absl::FailedPreconditionError("the connection is closed");
  }
  return lower()->SetWriteBufferLimits(high, low);
}

WriteBufferLimits PassthroughTransport::GetWriteBufferLimits() const {
  return lower() != nullptr ? lower()->GetWriteBufferLimits()
                            : buffer_.limits();
}

void PassthroughTransport::Write(std::string_view data) {
  Writev(std::span<const std::string_view>(&data, 1));
}

void PassthroughTransport::Writev(std::span<const std::string_view> buffers) {
  size_t total = 0;
  for (std::string_view buffer : buffers) total += buffer.size();
  if (total == 0 || DropWriteIfClosed(total, eof_requested_)) return;
  if (lower() != nullptr) lower()->Writev(buffers);
}

void PassthroughTransport::WriteEof() {
  if (closing_ || eof_requested_) return;
  eof_requested_ = true;
  if (lower() != nullptr) lower()->WriteEof();
}

bool PassthroughTransport::CanWriteEof() const {
  return lower() != nullptr && lower()->CanWriteEof();
}

bool PassthroughTransport::EofReceived() {
  DeliverEofUp();
  // The protocol above decided (it closed this layer, and so the one
  // below, if it did not keep the connection half-open).
  return true;
}

}  // namespace sluice
