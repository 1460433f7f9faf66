#ifndef SLUICE_TRANSPORTS_TESTING_MEMORY_FLAVOURS_H_
#define SLUICE_TRANSPORTS_TESTING_MEMORY_FLAVOURS_H_

#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {

// A MemoryTransport whose far end the test plays (DeliverFromPeer, ...).
TransportFactory Memory();
// One end of a ConnectInMemory pair; the far end is the other transport,
// driven through a recording protocol.
TransportFactory MemoryPair();

}  // namespace sluice::transport_testing

#endif  // SLUICE_TRANSPORTS_TESTING_MEMORY_FLAVOURS_H_
