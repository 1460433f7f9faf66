// The Transport conformance suite, run against SocketTransport over TCP
// (127.0.0.1) and Unix stream sockets (a path listener and a socketpair).

#include "gtest/gtest.h"
#include "transports/testing/socket_flavours.h"
#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(SocketTransport, TransportConformanceTest,
                         ::testing::Values(Tcp(), Unix(), UnixSocketpair()),
                         TransportConformanceTest::Name);

}  // namespace
}  // namespace sluice::transport_testing
