#ifndef SLUICE_TRANSPORTS_TLS_OPENSSL_UTIL_H_
#define SLUICE_TRANSPORTS_TLS_OPENSSL_UTIL_H_

#include <memory>
#include <string>

namespace sluice::tls_internal {

// Owns an OpenSSL object and frees it with `Free`:
//   OpenSslPtr<X509, X509_free> certificate(PEM_read_bio_X509(...));
template <auto Free>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* object) const {
    Free(object);
  }
};
template <class T, auto Free>
using OpenSslPtr = std::unique_ptr<T, OpenSslDeleter<Free>>;

// Empties this thread's OpenSSL error queue into one readable line
// ("certificate verify failed; ..."), or "unknown OpenSSL error" when it
// was empty. OpenSSL's calls report why they failed only through it.
std::string DrainOpenSslErrors();

}  // namespace sluice::tls_internal

#endif  // SLUICE_TRANSPORTS_TLS_OPENSSL_UTIL_H_
