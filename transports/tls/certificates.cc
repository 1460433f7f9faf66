#include "transports/tls/certificates.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "transports/tls/openssl_util.h"

namespace sluice {
namespace {

using tls_internal::OpenSslPtr;

using Asn1StringPtr = OpenSslPtr<ASN1_STRING, ASN1_STRING_free>;
using BignumPtr = OpenSslPtr<BIGNUM, BN_free>;
using BioPtr = OpenSslPtr<BIO, BIO_free_all>;
using EvpPkeyPtr = OpenSslPtr<EVP_PKEY, EVP_PKEY_free>;
using GeneralNamePtr =
    OpenSslPtr<GENERAL_NAME, GENERAL_NAME_free>;
using GeneralNamesPtr =
    OpenSslPtr<GENERAL_NAMES, GENERAL_NAMES_free>;
using X509ExtensionPtr =
    OpenSslPtr<X509_EXTENSION, X509_EXTENSION_free>;
using X509Ptr = OpenSslPtr<X509, X509_free>;

// `step` failed in OpenSSL: a status with OpenSSL's reason. Clears the error
// queue, so stale errors cannot show up in a later report.
absl::Status OpenSslError(std::string_view step,
                          absl::StatusCode code = absl::StatusCode::kInternal) {
  return absl::Status(code, absl::StrCat(std::string(step), ": ",
                                         tls_internal::DrainOpenSslErrors()));
}

absl::StatusOr<BioPtr> ReadOnlyBio(std::string_view data) {
  if (data.size() > INT_MAX) {
    return absl::InvalidArgumentError("PEM larger than 2 GiB");
  }
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (bio == nullptr) return OpenSslError("create memory BIO");
  return bio;
}

absl::StatusOr<X509Ptr> ParseCertificate(std::string_view pem) {
  absl::StatusOr<BioPtr> bio = ReadOnlyBio(pem);
  if (!bio.ok()) return bio.status();
  X509Ptr certificate(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (certificate == nullptr) {
    return OpenSslError("parse certificate PEM",
                        absl::StatusCode::kInvalidArgument);
  }
  return certificate;
}

absl::StatusOr<EvpPkeyPtr> ParsePrivateKey(std::string_view pem) {
  absl::StatusOr<BioPtr> bio = ReadOnlyBio(pem);
  if (!bio.ok()) return bio.status();
  EvpPkeyPtr key(
      PEM_read_bio_PrivateKey(bio->get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return OpenSslError("parse private key PEM",
                        absl::StatusCode::kInvalidArgument);
  }
  return key;
}

// Runs `write_pem` (a PEM_write_bio_* call) into a memory BIO and returns what
// it wrote.
template <typename WritePem>
absl::StatusOr<std::string> ToPem(std::string_view step, WritePem write_pem) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) return OpenSslError("create memory BIO");
  if (write_pem(bio.get()) != 1) return OpenSslError(step);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// Appends a GENERAL_NAME of `type` (GEN_DNS or GEN_IPADD) whose value is an
// ASN.1 string of `string_type` holding `value`.
absl::Status AppendGeneralName(GENERAL_NAMES* names, int type, int string_type,
                               const void* value, size_t size) {
  Asn1StringPtr string(ASN1_STRING_type_new(string_type));
  if (string == nullptr ||
      ASN1_STRING_set(string.get(), value, static_cast<int>(size)) != 1) {
    return OpenSslError("create subjectAltName value");
  }
  GeneralNamePtr name(GENERAL_NAME_new());
  if (name == nullptr) return OpenSslError("create subjectAltName entry");
  GENERAL_NAME_set0_value(name.get(), type, string.release());
  if (sk_GENERAL_NAME_push(names, name.get()) == 0) {
    return OpenSslError("append subjectAltName entry");
  }
  name.release();  // Owned by `names` now.
  return absl::OkStatus();
}

// Every character of an IA5String DNS name is printable ASCII.
bool IsValidDnsName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

// The subjectAltName entries of `options`, in order: DNS names, then IPs.
absl::StatusOr<GeneralNamesPtr> SubjectAltNames(
    const CertificateOptions& options) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (names == nullptr) return OpenSslError("create subjectAltName");
  for (const std::string& dns_name : options.dns_names) {
    if (!IsValidDnsName(dns_name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid DNS name \"", dns_name, "\""));
    }
    absl::Status status =
        AppendGeneralName(names.get(), GEN_DNS, V_ASN1_IA5STRING,
                          dns_name.data(), dns_name.size());
    if (!status.ok()) return status;
  }
  for (const std::string& ip_address : options.ip_addresses) {
    // inet_pton, unlike OpenSSL's a2i_IPADDRESS, rejects trailing garbage.
    unsigned char address[sizeof(in6_addr)];
    size_t size = 0;
    if (inet_pton(AF_INET, ip_address.c_str(), address) == 1) {
      size = sizeof(in_addr);
    } else if (inet_pton(AF_INET6, ip_address.c_str(), address) == 1) {
      size = sizeof(in6_addr);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid IP address \"", ip_address, "\""));
    }
    absl::Status status = AppendGeneralName(names.get(), GEN_IPADD,
                                            V_ASN1_OCTET_STRING, address, size);
    if (!status.ok()) return status;
  }
  return names;
}

