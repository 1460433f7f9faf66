#ifndef SLUICE_PROTOCOLS_STREAMS_STREAM_ERRORS_H_
#define SLUICE_PROTOCOLS_STREAMS_STREAM_ERRORS_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace sluice {

// asyncio.IncompleteReadError as a status: the stream ended before a
// ReadExactly or ReadUntil was satisfied. kOutOfRange, carrying the bytes
// that were read (they are no longer in the reader) and, for ReadExactly,
// how many were expected.
absl::Status IncompleteReadError(std::string_view partial,
                                 std::optional<size_t> expected);
bool IsIncompleteRead(const absl::Status& status);
std::string IncompleteReadPartial(const absl::Status& status);

// asyncio.LimitOverrunError as a status: ReadUntil found no separator
// within the reader's limit. kResourceExhausted, carrying how many bytes
// had to be consumed; the data stays in the reader.
absl::Status LimitOverrunError(std::string_view message, size_t consumed);
bool IsLimitOverrun(const absl::Status& status);
size_t LimitOverrunConsumed(const absl::Status& status);

// A reader limit of 0: kInvalidArgument (asyncio's ValueError).
absl::Status InvalidLimitError();

}  // namespace sluice

#endif  // SLUICE_PROTOCOLS_STREAMS_STREAM_ERRORS_H_
