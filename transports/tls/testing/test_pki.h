#ifndef SLUICE_TRANSPORTS_TLS_TESTING_TEST_PKI_H_
#define SLUICE_TRANSPORTS_TLS_TESTING_TEST_PKI_H_

#include "transports/tls/certificates.h"
#include "transports/tls/tls_context.h"

namespace sluice::tls_testing {

// Keys and certificates for tests, made once per process (nothing that
// expires is kept in the repository).
struct TestPki {
  KeyAndCertificate ca;
  // Signed by `ca` for localhost, 127.0.0.1 and ::1.
  KeyAndCertificate server;
  // Signed by `ca`, for client authentication: "CN=client".
  KeyAndCertificate client;
  // A CA that signed nothing here: trusting it alone fails verification.
  KeyAndCertificate other_ca;
};
const TestPki& Pki();

// A server context's options with Pki().server.
TlsContextOptions ServerContextOptions();
// A client context's options trusting Pki().ca.
TlsContextOptions ClientContextOptions();
// Contexts made from those options.
TlsContext ServerContext();
TlsContext ClientContext();

}  // namespace sluice::tls_testing

#endif  // SLUICE_TRANSPORTS_TLS_TESTING_TEST_PKI_H_
