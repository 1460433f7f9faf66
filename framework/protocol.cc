#include "framework/protocol.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "absl/strings/str_format.h"
#include "framework/exceptions.h"

namespace sluice {

void BufferedProtocol::DataReceived(std::string_view data) {
  while (!data.empty()) {
    std::span<char> buffer = GetBuffer(data.size());
    if (buffer.empty()) {
#if SLUICE_HAS_EXCEPTIONS
      // Reported like any failing callback: the transport aborts.
      throw std::length_error("GetBuffer() returned an empty buffer");
#else
      // sluice's transports fill a BufferedProtocol themselves and close
      // on an empty buffer; a foreign one calling this loses the rest.
      absl::FPrintF(stderr,
                    "sluice: GetBuffer() returned an empty buffer: %d bytes "
                    "dropped\n",
                    static_cast<int>(data.size()));
      return;
#endif
    }
    size_t n = std::min(buffer.size(), data.size());
    std::memcpy(buffer.data(), data.data(), n);
    BufferUpdated(n);
    data.remove_prefix(n);
  }
}

}  // namespace sluice
