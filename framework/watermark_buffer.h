#ifndef SLUICE_FRAMEWORK_WATERMARK_BUFFER_H_
#define SLUICE_FRAMEWORK_WATERMARK_BUFFER_H_

#include <sys/uio.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "framework/transport.h"
#include "framework/write_buffer.h"

namespace sluice {

// A write buffer that watches its own size against watermarks (Envoy's
// WatermarkBuffer, asyncio's _FlowControlMixin): every mutation re-checks,
// so no caller can forget to. The edges are callbacks, not a protocol, so a
// transport can merge them with other pause reasons (a layer below, a
// handshake) before its protocol hears of them.
//
// - `above_high` runs once when the accounted size rises above high;
// - `below_low` runs once when it then falls to low or below (with low = 0:
//   when it is empty, Envoy#9499);
// - `above_overflow` runs once, the first time it rises above the overflow
//   limit (if one is set): a peer that never reads, a protocol that ignores
//   PauseWriting.
//
// The accounted size is what the buffer holds plus what its owner declares
// it holds elsewhere (AddOutside / RemoveOutside: a queue of datagrams,
// writes waiting behind a SendFile). The state changes before a callback
// runs, so a callback may append or consume (and re-enter the checks).
class WatermarkBuffer {
 public:
  static constexpr size_t kDefaultHighWater = 64 * 1024;

  struct Callbacks {
    absl::AnyInvocable<void()> above_high = nullptr;
    absl::AnyInvocable<void()> below_low = nullptr;
    absl::AnyInvocable<void()> above_overflow = nullptr;
  };

  explicit WatermarkBuffer(Callbacks callbacks)
      : callbacks_(std::move(callbacks)) {}
  WatermarkBuffer(const WatermarkBuffer&) = delete;
  WatermarkBuffer& operator=(const WatermarkBuffer&) = delete;

  // asyncio's set_write_buffer_limits: with neither, high 64 KiB and low
  // high / 4; only `low`: high = 4 * low; only `high`: low = high / 4.
  // kInvalidArgument if low > high, if 4 * low overflows, or if high would
  // exceed the overflow limit. Re-checks only the high edge: `below_low`
  // must not run inside the caller's own call; a buffer at or below the new
  // low fires it at its next drain, which comes while it is non-empty.
  absl::Status SetLimits(std::optional<size_t> high = std::nullopt,
                         std::optional<size_t> low = std::nullopt);
  WriteBufferLimits limits() const { return {low_, high_}; }

  // Above this accounted size `above_overflow` runs (once). 0: no limit.
  // kInvalidArgument if nonzero and not above high.
  absl::Status SetOverflowLimit(size_t bytes);
  size_t overflow_limit() const { return overflow_; }

  // WriteBuffer's operations, each followed by the checks.
  void Append(std::string_view data);
  void Consume(size_t n);
  // Consume without the checks, for an owner that refills first (so the
  // buffer does not look drained in between) and then calls Recheck.
  void ConsumeUnchecked(size_t n) { buffer_.Consume(n); }
  void Recheck() { Check(/*may_fall=*/true); }
  // Drops everything (the outside count too) without running `below_low`:
  // a buffer is cleared when its connection is going.
  void Clear();
  size_t Peek(std::span<iovec> out) const { return buffer_.Peek(out); }

  // Bytes the owner holds elsewhere that count toward the watermarks.
  void AddOutside(size_t n);
  void RemoveOutside(size_t n);
  // Appends bytes that were counted as held outside: the accounted size
  // does not change, so no edge fires.
  void AppendFromOutside(std::string_view data);

  // What the buffer itself holds.
  size_t size() const { return buffer_.size(); }
  bool empty() const { return buffer_.empty(); }
  // size() plus what is held outside: what the watermarks see.
  size_t accounted() const { return buffer_.size() + outside_; }
  bool above_high() const { return above_high_; }
  bool overflowed() const { return overflowed_; }

 private:
  // `may_fall`: the size went down (a drain), so the low edge may fire. A
  // growth never fires it, even after new limits put low above the size:
  // the low edge must not run inside a write.
  void Check(bool may_fall);

  Callbacks callbacks_;
  WriteBuffer buffer_;
  size_t outside_ = 0;
  size_t high_ = kDefaultHighWater;
  size_t low_ = kDefaultHighWater / 4;
  size_t overflow_ = 0;
  bool above_high_ = false;
  bool overflowed_ = false;
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_WATERMARK_BUFFER_H_
