#include "samples/server_tls_flags.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "transports/tls/certificates.h"

ABSL_FLAG(std::string, cert, "",
          "PEM certificate chain (with --key); without both, an ephemeral "
          "self-signed certificate.");
ABSL_FLAG(std::string, key, "", "PEM private key of --cert.");
ABSL_FLAG(std::string, ca, "",
          "PEM CA certificates: when given, clients must present a "
          "certificate they signed.");
ABSL_FLAG(std::vector<std::string>, alpn, {},
          "ALPN protocols in preference order, e.g. h2,http/1.1; a client "
          "that offers others only is refused.");

namespace sluice::samples {

absl::StatusOr<TlsContext> ServerTlsContextFromFlags() {
  TlsContextOptions options{
      .certificate_chain_file = absl::GetFlag(FLAGS_cert),
      .private_key_file = absl::GetFlag(FLAGS_key),
      .ca_file = absl::GetFlag(FLAGS_ca),
      .alpn_protocols = absl::GetFlag(FLAGS_alpn),
  };
  if (options.certificate_chain_file.empty() !=
      options.private_key_file.empty()) {
    return absl::InvalidArgumentError("--cert and --key go together");
  }
  if (!options.ca_file.empty()) options.verify = TlsVerify::kRequired;
  if (options.certificate_chain_file.empty()) {
    absl::StatusOr<KeyAndCertificate> ephemeral =
        GenerateSelfSigned({.common_name = "localhost",
                            .dns_names = {"localhost"},
                            .ip_addresses = {"127.0.0.1", "::1"}});
    if (!ephemeral.ok()) return ephemeral.status();
    absl::StatusOr<std::string> fingerprint =
        CertificateFingerprint(ephemeral->certificate_pem);
    if (!fingerprint.ok()) return fingerprint.status();
    absl::PrintF(
        "ephemeral self-signed certificate for localhost, 127.0.0.1, ::1\n"
        "SHA-256 fingerprint %s\n",
        *fingerprint);
    options.certificate_chain_pem = std::move(ephemeral->certificate_pem);
    options.private_key_pem = std::move(ephemeral->key_pem);
  }
  return TlsContext::CreateServer(std::move(options));
}

}  // namespace sluice::samples
