// The Transport conformance suite over stacked transports: a
// PassthroughTransport over TCP, over the in-memory transport (test-driven
// and paired), and two of them over TCP. Every contract must survive the
// layering untouched, which is what TLS (a pass-through plus memory BIOs)
// relies on.

#include "gtest/gtest.h"
#include "transports/testing/memory_flavours.h"
#include "transports/testing/socket_flavours.h"
#include "transports/testing/stacked_flavour.h"
#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    PassthroughTransport, TransportConformanceTest,
    ::testing::Values(Passthrough(Tcp()), Passthrough(Memory()),
                      Passthrough(MemoryPair()),
                      Passthrough(Passthrough(Tcp()))),
    TransportConformanceTest::Name);

}  // namespace
}  // namespace sluice::transport_testing
