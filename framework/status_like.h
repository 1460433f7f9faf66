#ifndef SLUICE_FRAMEWORK_STATUS_LIKE_H_
#define SLUICE_FRAMEWORK_STATUS_LIKE_H_

#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice {

namespace internal {
template <class T>
struct IsStatusOr : std::false_type {};
template <class U>
struct IsStatusOr<absl::StatusOr<U>> : std::true_type {};
}  // namespace internal

// The result types of Task and Future: absl::Status or absl::StatusOr<U>.
// Requiring them lets cancellation, timeouts and a stopped loop surface as a
// status at every await point instead of as an exception.
template <class T>
concept StatusLike =
    std::is_same_v<T, absl::Status> || internal::IsStatusOr<T>::value;

// The status part of a StatusLike value.
inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <class U>
const absl::Status& StatusOf(const absl::StatusOr<U>& s) {
  return s.status();
}

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_STATUS_LIKE_H_
