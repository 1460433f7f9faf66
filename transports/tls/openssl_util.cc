#include "transports/tls/openssl_util.h"

#include <openssl/err.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace sluice::tls_internal {

std::string DrainOpenSslErrors() {
  std::string errors;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long error = ERR_get_error_all(nullptr, nullptr, nullptr,
                                                 &data, &flags)) {
    if (!errors.empty()) errors.append("; ");
    const char* reason = ERR_reason_error_string(error);
    absl::StrAppend(&errors, reason != nullptr ? reason : "error",
                    " (", ERR_lib_error_string(error) != nullptr
                              ? ERR_lib_error_string(error)
                              : "OpenSSL",
                    ")");
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      absl::StrAppend(&errors, ": ", data);
    }
  }
  return errors.empty() ? std::string("unknown OpenSSL error") : errors;
}

}  // namespace sluice::tls_internal
