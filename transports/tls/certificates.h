#ifndef SLUICE_TRANSPORTS_TLS_CERTIFICATES_H_
#define SLUICE_TRANSPORTS_TLS_CERTIFICATES_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sluice {

// Certificates made on the spot for tests, samples and tools: EC P-256 keys,
// X.509 v3, SHA-256 signatures. Not meant for production PKI.

// A private key (PKCS #8) and its certificate, both PEM.
struct KeyAndCertificate {
  std::string key_pem;
  std::string certificate_pem;
};

// Every member has an initializer, so that designated initializers which
// skip some, e.g. {.common_name = "ca", .is_ca = true}, build under -Wextra.
struct CertificateOptions {
  // The subject's CN. May be empty when there are subjectAltNames.
  std::string common_name = {};
  // subjectAltName dNSName entries, e.g. "localhost" or "*.example.com".
  std::vector<std::string> dns_names = {};
  // subjectAltName iPAddress entries, e.g. "127.0.0.1" or "::1".
  std::vector<std::string> ip_addresses = {};
  // notAfter - notBefore; must be positive.
  absl::Duration valid_for = absl::Hours(24);
  // Shifts notBefore from now, so tests can make expired (negative) or
  // not-yet-valid (positive) certificates. Five minutes back by default: a
  // certificate made a moment ago must be valid for a peer whose clock is a
  // little behind, or for this host after its clock was stepped back.
  absl::Duration not_before_offset = absl::Minutes(-5);
  // basicConstraints CA:TRUE and keyUsage keyCertSign, cRLSign. A CA has no
  // extendedKeyUsage, so it can issue both server and client certificates.
  bool is_ca = false;
  // extendedKeyUsage clientAuth instead of serverAuth. Ignored for a CA.
  bool client_auth = false;
};

// A self-signed certificate: a CA root when `options.is_ca`, else a leaf that
// a peer can trust directly. kInvalidArgument for bad options: no name at
// all, a DNS name that is empty or not printable ASCII, an IP address that
// does not parse, a common name over 64 bytes, a non-positive validity.
absl::StatusOr<KeyAndCertificate> GenerateSelfSigned(
    const CertificateOptions& options);

// A certificate signed by `issuer`, which must be a CA whose key matches its
// certificate (kInvalidArgument otherwise).
absl::StatusOr<KeyAndCertificate> IssueCertificate(
    const KeyAndCertificate& issuer, const CertificateOptions& options);

// The SHA-256 fingerprint of the certificate's DER, as "AB:CD:...:EF"
// (32 bytes, 95 characters). kInvalidArgument when the PEM does not parse.
absl::StatusOr<std::string> CertificateFingerprint(
    std::string_view certificate_pem);

// Writes `pem` to `path`, replacing its content. A private key's file gets
// mode 0600, even if it existed with a wider one; others 0644 (less the
// umask). kInvalidArgument when the path cannot be opened, kInternal when
// writing fails; the message names the path and strerror.
absl::Status WritePemFile(const std::string& path, std::string_view pem,
                          bool is_private_key);

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_TLS_CERTIFICATES_H_
