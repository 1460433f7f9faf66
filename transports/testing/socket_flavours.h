#ifndef SLUICE_TRANSPORTS_TESTING_SOCKET_FLAVOURS_H_
#define SLUICE_TRANSPORTS_TESTING_SOCKET_FLAVOURS_H_

#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {

// SocketTransport over TCP on 127.0.0.1, over a Unix stream socket with a
// path listener, and over a socketpair; the far end is a raw socket
// (SocketPeer) with small kernel buffers, so back-pressure comes early.
TransportFactory Tcp();
TransportFactory Unix();
TransportFactory UnixSocketpair();

}  // namespace sluice::transport_testing

#endif  // SLUICE_TRANSPORTS_TESTING_SOCKET_FLAVOURS_H_
