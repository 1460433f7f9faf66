#include "transports/tls/certificates.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transports/tls/openssl_util.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

using tls_internal::OpenSslPtr;

using BioPtr = OpenSslPtr<BIO, BIO_free_all>;
using EvpPkeyPtr = OpenSslPtr<EVP_PKEY, EVP_PKEY_free>;
using X509Ptr = OpenSslPtr<X509, X509_free>;
using X509StorePtr = OpenSslPtr<X509_STORE, X509_STORE_free>;
using X509StoreCtxPtr =
    OpenSslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;

X509Ptr ParseCertificate(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

EvpPkeyPtr ParsePrivateKey(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return EvpPkeyPtr(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// X509_verify_cert's verdict on `leaf_pem` with only `trusted_pem` in the
// store: X509_V_OK, or the reason it failed. `purpose` 0 checks none.
int VerifyError(const std::string& leaf_pem, const std::string& trusted_pem,
                int purpose = 0) {
  X509Ptr leaf = ParseCertificate(leaf_pem);
  X509Ptr trusted = ParseCertificate(trusted_pem);
  EXPECT_NE(leaf, nullptr);
  EXPECT_NE(trusted, nullptr);
  if (leaf == nullptr || trusted == nullptr) return -1;
  X509StorePtr store(X509_STORE_new());
  EXPECT_EQ(X509_STORE_add_cert(store.get(), trusted.get()), 1);
  X509StoreCtxPtr context(X509_STORE_CTX_new());
  EXPECT_EQ(
      X509_STORE_CTX_init(context.get(), store.get(), leaf.get(), nullptr), 1);
  if (purpose != 0) {
    EXPECT_EQ(X509_STORE_CTX_set_purpose(context.get(), purpose), 1);
  }
  const int verified = X509_verify_cert(context.get());
  const int error = X509_STORE_CTX_get_error(context.get());
  EXPECT_EQ(verified == 1, error == X509_V_OK) << error;
  ERR_clear_error();
  return error;
}

KeyAndCertificate MakeCa(const std::string& name) {
  absl::StatusOr<KeyAndCertificate> ca =
      GenerateSelfSigned({.common_name = name, .is_ca = true});
  EXPECT_TRUE(ca.ok()) << ca.status();
  return ca.ok() ? *ca : KeyAndCertificate{};
}

CertificateOptions LocalhostOptions() {
  return {.common_name = "localhost",
          .dns_names = {"localhost", "*.sluice.test"},
          .ip_addresses = {"127.0.0.1", "::1"}};
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

TEST(CertificatesTest, IssuedCertificateVerifiesAgainstItsCa) {
  KeyAndCertificate ca = MakeCa("Sluice Test CA");
  absl::StatusOr<KeyAndCertificate> leaf =
      IssueCertificate(ca, LocalhostOptions());
  ASSERT_TRUE(leaf.ok()) << leaf.status();

  EXPECT_EQ(VerifyError(leaf->certificate_pem, ca.certificate_pem), X509_V_OK);
  EXPECT_EQ(VerifyError(leaf->certificate_pem, ca.certificate_pem,
                        X509_PURPOSE_SSL_SERVER),
            X509_V_OK);
}

TEST(CertificatesTest, CertificateMatchesItsSubjectAltNamesOnly) {
  KeyAndCertificate ca = MakeCa("Sluice Test CA");
  absl::StatusOr<KeyAndCertificate> leaf =
      IssueCertificate(ca, LocalhostOptions());
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  X509Ptr certificate = ParseCertificate(leaf->certificate_pem);
  ASSERT_NE(certificate, nullptr);

  EXPECT_EQ(X509_check_host(certificate.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(
      X509_check_host(certificate.get(), "api.sluice.test", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(certificate.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(certificate.get(), "::1", 0), 1);

  EXPECT_EQ(X509_check_host(certificate.get(), "example.com", 0, 0, nullptr),
            0);
  EXPECT_EQ(
      X509_check_host(certificate.get(), "a.b.sluice.test", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(certificate.get(), "127.0.0.2", 0), 0);
}

TEST(CertificatesTest, IssuedCertificateFailsAgainstAnotherCa) {
  KeyAndCertificate ca = MakeCa("Sluice Test CA");
  // Same name, different key: only the signature tells them apart.
  KeyAndCertificate impostor = MakeCa("Sluice Test CA");
  absl::StatusOr<KeyAndCertificate> leaf =
      IssueCertificate(ca, LocalhostOptions());
  ASSERT_TRUE(leaf.ok()) << leaf.status();

  EXPECT_EQ(VerifyError(leaf->certificate_pem, impostor.certificate_pem),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  KeyAndCertificate other = MakeCa("Other CA");
  EXPECT_EQ(VerifyError(leaf->certificate_pem, other.certificate_pem),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST(CertificatesTest, ExpiredCertificateFailsVerification) {
  KeyAndCertificate ca = MakeCa("Sluice Test CA");
  CertificateOptions options = LocalhostOptions();
  options.valid_for = absl::Hours(1);
  options.not_before_offset = absl::Hours(-2);
  absl::StatusOr<KeyAndCertificate> leaf = IssueCertificate(ca, options);
  ASSERT_TRUE(leaf.ok()) << leaf.status();

  EXPECT_EQ(VerifyError(leaf->certificate_pem, ca.certificate_pem),
            X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST(CertificatesTest, ANewCertificateIsValidForAClockAMinuteBehind) {
  absl::StatusOr<KeyAndCertificate> leaf =
      GenerateSelfSigned(LocalhostOptions());
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  X509Ptr certificate = ParseCertificate(leaf->certificate_pem);
  ASSERT_NE(certificate, nullptr);
  time_t a_minute_ago = absl::ToTimeT(absl::Now() - absl::Minutes(1));
  // notBefore is earlier: a peer whose clock is behind, or this host after
  // a clock step, accepts it.
  EXPECT_LT(X509_cmp_time(X509_get0_notBefore(certificate.get()),
                          &a_minute_ago),
            0);
}

TEST(CertificatesTest, NotYetValidCertificateFailsVerification) {
  KeyAndCertificate ca = MakeCa("Sluice Test CA");
  CertificateOptions options = LocalhostOptions();
  options.not_before_offset = absl::Hours(1);
  absl::StatusOr<KeyAndCertificate> leaf = IssueCertificate(ca, options);
  ASSERT_TRUE(leaf.ok()) << leaf.status();

  EXPECT_EQ(VerifyError(leaf->certificate_pem, ca.certificate_pem),
            X509_V_ERR_CERT_NOT_YET_VALID);
}

TEST(CertificatesTest, SelfSignedLeafVerifiesAsItsOwnTrustAnchor) {
  absl::StatusOr<KeyAndCertificate> leaf =
      GenerateSelfSigned(LocalhostOptions());
  ASSERT_TRUE(leaf.ok()) << leaf.status();

  EXPECT_EQ(VerifyError(leaf->certificate_pem, leaf->certificate_pem),
            X509_V_OK);
  X509Ptr certificate = ParseCertificate(leaf->certificate_pem);
  ASSERT_NE(certificate, nullptr);
  EXPECT_EQ(X509_check_ca(certificate.get()), 0);
}

TEST(CertificatesTest, CaIsACaAndLeafIsNot) {
  KeyAndCertificate ca = MakeCa("Sluice Test CA");
  absl::StatusOr<KeyAndCertificate> leaf =
      IssueCertificate(ca, LocalhostOptions());
  ASSERT_TRUE(leaf.ok()) << leaf.status();

  X509Ptr ca_certificate = ParseCertificate(ca.certificate_pem);
  X509Ptr leaf_certificate = ParseCertificate(leaf->certificate_pem);
  ASSERT_NE(ca_certificate, nullptr);
  ASSERT_NE(leaf_certificate, nullptr);
  EXPECT_EQ(X509_check_ca(ca_certificate.get()), 1);
  EXPECT_EQ(X509_check_ca(leaf_certificate.get()), 0);
  EXPECT_EQ(X509_get_version(leaf_certificate.get()), X509_VERSION_3);
  EXPECT_EQ(X509_get_signature_nid(leaf_certificate.get()),
            NID_ecdsa_with_SHA256);
  // authorityKeyIdentifier names the CA's subjectKeyIdentifier.
  const ASN1_OCTET_STRING* ca_key_id =
      X509_get0_subject_key_id(ca_certificate.get());
  const ASN1_OCTET_STRING* authority_key_id =
      X509_get0_authority_key_id(leaf_certificate.get());
  ASSERT_NE(ca_key_id, nullptr);
  ASSERT_NE(authority_key_id, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(ca_key_id, authority_key_id), 0);
}

TEST(CertificatesTest, IssuerMustBeACa) {
  absl::StatusOr<KeyAndCertificate> leaf =
      GenerateSelfSigned(LocalhostOptions());
  ASSERT_TRUE(leaf.ok()) << leaf.status();

  absl::StatusOr<KeyAndCertificate> issued =
      IssueCertificate(*leaf, LocalhostOptions());
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CertificatesTest, ClientCertificateIsForClientsOnly) {
  KeyAndCertificate ca = MakeCa("Sluice Test CA");
  absl::StatusOr<KeyAndCertificate> client =
      IssueCertificate(ca, {.common_name = "client", .client_auth = true});
  ASSERT_TRUE(client.ok()) << client.status();

  EXPECT_EQ(VerifyError(client->certificate_pem, ca.certificate_pem,
                        X509_PURPOSE_SSL_CLIENT),
            X509_V_OK);
  EXPECT_EQ(VerifyError(client->certificate_pem, ca.certificate_pem,
                        X509_PURPOSE_SSL_SERVER),
            X509_V_ERR_INVALID_PURPOSE);
}

TEST(CertificatesTest, KeyMatchesCertificate) {
  KeyAndCertificate ca = MakeCa("Sluice Test CA");
  absl::StatusOr<KeyAndCertificate> leaf =
      IssueCertificate(ca, LocalhostOptions());
  ASSERT_TRUE(leaf.ok()) << leaf.status();

  X509Ptr certificate = ParseCertificate(leaf->certificate_pem);
  EvpPkeyPtr key = ParsePrivateKey(leaf->key_pem);
  EvpPkeyPtr ca_key = ParsePrivateKey(ca.key_pem);
  ASSERT_NE(certificate, nullptr);
  ASSERT_NE(key, nullptr);
  ASSERT_NE(ca_key, nullptr);
  EXPECT_EQ(X509_check_private_key(certificate.get(), key.get()), 1);
  EXPECT_EQ(X509_check_private_key(certificate.get(), ca_key.get()), 0);
  ERR_clear_error();
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 256);
  EXPECT_THAT(leaf->key_pem, HasSubstr("-----BEGIN PRIVATE KEY-----"));
}

TEST(CertificatesTest, FingerprintIsSha256OfTheCertificate) {
  absl::StatusOr<KeyAndCertificate> first =
      GenerateSelfSigned(LocalhostOptions());
  absl::StatusOr<KeyAndCertificate> second =
      GenerateSelfSigned(LocalhostOptions());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();

  absl::StatusOr<std::string> fingerprint =
      CertificateFingerprint(first->certificate_pem);
  ASSERT_TRUE(fingerprint.ok()) << fingerprint.status();
  EXPECT_EQ(fingerprint->size(), 95u);
  EXPECT_THAT(*fingerprint,
              MatchesRegex("([0-9A-F][0-9A-F]:){31}[0-9A-F][0-9A-F]"));

  absl::StatusOr<std::string> again =
      CertificateFingerprint(first->certificate_pem);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *fingerprint);
  absl::StatusOr<std::string> other =
      CertificateFingerprint(second->certificate_pem);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(*other, *fingerprint);
}

TEST(CertificatesTest, FingerprintOfGarbageNamesTheStep) {
  absl::StatusOr<std::string> fingerprint =
      CertificateFingerprint("not a certificate");
  EXPECT_EQ(fingerprint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fingerprint.status().message(),
              HasSubstr("parse certificate PEM: no start line"));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(CertificatesTest, InvalidIpAddressIsRejected) {
  for (const char* ip_address : {"127.0.0.256", "1.2.3.4x", "localhost", ""}) {
    CertificateOptions options = LocalhostOptions();
    options.ip_addresses = {ip_address};
    absl::StatusOr<KeyAndCertificate> certificate = GenerateSelfSigned(options);
    EXPECT_EQ(certificate.status().code(), absl::StatusCode::kInvalidArgument)
        << ip_address;
    EXPECT_THAT(certificate.status().message(),
                HasSubstr(absl::StrCat("\"", ip_address, "\"")));
  }
}

TEST(CertificatesTest, NamelessCertificateIsRejected) {
  absl::StatusOr<KeyAndCertificate> certificate = GenerateSelfSigned({});
  EXPECT_EQ(certificate.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CertificatesTest, NonPositiveValidityIsRejected) {
  CertificateOptions options = LocalhostOptions();
  options.valid_for = absl::ZeroDuration();
  EXPECT_EQ(GenerateSelfSigned(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CertificatesTest, ValidityPastTheYear9999IsRejected) {
  absl::StatusOr<KeyAndCertificate> forever = GenerateSelfSigned(
      {.common_name = "forever", .valid_for = absl::Hours(24 * 365) * 8000});
  EXPECT_EQ(forever.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(forever.status().message(), HasSubstr("9999"));
}

TEST(CertificatesTest, WritePemFileWritesTheContent) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/cert.pem");
  ASSERT_TRUE(WritePemFile(path, "first, longer content", false).ok());
  absl::Status status = WritePemFile(path, "certificate", false);
  ASSERT_TRUE(status.ok()) << status;

  EXPECT_EQ(ReadFile(path), "certificate");
}

TEST(CertificatesTest, KeyFileHasMode0600) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/key.pem");
  ASSERT_TRUE(WritePemFile(path, "public", false).ok());
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);

  // Replacing a readable file narrows it too.
  absl::Status status = WritePemFile(path, "secret", true);
  ASSERT_TRUE(status.ok()) << status;

  struct stat info;
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadFile(path), "secret");
}

TEST(CertificatesTest, WritePemFileNamesThePathOnFailure) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/no/such/dir/key.pem");
  absl::Status status = WritePemFile(path, "secret", true);

  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("No such file or directory"));
}

}  // namespace
}  // namespace sluice
