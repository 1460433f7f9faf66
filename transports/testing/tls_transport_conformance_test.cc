// The Transport conformance suite over TLS: one TLS layer over the
// in-memory pair, and TLS over TLS.

#include "gtest/gtest.h"
#include "transports/testing/tls_flavour.h"
#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(TlsTransport, TransportConformanceTest,
                         ::testing::Values(TlsOverMemoryPair(1),
                                           TlsOverMemoryPair(2)),
                         TransportConformanceTest::Name);

}  // namespace
}  // namespace sluice::transport_testing
