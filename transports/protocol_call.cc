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

std::unique_ptr<Protocol> SwapProtocol(EventLoop& loop,
                                       std::unique_ptr<Protocol>& current,
                                       std::unique_ptr<Protocol> next,
                                       absl::FunctionRef<std::string()> where) {
  if (next == nullptr) {
    loop.ReportError(LoopError{
        "SetProtocol refused",
        absl::InvalidArgumentError(absl::StrCat(
            "SetProtocol(nullptr) on ", where(), ": the protocol is kept"))});
    return nullptr;
  }
  std::swap(current, next);
  // A failure is only reported: the handover has happened.
  CallProtocol(loop, "protocol ConnectionHandedOver() failed", where,
               [&] { next->ConnectionHandedOver(); })
      .IgnoreError();
  return next;
}

void PauseIfWritingPaused(EventLoop& loop, Protocol& installed,
                          bool write_paused,
                          absl::FunctionRef<std::string()> where) {
  if (!write_paused) return;
  // Failures of PauseWriting are only reported, as in asyncio.
  CallProtocol(loop, "protocol PauseWriting() failed", where,
               [&] { installed.PauseWriting(); })
      .IgnoreError();
}

char* ThreadReceiveBuffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kReceiveBufferSize]);
  return buffer.get();
}

}  // namespace sluice
