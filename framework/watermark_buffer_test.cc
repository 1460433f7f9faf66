#include "framework/watermark_buffer.h"

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

// Envoy's watermark_buffer_test shape: callbacks counted in lambdas while
// the buffer is filled and drained.
class WatermarkBufferTest : public ::testing::Test {
 protected:
  WatermarkBufferTest()
      : buffer_(WatermarkBuffer::Callbacks{
            .above_high = [this] { ++times_high_; },
            .below_low = [this] { ++times_low_; },
            .above_overflow = [this] { ++times_overflow_; }}) {}

  int times_high_ = 0;
  int times_low_ = 0;
  int times_overflow_ = 0;
  WatermarkBuffer buffer_;
};

TEST_F(WatermarkBufferTest, DefaultsAreAsyncios) {
  EXPECT_EQ(buffer_.limits().high, 64u * 1024);
  EXPECT_EQ(buffer_.limits().low, 16u * 1024);
}

TEST_F(WatermarkBufferTest, HighFiresOnceAboveHighLowOnceAtOrBelowLow) {
  ASSERT_TRUE(buffer_.SetLimits(10, 5).ok());
  buffer_.Append(std::string(10, 'a'));  // At high: not above.
  EXPECT_EQ(times_high_, 0);
  buffer_.Append("b");
  EXPECT_EQ(times_high_, 1);
  buffer_.Append(std::string(100, 'c'));  // Still above: no second call.
  EXPECT_EQ(times_high_, 1);
  buffer_.Consume(buffer_.size() - 6);  // 6 > low.
  EXPECT_EQ(times_low_, 0);
  buffer_.Consume(1);  // 5 == low.
  EXPECT_EQ(times_low_, 1);
  buffer_.Consume(5);
  EXPECT_EQ(times_low_, 1);
  EXPECT_EQ(times_high_, 1);
}

TEST_F(WatermarkBufferTest, LowZeroFiresWhenEmpty) {
  // Envoy#9499: with `<` instead of `<=` the low callback never fired.
  ASSERT_TRUE(buffer_.SetLimits(0, 0).ok());
  buffer_.Append("x");
  EXPECT_EQ(times_high_, 1);
  buffer_.Consume(1);
  EXPECT_EQ(times_low_, 1);
}

TEST_F(WatermarkBufferTest, HighEqualsLow) {
  ASSERT_TRUE(buffer_.SetLimits(4, 4).ok());
  for (int cycle = 0; cycle < 3; ++cycle) {
    buffer_.Append("1");
    buffer_.Append("2345");  // 5, or 9 from the second cycle on.
    buffer_.Consume(buffer_.size() - 4);
  }
  // Each cycle: above high (4) when it passes 4, back at 4 == low.
  EXPECT_EQ(times_high_, 3);
  EXPECT_EQ(times_low_, 3);
}

TEST_F(WatermarkBufferTest, APauseNeverFollowedByAResume) {
  ASSERT_TRUE(buffer_.SetLimits(4, 2).ok());
  buffer_.Append("12345");
  buffer_.Consume(2);  // 3: above low.
  buffer_.Append("6");
  EXPECT_EQ(times_high_, 1);
  EXPECT_EQ(times_low_, 0);
  // Cleared (the connection is going): no resume.
  buffer_.Clear();
  EXPECT_EQ(times_low_, 0);
  EXPECT_FALSE(buffer_.above_high());
  EXPECT_EQ(buffer_.accounted(), 0u);
}

TEST_F(WatermarkBufferTest, LimitsChangedWhileAboveHigh) {
  ASSERT_TRUE(buffer_.SetLimits(4, 2).ok());
  buffer_.Append("123456");
  EXPECT_EQ(times_high_, 1);
  // A new low above the size does not resume inside SetLimits, nor in the
  // next append (that would be ResumeWriting inside a Write) ...
  ASSERT_TRUE(buffer_.SetLimits(100, 50).ok());
  EXPECT_EQ(times_low_, 0);
  buffer_.Append("7");
  buffer_.AddOutside(1);
  EXPECT_EQ(times_low_, 0);
  // ... the next drain does.
  buffer_.Consume(1);
  EXPECT_EQ(times_low_, 1);
  // Lowering high below the size pauses at once.
  ASSERT_TRUE(buffer_.SetLimits(2, 1).ok());
  EXPECT_EQ(times_high_, 2);
}

