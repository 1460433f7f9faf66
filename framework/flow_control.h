#ifndef SLUICE_FRAMEWORK_FLOW_CONTROL_H_
#define SLUICE_FRAMEWORK_FLOW_CONTROL_H_

#include <cstddef>
#include <optional>

#include "absl/status/status.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/transport.h"

namespace sluice {

// The write-side watermark state machine that every buffering transport
// uses (asyncio's _FlowControlMixin, Envoy's WatermarkBuffer): the owner
// calls Update after every change of its buffered size, and FlowControl
// calls PauseWriting once when the size rises above `high`, ResumeWriting
// once when it falls to `low` or below. The two strictly alternate.
//
// The pause edge is strictly above high for every transport, TLS included
// (asyncio's TLS layer pauses at >= high, which with high = 0 pauses an
// empty buffer: cpython#102792).
class FlowControl {
 public:
  static constexpr size_t kDefaultHighWater = 64 * 1024;

  explicit FlowControl(EventLoop& loop) : loop_(loop) {}

  // See BaseTransport::SetWriteBufferLimits for the defaults. Does not
  // re-check: the owner calls Update with its size afterwards.
  absl::Status SetLimits(std::optional<size_t> high, std::optional<size_t> low);
  WriteBufferLimits limits() const { return {low_, high_}; }

  // Re-checks `size` against the watermarks. A throwing callback is
  // reported to the loop; the state changes all the same.
  void Update(size_t size, BaseProtocol& protocol);

  // Sets new limits and re-checks only the pause edge (asyncio's
  // set_write_buffer_limits): ResumeWriting must not run inside the call
  // the protocol is making; a buffer at or below the new low resumes on its
  // next drain, which comes while it is non-empty.
  absl::Status SetLimitsAndCheck(std::optional<size_t> high,
                                 std::optional<size_t> low, size_t size,
                                 BaseProtocol& protocol);

  bool paused() const { return paused_; }

 private:
  EventLoop& loop_;
  size_t high_ = kDefaultHighWater;
  size_t low_ = kDefaultHighWater / 4;
  bool paused_ = false;
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_FLOW_CONTROL_H_