// Adds the extension `nid` written in openssl.cnf syntax, e.g.
// "critical,CA:TRUE".
absl::Status AddExtension(X509* certificate, X509V3_CTX* context, int nid,
                          const char* value) {
  X509ExtensionPtr extension(
      X509V3_EXT_nconf_nid(nullptr, context, nid, value));
  if (extension == nullptr ||
      X509_add_ext(certificate, extension.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("add ", OBJ_nid2sn(nid), " extension"));
  }
  return absl::OkStatus();
}

absl::Status AddExtensions(X509* certificate, X509* issuer,
                           const CertificateOptions& options,
                           GENERAL_NAMES* alt_names) {
  X509V3_CTX context{};
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  struct Extension {
    int nid;
    const char* value;
  };
  std::vector<Extension> extensions;
  if (options.is_ca) {
    extensions.push_back({NID_basic_constraints, "critical,CA:TRUE"});
    extensions.push_back({NID_key_usage, "critical,keyCertSign,cRLSign"});
  } else {
    extensions.push_back({NID_basic_constraints, "critical,CA:FALSE"});
    // ECDHE-ECDSA, all a P-256 key does in TLS, needs digitalSignature only.
    extensions.push_back({NID_key_usage, "critical,digitalSignature"});
    extensions.push_back(
        {NID_ext_key_usage, options.client_auth ? "clientAuth" : "serverAuth"});
  }
  // The subject's key identifier first: a self-signed certificate is its
  // own issuer, whose identifier authorityKeyIdentifier copies.
  extensions.push_back({NID_subject_key_identifier, "hash"});
  extensions.push_back({NID_authority_key_identifier, "keyid:always"});
  for (const Extension& extension : extensions) {
    absl::Status status =
        AddExtension(certificate, &context, extension.nid, extension.value);
    if (!status.ok()) return status;
  }
  if (sk_GENERAL_NAME_num(alt_names) > 0) {
    // RFC 5280 4.2.1.6: critical when the subject name is empty.
    const int critical = options.common_name.empty() ? 1 : 0;
    if (X509_add1_ext_i2d(certificate, NID_subject_alt_name, alt_names,
                          critical, X509V3_ADD_DEFAULT) != 1) {
      return OpenSslError("add subjectAltName extension");
    }
  }
  return absl::OkStatus();
}

absl::Status SetRandomSerial(X509* certificate) {
  BignumPtr serial(BN_new());
  if (serial == nullptr ||
      BN_rand(serial.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) {
    return OpenSslError("generate serial number");
  }
  if (BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(certificate)) ==
      nullptr) {
    return OpenSslError("set serial number");
  }
  return absl::OkStatus();
}

absl::Status SetValidity(X509* certificate, const CertificateOptions& options) {
  const absl::Time not_before = absl::Now() + options.not_before_offset;
  const absl::Time not_after = not_before + options.valid_for;
  // X.509 times end with the year 9999 (RFC 5280's GeneralizedTime);
  // OpenSSL would write an unreadable one past it.
  const absl::Time last = absl::FromCivil(absl::CivilSecond(9999, 12, 31, 23, 59, 59),
                                          absl::UTCTimeZone());
  if (not_after > last || not_before > last) {
    return absl::InvalidArgumentError(
        "certificate validity must end by the year 9999");
  }
  if (ASN1_TIME_set(X509_getm_notBefore(certificate),
                    absl::ToTimeT(not_before)) == nullptr) {
    return OpenSslError("set notBefore");
  }
  if (ASN1_TIME_set(X509_getm_notAfter(certificate),
                    absl::ToTimeT(not_after)) == nullptr) {
    return OpenSslError("set notAfter");
  }
  return absl::OkStatus();
}

