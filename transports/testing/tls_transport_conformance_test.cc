// The Transport conformance suite over TLS: one TLS layer over the
// in-memory pair, TCP and a Unix socket, and TLS over TLS.

#include "gtest/gtest.h"
#include "transports/testing/tls_flavour.h"
#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(TlsTransport, TransportConformanceTest,
                         ::testing::Values(TlsOverMemoryPair(1),
                                           TlsOverMemoryPair(2),
                                           TlsOverTcp(1), TlsOverTcp(2),
                                           TlsOverUnix()),
                         TransportConformanceTest::Name);

}  // namespace
}  // namespace sluice::transport_testing
