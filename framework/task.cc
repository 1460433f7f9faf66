#include "framework/task.h"

#include <exception>

namespace sluice::internal {

absl::Status StatusFromCurrentException() {
  try {
    throw;
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("exception escaped a coroutine: ", e.what()));
  } catch (...) {
    return absl::InternalError("unknown exception escaped a coroutine");
  }
}

}  // namespace sluice::internal
