#include "transports/socket_error.h"

#include <errno.h>
#include <string.h>

#include "absl/strings/str_cat.h"

namespace sluice {

absl::Status SocketError(int error, std::string_view operation,
                         std::string_view where) {
  // Debian's Abseil has its own string_view, so StrCat takes std::string.
  std::string message =
      where.empty()
          ? absl::StrCat(std::string(operation), ": ", strerror(error))
          : absl::StrCat(std::string(operation), " ", std::string(where), ": ",
                         strerror(error));
  switch (error) {
    case ECONNRESET:
    case EPIPE:
    case ECONNREFUSED:
    case ECONNABORTED:
    case ENETUNREACH:
    case ENETDOWN:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENOTCONN:
      return absl::UnavailableError(message);
    case ETIMEDOUT:
      return absl::DeadlineExceededError(message);
    default:
      return absl::ErrnoToStatus(error, message);
  }
}

}  // namespace sluice
