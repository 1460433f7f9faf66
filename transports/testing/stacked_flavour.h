#ifndef SLUICE_TRANSPORTS_TESTING_STACKED_FLAVOUR_H_
#define SLUICE_TRANSPORTS_TESTING_STACKED_FLAVOUR_H_

#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {

// `inner` with a PassthroughTransport stacked on it: the transport under
// test is the layer, the far end is `inner`'s peer. Stack it again for two
// layers.
TransportFactory Passthrough(TransportFactory inner);

}  // namespace sluice::transport_testing

#endif  // SLUICE_TRANSPORTS_TESTING_STACKED_FLAVOUR_H_
