// The Transport conformance suite, run against MemoryTransport driven by a
// test peer and against one end of a ConnectInMemory pair: the testing kit
// keeps the contracts of a real transport.

#include "gtest/gtest.h"
#include "transports/testing/memory_flavours.h"
#include "transports/testing/transport_conformance.h"

namespace sluice::transport_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(MemoryTransport, TransportConformanceTest,
                         ::testing::Values(Memory(), MemoryPair()),
                         TransportConformanceTest::Name);

}  // namespace
}  // namespace sluice::transport_testing
