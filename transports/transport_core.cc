#include "transports/transport_core.h"

#include <algorithm>
#include <cstring>
#include <span>

namespace sluice {

std::unique_ptr<Protocol> StreamTransportCore::ReplaceProtocolWithLayer(
    std::unique_ptr<Protocol> layer) {
  if (layer == nullptr) {
    loop_.ReportError(LoopError{
        "SetProtocol refused",
        absl::InvalidArgumentError(absl::StrCat(
            "SetProtocol(nullptr) on ", Describe(), ": the protocol is kept"))});
    return nullptr;
  }
  std::swap(protocol_, layer);
  buffered_ = protocol_->AsBufferedProtocol();
  return layer;
}

std::unique_ptr<Protocol> StreamTransportCore::SetProtocol(
    std::unique_ptr<Protocol> new_protocol) {
  std::unique_ptr<Protocol> protocol =
      ReplaceProtocolWithLayer(std::move(new_protocol));
  if (protocol == nullptr) return nullptr;
  // A failure is only reported: the handover has happened.
  CallProtocol(
      loop_, "protocol ConnectionHandedOver() failed",
      [this] { return Describe(); }, [&] { protocol->ConnectionHandedOver(); })
      .IgnoreError();
  // The new protocol has been told nothing: it learns of a pause now.
  told_paused_ = false;
  TellWritePause();
  return protocol;
}

size_t StreamTransportCore::DeliverData(std::string_view data) {
  size_t delivered = 0;
  while (delivered < data.size()) {
    if (!IsReading() || lost_) break;  // Paused (or gone) meanwhile.
    std::string_view rest = data.substr(delivered);
    // buffered_ follows SetProtocol, so a protocol that swaps itself out
    // in BufferUpdated gets nothing more.
    BufferedProtocol* const buffered = buffered_;
    if (buffered == nullptr) {
      if (!Call("protocol DataReceived() failed",
                [&] { protocol_->DataReceived(rest); })) {
        break;
      }
      delivered = data.size();
      break;
    }
    std::span<char> lent = LendBuffer(*buffered, rest.size());
    if (lent.empty()) break;
    const size_t n = std::min(lent.size(), rest.size());
    std::memcpy(lent.data(), rest.data(), n);
    delivered += n;
    if (!Call("protocol BufferUpdated() failed",
              [&] { buffered->BufferUpdated(n); })) {
      break;
    }
  }
  return delivered;
}

std::span<char> StreamTransportCore::LendBuffer(BufferedProtocol& buffered,
                                               size_t size_hint) {
  std::span<char> lent;
  if (!Call("protocol GetBuffer() failed",
            [&] { lent = buffered.GetBuffer(size_hint); })) {
    return {};
  }
  if (lent.empty()) {
    absl::Status empty = absl::InternalError(absl::StrCat(
        "protocol GetBuffer() returned an empty buffer on ", Describe()));
    loop_.ReportError(LoopError{"protocol GetBuffer() failed", empty});
    ForceClose(empty);
  }
  return lent;
}

void StreamTransportCore::DeliverEof() {
  if (read_eof_ || closing_) return;
  read_eof_ = true;
  ReadingChanged();
  bool keep_open = false;
  if (!Call("protocol EofReceived() failed",
            [&] { keep_open = protocol_->EofReceived(); })) {
    return;
  }
  if (!keep_open) Close();
}

}  // namespace sluice