// Makes a certificate for `options` signed by `issuer` with `issuer_key`,
// or self-signed when `issuer` is null.
absl::StatusOr<KeyAndCertificate> MakeCertificate(
    const CertificateOptions& options, X509* issuer, EVP_PKEY* issuer_key) {
  if (options.common_name.empty() && options.dns_names.empty() &&
      options.ip_addresses.empty()) {
    return absl::InvalidArgumentError(
        "certificate needs a common name or a subjectAltName");
  }
  if (options.valid_for <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate validity must be positive, not ",
                     absl::FormatDuration(options.valid_for)));
  }
  absl::StatusOr<GeneralNamesPtr> alt_names = SubjectAltNames(options);
  if (!alt_names.ok()) return alt_names.status();

  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key == nullptr) return OpenSslError("generate P-256 key");

  X509Ptr certificate(X509_new());
  if (certificate == nullptr) return OpenSslError("create certificate");
  if (X509_set_version(certificate.get(), X509_VERSION_3) != 1) {
    return OpenSslError("set certificate version");
  }
  if (absl::Status status = SetRandomSerial(certificate.get()); !status.ok()) {
    return status;
  }
  if (absl::Status status = SetValidity(certificate.get(), options);
      !status.ok()) {
    return status;
  }
  X509_NAME* subject = X509_get_subject_name(certificate.get());
  if (!options.common_name.empty() &&
      X509_NAME_add_entry_by_NID(
          subject, NID_commonName, MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(options.common_name.data()),
          static_cast<int>(options.common_name.size()), -1, 0) != 1) {
    // Only the input can fail this, e.g. a CN over 64 characters.
    return OpenSslError("set subject common name",
                        absl::StatusCode::kInvalidArgument);
  }
  X509* signer = issuer != nullptr ? issuer : certificate.get();
  if (X509_set_issuer_name(certificate.get(), X509_get_subject_name(signer)) !=
      1) {
    return OpenSslError("set issuer name");
  }
  if (X509_set_pubkey(certificate.get(), key.get()) != 1) {
    return OpenSslError("set public key");
  }
  if (absl::Status status =
          AddExtensions(certificate.get(), signer, options, alt_names->get());
      !status.ok()) {
    return status;
  }
  EVP_PKEY* signing_key = issuer_key != nullptr ? issuer_key : key.get();
  if (X509_sign(certificate.get(), signing_key, EVP_sha256()) == 0) {
    return OpenSslError("sign certificate");
  }

  absl::StatusOr<std::string> key_pem =
      ToPem("write private key PEM", [&](BIO* bio) {
        return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0,
                                        nullptr, nullptr);
      });
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::string> certificate_pem = ToPem(
      "write certificate PEM",
      [&](BIO* bio) { return PEM_write_bio_X509(bio, certificate.get()); });
  if (!certificate_pem.ok()) return certificate_pem.status();
  return KeyAndCertificate{.key_pem = *std::move(key_pem),
                           .certificate_pem = *std::move(certificate_pem)};
}

absl::Status FileError(absl::StatusCode code, std::string_view operation,
                       const std::string& path, int error) {
  return absl::Status(code, absl::StrCat(std::string(operation), " ", path,
                                         ": ", strerror(error)));
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t written = write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return FileError(absl::StatusCode::kInternal, "write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(written));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<KeyAndCertificate> GenerateSelfSigned(
    const CertificateOptions& options) {
  return MakeCertificate(options, /*issuer=*/nullptr, /*issuer_key=*/nullptr);
}

absl::StatusOr<KeyAndCertificate> IssueCertificate(
    const KeyAndCertificate& issuer, const CertificateOptions& options) {
  absl::StatusOr<X509Ptr> issuer_certificate =
      ParseCertificate(issuer.certificate_pem);
  if (!issuer_certificate.ok()) return issuer_certificate.status();
  absl::StatusOr<EvpPkeyPtr> issuer_key = ParsePrivateKey(issuer.key_pem);
  if (!issuer_key.ok()) return issuer_key.status();
  if (X509_check_ca(issuer_certificate->get()) == 0) {
    return absl::InvalidArgumentError("issuer certificate is not a CA");
  }
  if (X509_check_private_key(issuer_certificate->get(), issuer_key->get()) !=
      1) {
    return OpenSslError("match issuer key to its certificate",
                        absl::StatusCode::kInvalidArgument);
  }
  return MakeCertificate(options, issuer_certificate->get(), issuer_key->get());
}

absl::StatusOr<std::string> CertificateFingerprint(
    std::string_view certificate_pem) {
  absl::StatusOr<X509Ptr> certificate = ParseCertificate(certificate_pem);
  if (!certificate.ok()) return certificate.status();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(certificate->get(), EVP_sha256(), digest, &size) != 1) {
    return OpenSslError("digest certificate");
  }
  static constexpr char kHexDigits[] = "0123456789ABCDEF";
  std::string fingerprint;
  fingerprint.reserve(size * 3);
  for (unsigned int i = 0; i < size; ++i) {
    if (i > 0) fingerprint.push_back(':');
    fingerprint.push_back(kHexDigits[digest[i] >> 4]);
    fingerprint.push_back(kHexDigits[digest[i] & 0xF]);
  }
  return fingerprint;
}

absl::Status WritePemFile(const std::string& path, std::string_view pem,
                          bool is_private_key) {
  if (path.empty()) return absl::InvalidArgumentError("empty PEM file path");
  const mode_t mode = is_private_key ? 0600 : 0644;
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return FileError(absl::StatusCode::kInvalidArgument, "open", path, errno);
  }
  absl::Status status;
  // open() keeps an existing file's mode: narrow it before the key is in.
  if (is_private_key && fchmod(fd, mode) != 0) {
    status = FileError(absl::StatusCode::kInternal, "chmod", path, errno);
  }
  if (status.ok()) status = WriteAll(fd, pem, path);
  if (close(fd) != 0 && status.ok()) {
    status = FileError(absl::StatusCode::kInternal, "close", path, errno);
  }
  return status;
}

}  // namespace sluice
