#ifndef SLUICE_TRANSPORTS_TESTING_TLS_FLAVOUR_H_
#define SLUICE_TRANSPORTS_TESTING_TLS_FLAVOUR_H_

#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {

// The transport under test is a TLS server layer (`layers` of them, TLS
// over TLS for 2) over one end of a ConnectInMemory pair; the far end is
// as many TLS client layers over the other end, with a recording protocol
// on top. The server is connected last (it reads the client's Finished),
// so the far end is ready when a test starts. Certificates are made once
// per process.
TransportFactory TlsOverMemoryPair(int layers);

}  // namespace sluice::transport_testing

#endif  // SLUICE_TRANSPORTS_TESTING_TLS_FLAVOUR_H_
