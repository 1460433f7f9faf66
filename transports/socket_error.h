#ifndef SLUICE_TRANSPORTS_SOCKET_ERROR_H_
#define SLUICE_TRANSPORTS_SOCKET_ERROR_H_

#include <string_view>

#include "absl/status/status.h"

namespace sluice {

// A socket call's errno as a status that says what failed and where:
// "send to 127.0.0.1:80: Connection reset by peer". Network failures (peer
// reset, broken pipe, refused, unreachable) are kUnavailable and a timeout
// kDeadlineExceeded, so callers can branch on the code; the rest follow
// absl::ErrnoToStatus.
absl::Status SocketError(int error, std::string_view operation,
                         std::string_view where = {});

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_SOCKET_ERROR_H_
