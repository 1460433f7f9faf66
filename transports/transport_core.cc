#include "transports/transport_core.h"

#include <algorithm>
#include <cstring>
#include <span>

namespace sluice {

std::unique_ptr<Protocol> StreamTransportCore::SetProtocol(
    std::unique_ptr<Protocol> protocol) {
  auto where = [this] { return Describe(); };
  std::unique_ptr<Protocol> previous =
      SwapProtocol(loop_, protocol_, std::move(protocol), where);
  if (previous == nullptr) return nullptr;
  PauseIfWritingPaused(loop_, *protocol_, write_paused(), where);
  return previous;
}

size_t StreamTransportCore::DeliverData(std::string_view data) {
  size_t delivered = 0;
  while (delivered < data.size()) {
    if (!IsReading() || lost_) break;  // Paused (or gone) meanwhile.
    std::string_view rest = data.substr(delivered);
    BufferedProtocol* buffered = protocol_->AsBufferedProtocol();
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
