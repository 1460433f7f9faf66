#include "protocols/streams/stream_reader.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace sluice {

using streams_internal::ReadRequest;

StreamReader::ReadAwaiter StreamReader::Read(int64_t n) {
  if (n < 0) return ReadAwaiter(state_, ReadRequest(ReadRequest::Kind::kToEof, 0));
  return ReadAwaiter(state_, ReadRequest(ReadRequest::Kind::kSome,
                                         static_cast<size_t>(n)));
}

StreamReader::ReadAwaiter StreamReader::ReadExactly(int64_t n) {
  if (n < 0) {
    return ReadAwaiter(state_, absl::InvalidArgumentError(
                                   "ReadExactly size can not be less than zero"));
  }
  return ReadAwaiter(state_, ReadRequest(ReadRequest::Kind::kExactly,
                                         static_cast<size_t>(n)));
}

StreamReader::ReadAwaiter StreamReader::ReadUntil(std::string separator) {
  if (separator.empty()) {
    return ReadAwaiter(state_, absl::InvalidArgumentError(
                                   "Separator should be at least one-byte string"));
  }
  return ReadAwaiter(state_, ReadRequest(ReadRequest::Kind::kUntil, 0,
                                         std::move(separator)));
}

StreamReader::ReadAwaiter StreamReader::ReadLine() {
  return ReadAwaiter(state_, ReadRequest(ReadRequest::Kind::kLine, 0, "\n"));
}

StreamReader::ReadAwaiter::ReadAwaiter(
    std::shared_ptr<streams_internal::StreamState> state, absl::Status rejected)
    : state_(std::move(state)),
      request_(ReadRequest::Kind::kSome, 0),
      result_(std::move(rejected)) {}

StreamReader::ReadAwaiter::ReadAwaiter(ReadAwaiter&& other) noexcept
    : state_(std::move(other.state_)),
      request_(std::move(other.request_)),
      result_(std::move(other.result_)) {}

StreamReader::ReadAwaiter::~ReadAwaiter() {
  // The awaiting coroutine is destroyed while it waits.
  if (waiter_.has_value()) state_->EndRead(request_);
}

bool StreamReader::ReadAwaiter::await_ready() {
  if (result_.has_value()) return true;
  if (state_->reader() != nullptr) {
    result_ = absl::FailedPreconditionError(absl::StrCat(
        request_.name(),
        " called while another coroutine is already waiting for incoming "
        "data"));
    return true;
  }
  if (!request_.Ready(*state_)) return false;
  result_ = request_.Take(*state_);
  return true;
}

absl::StatusOr<std::string> StreamReader::ReadAwaiter::await_resume() {
  if (result_.has_value()) return *std::move(result_);
  absl::Status woken = waiter_->await_resume();
  state_->EndRead(request_);
  if (!woken.ok()) return woken;  // Cancelled, or the connection failed.
  return request_.Take(*state_);
}

}  // namespace sluice
