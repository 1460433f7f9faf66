#include "framework/flow_control.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

void CallReporting(EventLoop& loop, const char* what, BaseProtocol& protocol,
                   void (BaseProtocol::*callback)()) {
  try {
    (protocol.*callback)();
  } catch (const std::exception& e) {
    loop.ReportError(LoopError{what, absl::InternalError(e.what())});
  } catch (...) {
    loop.ReportError(LoopError{what, absl::InternalError("unknown exception")});
  }
}

}  // namespace

absl::Status FlowControl::SetLimits(std::optional<size_t> high,
                                    std::optional<size_t> low) {
  size_t new_high;
  size_t new_low;
  if (!high.has_value() && !low.has_value()) {
    new_high = kDefaultHighWater;
    new_low = new_high / 4;
  } else if (!high.has_value()) {
    new_low = *low;
    new_high = 4 * new_low;
  } else {
    new_high = *high;
    new_low = low.has_value() ? *low : new_high / 4;
  }
  if (new_low > new_high) {
    return absl::InvalidArgumentError(absl::StrCat(
        "write buffer limits: low (", new_low, ") must be <= high (",
        new_high, ")"));
  }
  high_ = new_high;
  low_ = new_low;
  return absl::OkStatus();
}

absl::Status FlowControl::SetLimitsAndCheck(std::optional<size_t> high,
                                            std::optional<size_t> low,
                                            size_t size,
                                            BaseProtocol& protocol) {
  absl::Status set = SetLimits(high, low);
  if (set.ok() && size > high_) Update(size, protocol);
  return set;
}

void FlowControl::Update(size_t size, BaseProtocol& protocol) {
  if (!paused_ && size > high_) {
    // The flag first: the callback may write, and re-enter Update.
    paused_ = true;
    CallReporting(loop_, "protocol PauseWriting() failed", protocol,
                  &BaseProtocol::PauseWriting);
  } else if (paused_ && size <= low_) {
    paused_ = false;
    CallReporting(loop_, "protocol ResumeWriting() failed", protocol,
                  &BaseProtocol::ResumeWriting);
  }
}

}  // namespace sluice
