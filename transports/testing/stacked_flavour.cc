#include "transports/testing/stacked_flavour.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "transports/passthrough_transport.h"

namespace sluice::transport_testing {

TransportFactory Passthrough(TransportFactory inner) {
  TransportFactory stacked = inner;
  stacked.name = absl::StrCat("Passthrough_", inner.name);
  stacked.connect = [connect = inner.connect](
                        EventLoop& loop, std::unique_ptr<Protocol> protocol) {
    return connect(loop, std::make_unique<PassthroughTransport>(
                             loop, std::move(protocol)));
  };
  return stacked;
}

}  // namespace sluice::transport_testing
