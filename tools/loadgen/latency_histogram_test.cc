#include "tools/loadgen/latency_histogram.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace sluice::loadgen {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 50u);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 99u);
  EXPECT_EQ(h.ValueAtQuantile(1.0), 100u);
  EXPECT_EQ(h.ValueAtQuantile(0.0), 1u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogramTest, QuantilesWithinRelativePrecision) {
  LatencyHistogram h;
  // 1 us .. 10 ms in 1 us steps: uniform, so quantile q is ~ q * 10 ms.
  for (uint64_t us = 1; us <= 10000; ++us) h.Record(us * 1000);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    double want = q * 10000 * 1000;
    double got = static_cast<double>(h.ValueAtQuantile(q));
    EXPECT_NEAR(got, want, want / 128) << "q=" << q;
  }
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_EQ(h.max(), 10000u * 1000);
}

TEST(LatencyHistogramTest, TailIsNotHiddenByTheBulk) {
  LatencyHistogram h;
  for (int i = 0; i < 999000; ++i) h.Record(50'000);      // 50 us
  for (int i = 0; i < 1000; ++i) h.Record(20'000'000);    // 20 ms
  EXPECT_NEAR(static_cast<double>(h.ValueAtQuantile(0.99)), 50'000, 50'000 / 128.0);
  EXPECT_NEAR(static_cast<double>(h.ValueAtQuantile(0.9995)), 20'000'000,
              20'000'000 / 128.0);
}

TEST(LatencyHistogramTest, HugeValuesAreClampedNotLost) {
  LatencyHistogram h;
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.max(), UINT64_MAX);
  EXPECT_EQ(h.ValueAtQuantile(0.5), UINT64_MAX);  // clamped to [min, max]
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram odd, even, all;
  for (uint64_t v = 1; v <= 100'000; ++v) {
    (v % 2 ? odd : even).Record(v * 37);
    all.Record(v * 37);
  }
  LatencyHistogram empty;
  odd.Merge(even);
  odd.Merge(empty);
  EXPECT_EQ(odd.count(), all.count());
  EXPECT_EQ(odd.min(), all.min());
  EXPECT_EQ(odd.max(), all.max());
  EXPECT_DOUBLE_EQ(odd.mean(), all.mean());
  for (double q : {0.0, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    EXPECT_EQ(odd.ValueAtQuantile(q), all.ValueAtQuantile(q)) << "q=" << q;
  }
  // Into an empty one: min comes from the merged samples, not the sentinel.
  empty.Merge(all);
  EXPECT_EQ(empty.min(), 37u);
  EXPECT_EQ(empty.count(), 100'000u);
}

TEST(LatencyHistogramTest, ResetForgetsEverything) {
  LatencyHistogram h;
  h.Record(5);
  h.Record(7'000'000);
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
  h.Record(3);
  EXPECT_EQ(h.ValueAtQuantile(1.0), 3u);
  EXPECT_EQ(h.max(), 3u);
}

}  // namespace
}  // namespace sluice::loadgen
