#ifndef SLUICE_SAMPLES_SERVER_TLS_FLAGS_H_
#define SLUICE_SAMPLES_SERVER_TLS_FLAGS_H_

#include "absl/status/statusor.h"
#include "transports/tls/tls_context.h"

namespace sluice::samples {

// The sample servers' TLS flags: --cert and --key (PEM files; without
// both, an ephemeral self-signed certificate for localhost, 127.0.0.1 and
// ::1, whose SHA-256 fingerprint is printed), --ca (clients must present a
// certificate it signed) and --alpn. Bad flags or files are
// kInvalidArgument.
absl::StatusOr<TlsContext> ServerTlsContextFromFlags();

}  // namespace sluice::samples

#endif  // SLUICE_SAMPLES_SERVER_TLS_FLAGS_H_