TEST_F(WatermarkBufferTest, InvalidLimitsAreRefusedAndKeepTheOldOnes) {
  ASSERT_TRUE(buffer_.SetLimits(10, 5).ok());
  EXPECT_EQ(buffer_.SetLimits(5, 10).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(buffer_.SetLimits(std::nullopt,
                              std::numeric_limits<size_t>::max() / 2)
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(buffer_.limits().high, 10u);
  EXPECT_EQ(buffer_.limits().low, 5u);
  ASSERT_TRUE(buffer_.SetLimits(std::nullopt, 100).ok());
  EXPECT_EQ(buffer_.limits().high, 400u);
  ASSERT_TRUE(buffer_.SetLimits(100).ok());
  EXPECT_EQ(buffer_.limits().low, 25u);
}

TEST_F(WatermarkBufferTest, OverflowFiresOnceAboveItsLimit) {
  ASSERT_TRUE(buffer_.SetLimits(4, 2).ok());
  EXPECT_EQ(buffer_.SetOverflowLimit(4).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(buffer_.SetOverflowLimit(8).ok());
  buffer_.Append("12345");  // Above high.
  EXPECT_EQ(times_high_, 1);
  EXPECT_EQ(times_overflow_, 0);
  buffer_.Append("6789");  // 9 > 8.
  EXPECT_EQ(times_overflow_, 1);
  EXPECT_TRUE(buffer_.overflowed());
  buffer_.Append("more");
  EXPECT_EQ(times_overflow_, 1);
  // High may not reach the overflow limit.
  EXPECT_EQ(buffer_.SetLimits(8, 2).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WatermarkBufferTest, OverflowStraightFromBelowHighFiresHighFirst) {
  ASSERT_TRUE(buffer_.SetLimits(4, 2).ok());
  ASSERT_TRUE(buffer_.SetOverflowLimit(8).ok());
  std::string order;
  WatermarkBuffer ordered(WatermarkBuffer::Callbacks{
      .above_high = [&] { order += "high "; },
      .below_low = [&] { order += "low "; },
      .above_overflow = [&] { order += "overflow "; }});
  ASSERT_TRUE(ordered.SetLimits(4, 2).ok());
  ASSERT_TRUE(ordered.SetOverflowLimit(8).ok());
  ordered.Append("0123456789");
  EXPECT_EQ(order, "high overflow ");
}

TEST_F(WatermarkBufferTest, OutsideBytesCount) {
  ASSERT_TRUE(buffer_.SetLimits(10, 5).ok());
  buffer_.Append("12345");
  buffer_.AddOutside(6);  // 11 accounted.
  EXPECT_EQ(buffer_.size(), 5u);
  EXPECT_EQ(buffer_.accounted(), 11u);
  EXPECT_EQ(times_high_, 1);
  buffer_.AppendFromOutside("123");  // Moved in: still 11, no edge.
  EXPECT_EQ(buffer_.size(), 8u);
  EXPECT_EQ(buffer_.accounted(), 11u);
  EXPECT_EQ(times_high_, 1);
  EXPECT_EQ(times_low_, 0);
  buffer_.RemoveOutside(3);  // 8 > low.
  EXPECT_EQ(times_low_, 0);
  buffer_.Consume(3);  // 5 == low.
  EXPECT_EQ(times_low_, 1);
}

TEST_F(WatermarkBufferTest, ACallbackMayWriteAndReenter) {
  // A protocol that writes more in ResumeWriting, as a producer does.
  int refills = 0;
  WatermarkBuffer* self = nullptr;
  WatermarkBuffer refilling(WatermarkBuffer::Callbacks{
      .above_high = [] {},
      .below_low =
          [&] {
            if (refills++ < 2) self->Append(std::string(20, 'r'));
          },
      .above_overflow = nullptr});
  self = &refilling;
  ASSERT_TRUE(refilling.SetLimits(10, 0).ok());
  refilling.Append(std::string(20, 'a'));
  EXPECT_TRUE(refilling.above_high());
  refilling.Consume(20);  // Low: refills to 20, above high again.
  EXPECT_TRUE(refilling.above_high());
  refilling.Consume(20);
  EXPECT_TRUE(refilling.above_high());
  refilling.Consume(20);  // Third low: no more refills.
  EXPECT_FALSE(refilling.above_high());
  EXPECT_EQ(refills, 3);
}

TEST_F(WatermarkBufferTest, PeekHandsOutTheBytesInOrder) {
  buffer_.Append("hello ");
  buffer_.Append("world");
  std::array<iovec, 4> iov;
  size_t count = buffer_.Peek(iov);
  std::string joined;
  for (size_t i = 0; i < count; ++i) {
    joined.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  }
  EXPECT_EQ(joined, "hello world");
}

}  // namespace
}  // namespace sluice
