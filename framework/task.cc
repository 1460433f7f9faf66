#include "framework/task.h"

#include <exception>

#include "framework/exceptions.h"

namespace sluice::internal {

absl::Status StatusFromCurrentException() {
#if SLUICE_HAS_EXCEPTIONS
  try {
    throw;
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("exception escaped a coroutine: ", e.what()));
  } catch (...) {
    return absl::InternalError("unknown exception escaped a coroutine");
  }
#else
  // Unreachable: nothing throws in a build without exceptions.
  return absl::InternalError("exception escaped a coroutine");
#endif
}

}  // namespace sluice::internal
