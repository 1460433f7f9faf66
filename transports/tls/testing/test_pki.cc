#include "transports/tls/testing/test_pki.h"

namespace sluice::tls_testing {

const TestPki& Pki() {
  static const TestPki* pki = [] {
    KeyAndCertificate ca =
        GenerateSelfSigned({.common_name = "sluice test CA", .is_ca = true})
            .value();
    KeyAndCertificate server =
        IssueCertificate(ca, {.common_name = "localhost",
                              .dns_names = {"localhost"},
                              .ip_addresses = {"127.0.0.1", "::1"}})
            .value();
    KeyAndCertificate client =
        IssueCertificate(ca, {.common_name = "client", .client_auth = true})
            .value();
    KeyAndCertificate other_ca =
        GenerateSelfSigned({.common_name = "another CA", .is_ca = true})
            .value();
    return new TestPki{.ca = std::move(ca),
                       .server = std::move(server),
                       .client = std::move(client),
                       .other_ca = std::move(other_ca)};
  }();
  return *pki;
}

TlsContextOptions ServerContextOptions() {
  return TlsContextOptions{.certificate_chain_pem = Pki().server.certificate_pem,
                           .private_key_pem = Pki().server.key_pem};
}

TlsContextOptions ClientContextOptions() {
  return TlsContextOptions{.ca_pem = Pki().ca.certificate_pem};
}

TlsContext ServerContext() {
  return TlsContext::CreateServer(ServerContextOptions()).value();
}

TlsContext ClientContext() {
  return TlsContext::CreateClient(ClientContextOptions()).value();
}

}  // namespace sluice::tls_testing
