#include "transports/protocol_call.h"

#include <exception>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"

namespace sluice {

absl::Status CallProtocol(EventLoop& loop, const char* what,
                          absl::FunctionRef<std::string()> where,
                          absl::FunctionRef<void()> callback) {
#if SLUICE_HAS_EXCEPTIONS
  std::string failure;
  try {
    callback();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
#else
  (void)loop;
  (void)what;
  (void)where;
  callback();
  return absl::OkStatus();
#endif
#if SLUICE_HAS_EXCEPTIONS
  absl::Status error = absl::InternalError(
      absl::StrCat(what, " on ", where(), ": ", failure));
  loop.ReportError(LoopError{what, error});
  return error;
#endif
}

char* ThreadReceiveBuffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kReceiveBufferSize]);
  return buffer.get();
}

}  // namespace sluice
