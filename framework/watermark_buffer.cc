#include "framework/watermark_buffer.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace sluice {

absl::Status WatermarkBuffer::SetLimits(std::optional<size_t> high,
                                        std::optional<size_t> low) {
  size_t new_high;
  size_t new_low;
  if (!high.has_value() && !low.has_value()) {
    new_high = kDefaultHighWater;
    new_low = new_high / 4;
  } else if (!high.has_value()) {
    if (*low > std::numeric_limits<size_t>::max() / 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "write buffer limits: low (", *low, ") is too large to derive high"));
    }
    new_low = *low;
    new_high = 4 * new_low;
  } else {
    new_high = *high;
    new_low = low.has_value() ? *low : new_high / 4;
  }
  if (new_low > new_high) {
    return absl::InvalidArgumentError(absl::StrCat(
        "write buffer limits: low (", new_low, ") must be <= high (", new_high,
        ")"));
  }
  if (overflow_ != 0 && new_high >= overflow_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "write buffer limits: high (", new_high,
        ") must stay below the overflow limit (", overflow_, ")"));
  }
  high_ = new_high;
  low_ = new_low;
  if (!above_high_ && accounted() > high_) Check(/*may_fall=*/false);
  return absl::OkStatus();
}

absl::Status WatermarkBuffer::SetOverflowLimit(size_t bytes) {
  if (bytes != 0 && bytes <= high_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "overflow limit (", bytes, ") must be above the high watermark (",
        high_, ")"));
  }
  overflow_ = bytes;
  Check(/*may_fall=*/false);
  return absl::OkStatus();
}

void WatermarkBuffer::Append(std::string_view data) {
  if (data.empty()) return;
  buffer_.Append(data);
  Check(/*may_fall=*/false);
}

void WatermarkBuffer::Consume(size_t n) {
  if (n == 0) return;
  buffer_.Consume(n);
  Check(/*may_fall=*/true);
}

void WatermarkBuffer::Clear() {
  buffer_.Clear();
  outside_ = 0;
  above_high_ = false;
}

void WatermarkBuffer::AddOutside(size_t n) {
  if (n == 0) return;
  outside_ += n;
  Check(/*may_fall=*/false);
}

void WatermarkBuffer::RemoveOutside(size_t n) {
  if (n == 0) return;
  outside_ -= n;
  Check(/*may_fall=*/true);
}

void WatermarkBuffer::AppendFromOutside(std::string_view data) {
  buffer_.Append(data);
  outside_ -= data.size();
}

void WatermarkBuffer::Check(bool may_fall) {
  const size_t size = accounted();
  if (overflow_ != 0 && !overflowed_ && size > overflow_) {
    overflowed_ = true;
    if (!above_high_) {
      above_high_ = true;
      if (callbacks_.above_high) callbacks_.above_high();
    }
    if (callbacks_.above_overflow) callbacks_.above_overflow();
    return;
  }
  if (!above_high_ && size > high_) {
    // The flag first: the callback may write, and re-enter.
    above_high_ = true;
    if (callbacks_.above_high) callbacks_.above_high();
  } else if (may_fall && above_high_ && size <= low_) {
    above_high_ = false;
    if (callbacks_.below_low) callbacks_.below_low();
  }
}

}  // namespace sluice
