// make_certs: a local CA and the certificates it signs, for trying TLS out.
//
//   ./bazelw run //tools:make_certs -- --out=/tmp/certs
//   ./bazelw run //tools:make_certs -- --out=certs --hosts=myhost.test --days=7
//
// Writes ca.pem/ca.key (the CA), server.pem/server.key (serverAuth, the
// --hosts as DNS and IP subjectAltNames) and client.pem/client.key
// (clientAuth) into --out, keys with mode 0600. EC P-256 keys, SHA-256
// signatures: see transports/tls/certificates.h. Not for production PKI.

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "transports/tls/certificates.h"

ABSL_FLAG(std::string, out, "",
          "Directory to write the files into; made if missing (not its "
          "parents). Files already there are replaced.");
ABSL_FLAG(std::vector<std::string>, hosts,
          std::vector<std::string>({"localhost", "127.0.0.1", "::1"}),
          "Names the server certificate is for: DNS names (*.example.test "
          "too) and IPv4/IPv6 addresses.");
ABSL_FLAG(int, days, 30, "How long the certificates are valid, in days.");

namespace {

using sluice::CertificateOptions;
using sluice::KeyAndCertificate;

bool IsIpAddress(const std::string& host) {
  unsigned char address[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), address) == 1 ||
         inet_pton(AF_INET6, host.c_str(), address) == 1;
}

// A host name (RFC 1123 labels), optionally with a leading "*." wildcard.
bool IsDnsName(std::string_view host) {
  if (host.starts_with("*.")) host.remove_prefix(2);
  if (host.empty() || host.size() > 253) return false;
  while (true) {
    const std::string_view label = host.substr(0, host.find('.'));
    if (label.empty() || label.size() > 63 || label.front() == '-' ||
        label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-') return false;
    }
    if (label.size() == host.size()) return true;
    host.remove_prefix(label.size() + 1);
  }
}

absl::Status SplitHosts(const std::vector<std::string>& hosts,
                        CertificateOptions& options) {
  if (hosts.empty()) {
    return absl::InvalidArgumentError("--hosts needs at least one name");
  }
  for (const std::string& host : hosts) {
    if (host.empty()) {
      return absl::InvalidArgumentError("--hosts has an empty entry");
    }
    if (IsIpAddress(host)) {
      options.ip_addresses.push_back(host);
    } else if (IsDnsName(host)) {
      options.dns_names.push_back(host);
    } else {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--hosts: '%s' is neither an IP address nor a DNS name", host));
    }
  }
  return absl::OkStatus();
}

// --out as given, or under the caller's directory when relative: `bazel
// run` starts tools in their runfiles tree.
absl::StatusOr<std::string> OutputDirectory() {
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    return absl::InvalidArgumentError("--out=DIR is required");
  }
  if (const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
      cwd != nullptr && out.front() != '/') {
    out = absl::StrCat(cwd, "/", out);
  }
  return out;
}

absl::Status MakeDirectory(const std::string& out) {
  if (mkdir(out.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot make --out directory %s: %s", out, strerror(errno)));
  }
  struct stat info;
  if (stat(out.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--out=%s is not a directory", out));
  }
  return absl::OkStatus();
}

struct Output {
  std::string name;
  const std::string* pem;
  bool is_private_key;
  std::string description;
};

absl::Status Run() {
  absl::StatusOr<std::string> dir = OutputDirectory();
  if (!dir.ok()) return dir.status();
  const int days = absl::GetFlag(FLAGS_days);
  if (days <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--days must be positive, got %d", days));
  }
  const absl::Duration valid_for = absl::Hours(24) * days;
  // X.509 times end with the year 9999, and OpenSSL writes a later one as an
  // invalid time instead of failing.
  if (absl::Now() + valid_for >
      absl::FromCivil(absl::CivilSecond(9999, 12, 31, 23, 59, 59),
                      absl::UTCTimeZone())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--days=%d ends after the year 9999, which X.509 cannot express",
        days));
  }
  const std::vector<std::string> hosts = absl::GetFlag(FLAGS_hosts);
  CertificateOptions server_options{.valid_for = valid_for};
  if (absl::Status split = SplitHosts(hosts, server_options); !split.ok()) {
    return split;
  }
  // The CN is informative only (clients match the subjectAltNames), and a
  // long name would not fit its 64 bytes.
  if (hosts.front().size() <= 64) server_options.common_name = hosts.front();

  // Everything is checked and made before anything is written, so that a
  // mistake leaves nothing behind.
  absl::StatusOr<KeyAndCertificate> ca =
      sluice::GenerateSelfSigned({.common_name = "sluice make_certs CA",
                                  .valid_for = valid_for,
                                  .is_ca = true});
  if (!ca.ok()) return ca.status();
  absl::StatusOr<KeyAndCertificate> server =
      sluice::IssueCertificate(*ca, server_options);
  if (!server.ok()) return server.status();
  absl::StatusOr<KeyAndCertificate> client = sluice::IssueCertificate(
      *ca,
      {.common_name = "client", .valid_for = valid_for, .client_auth = true});
  if (!client.ok()) return client.status();
  if (absl::Status made = MakeDirectory(*dir); !made.ok()) return made;

  const std::vector<Output> outputs = {
      {"ca.pem", &ca->certificate_pem, false, "CA certificate"},
      {"ca.key", &ca->key_pem, true, "CA private key"},
      {"server.pem", &server->certificate_pem, false,
       absl::StrCat("server certificate for ", absl::StrJoin(hosts, ", "))},
      {"server.key", &server->key_pem, true, "server private key"},
      {"client.pem", &client->certificate_pem, false,
       "client certificate (clientAuth, CN=client)"},
      {"client.key", &client->key_pem, true, "client private key"},
  };
  for (const Output& output : outputs) {
    const std::string path = absl::StrCat(*dir, "/", output.name);
    if (absl::Status written =
            sluice::WritePemFile(path, *output.pem, output.is_private_key);
        !written.ok()) {
      return written;
    }
    absl::PrintF("wrote %-*s %s\n", static_cast<int>(dir->size()) + 11, path,
                 output.description);
  }
  absl::PrintF("valid for %d days; try them:\n", days);
  absl::PrintF(
      "  ./bazelw run //samples:tls_echo_server -- --cert=%s/server.pem "
      "--key=%s/server.key\n",
      *dir, *dir);
  absl::PrintF("  openssl s_client -connect 127.0.0.1:8443 -CAfile %s/ca.pem\n",
               *dir);
  absl::PrintF(
      "Mutual TLS: add --ca=%s/ca.pem to the server and "
      "-cert %s/client.pem -key %s/client.key to s_client.\n",
      *dir, *dir, *dir);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes a local CA and server and client certificates for TLS tests, "
      "e.g.: make_certs --out=/tmp/certs [--hosts=localhost,127.0.0.1,::1] "
      "[--days=30]");
  absl::ParseCommandLine(argc, argv);
  absl::Status status = Run();
  if (!status.ok()) {
    absl::FPrintF(stderr, "make_certs: %s\n", status.message());
    return 1;
  }
  return 0;
}
