#include "framework/protocol.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace sluice {

void BufferedProtocol::DataReceived(std::string_view data) {
  while (!data.empty()) {
    std::span<char> buffer = GetBuffer(data.size());
    if (buffer.empty()) {
      // Reported like any failing callback: the transport aborts.
      throw std::length_error("GetBuffer() returned an empty buffer");
    }
    size_t n = std::min(buffer.size(), data.size());
    std::memcpy(buffer.data(), data.data(), n);
    BufferUpdated(n);
    data.remove_prefix(n);
  }
}

}  // namespace sluice
