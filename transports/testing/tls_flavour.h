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

// The same stacks over the two ends of a real connection: TCP on 127.0.0.1
// (the far end can reset it) or a Unix stream socket, with the socket
// flavours' small kernel buffers.
TransportFactory TlsOverTcp(int layers);
TransportFactory TlsOverUnix();

}  // namespace sluice::transport_testing

#endif  // SLUICE_TRANSPORTS_TESTING_TLS_FLAVOUR_H_
