#include "protocols/streams/stream_errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

constexpr char kPartialPayload[] = "sluice/streams/incomplete-read-partial";
constexpr char kConsumedPayload[] = "sluice/streams/limit-overrun-consumed";

}  // namespace

absl::Status IncompleteReadError(std::string_view partial,
                                 std::optional<size_t> expected) {
  absl::Status status = absl::OutOfRangeError(absl::StrCat(
      partial.size(), " bytes read on a total of ",
      expected.has_value() ? absl::StrCat(*expected) : "undefined",
      " expected bytes"));
  status.SetPayload(kPartialPayload, absl::Cord(std::string(partial)));
  return status;
}

bool IsIncompleteRead(const absl::Status& status) {
  return status.code() == absl::StatusCode::kOutOfRange &&
         status.GetPayload(kPartialPayload).has_value();
}

std::string IncompleteReadPartial(const absl::Status& status) {
  auto partial = status.GetPayload(kPartialPayload);
  return partial.has_value() ? std::string(*partial) : std::string();
}

absl::Status LimitOverrunError(std::string_view message, size_t consumed) {
  absl::Status status =
      absl::ResourceExhaustedError(absl::StrCat(std::string(message)));
  status.SetPayload(kConsumedPayload, absl::Cord(absl::StrCat(consumed)));
  return status;
}

bool IsLimitOverrun(const absl::Status& status) {
  return status.code() == absl::StatusCode::kResourceExhausted &&
         status.GetPayload(kConsumedPayload).has_value();
}

size_t LimitOverrunConsumed(const absl::Status& status) {
  auto consumed = status.GetPayload(kConsumedPayload);
  size_t value = 0;
  if (consumed.has_value()) {
    (void)absl::SimpleAtoi(std::string(*consumed), &value);
  }
  return value;
}

absl::Status InvalidLimitError() {
  return absl::InvalidArgumentError("the stream limit must be positive");
}

}  // namespace sluice
