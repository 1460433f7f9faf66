#ifndef SLUICE_TRANSPORTS_PROTOCOL_CALL_H_
#define SLUICE_TRANSPORTS_PROTOCOL_CALL_H_

#include <exception>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "framework/event_loop.h"
#include "framework/exceptions.h"

namespace sluice {

// Runs a protocol callback for a transport. A callback that throws is
// reported to the loop's error handler, and the returned kInternal status
// ("<what> on <where()>: <exception>") is what the transport closes with.
// `where` runs only then: this is on every read's path.
absl::Status CallProtocol(EventLoop& loop, const char* what,
                          absl::FunctionRef<std::string()> where,
                          absl::FunctionRef<void()> callback);

// Calls a protocol factory: kInternal if it throws or returns nothing.
template <class P>
absl::StatusOr<std::unique_ptr<P>> MakeProtocol(
    absl::AnyInvocable<std::unique_ptr<P>()>& factory) {
#if SLUICE_HAS_EXCEPTIONS
  try {
#endif
    std::unique_ptr<P> protocol = factory();
    if (protocol == nullptr) {
      return absl::InternalError("the protocol factory returned nothing");
    }
    return protocol;
#if SLUICE_HAS_EXCEPTIONS
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("the protocol factory failed: ", e.what()));
  } catch (...) {
    return absl::InternalError("the protocol factory failed");
  }
#endif
}

// One receive buffer per thread, shared by the transports of the loop that
// runs there: received data is only lent to a protocol for the duration of
// a callback, and a loop runs one callback at a time.
inline constexpr size_t kReceiveBufferSize = 256 * 1024;
char* ThreadReceiveBuffer();

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_PROTOCOL_CALL_H_
