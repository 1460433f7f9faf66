#include "protocols/streams/stream_reader.h"

#include <algorithm>
#include <utility>

#include "protocols/streams/stream_errors.h"

namespace sluice {

Task<absl::StatusOr<std::string>> StreamReader::Read(int64_t n) {
  // Keeps the state alive across the awaits, whatever happens to `this`.
  std::shared_ptr<streams_internal::StreamState> state = state_;
  if (!state->exception().ok()) co_return state->exception();
  if (n == 0) co_return std::string();
  if (n < 0) {
    std::string all;
    while (true) {
      while (state->buffered_size() == 0 && !state->eof()) {
        absl::Status waited = co_await state->WaitForData("Read()");
        if (!waited.ok()) co_return waited;
      }
      if (state->buffered_size() == 0) co_return all;
      all.append(state->buffered());
      state->Consume(state->buffered_size());
    }
  }
  while (state->buffered_size() == 0 && !state->eof()) {
    absl::Status waited = co_await state->WaitForData("Read()");
    if (!waited.ok()) co_return waited;
  }
  size_t take = std::min(static_cast<size_t>(n), state->buffered_size());
  std::string data(state->buffered().substr(0, take));
  state->Consume(take);
  co_return data;
}

Task<absl::StatusOr<std::string>> StreamReader::ReadExactly(int64_t n) {
  std::shared_ptr<streams_internal::StreamState> state = state_;
  if (n < 0) {
    co_return absl::InvalidArgumentError("ReadExactly size can not be less than zero");
  }
  if (!state->exception().ok()) co_return state->exception();
  if (n == 0) co_return std::string();
  const size_t wanted = static_cast<size_t>(n);
  while (state->buffered_size() < wanted) {
    if (state->eof()) {
      std::string partial(state->buffered());
      state->Consume(partial.size());
      co_return IncompleteReadError(partial, wanted);
    }
    absl::Status waited = co_await state->WaitForData("ReadExactly()");
    if (!waited.ok()) co_return waited;
  }
  std::string data(state->buffered().substr(0, wanted));
  state->Consume(wanted);
  co_return data;
}

Task<absl::StatusOr<std::string>> StreamReader::ReadUntil(std::string separator) {
  std::shared_ptr<streams_internal::StreamState> state = state_;
  if (separator.empty()) {
    co_return absl::InvalidArgumentError(
        "Separator should be at least one-byte string");
  }
  if (!state->exception().ok()) co_return state->exception();
  // Where the search resumes: bytes before it cannot start the separator.
  size_t offset = 0;
  while (true) {
    std::string_view buffered = state->buffered();
    size_t found = buffered.find(separator, offset);
    if (found != std::string_view::npos) {
      // The limit counts the data without the separator (asyncio).
      if (found > state->limit()) {
        co_return LimitOverrunError(
            "Separator is found, but chunk is longer than limit", found);
      }
      size_t take = found + separator.size();
      std::string data(buffered.substr(0, take));
      state->Consume(take);
      co_return data;
    }
    offset = buffered.size() + 1 > separator.size()
                 ? buffered.size() + 1 - separator.size()
                 : 0;
    if (offset > state->limit()) {
      co_return LimitOverrunError(
          "Separator is not found, and chunk exceed the limit", offset);
    }
    if (state->eof()) {
      std::string partial(buffered);
      state->Consume(partial.size());
      co_return IncompleteReadError(partial, std::nullopt);
    }
    absl::Status waited = co_await state->WaitForData("ReadUntil()");
    if (!waited.ok()) co_return waited;
  }
}

Task<absl::StatusOr<std::string>> StreamReader::ReadLine() {
  std::shared_ptr<streams_internal::StreamState> state = state_;
  Task<absl::StatusOr<std::string>> until = ReadUntil("\n");
  absl::StatusOr<std::string> line = co_await std::move(until);
  if (line.ok()) co_return line;
  const absl::Status& error = line.status();
  if (IsIncompleteRead(error)) co_return IncompleteReadPartial(error);
  if (IsLimitOverrun(error)) {
    // Drop the oversized line: through its newline if it is there.
    size_t consumed = LimitOverrunConsumed(error);
    std::string_view buffered = state->buffered();
    if (consumed < buffered.size() && buffered[consumed] == '\n') {
      state->Consume(consumed + 1);
    } else {
      state->Consume(buffered.size());
    }
  }
  co_return error;
}

}  // namespace sluice
