#ifndef SLUICE_TOOLS_LOADGEN_LATENCY_HISTOGRAM_H_
#define SLUICE_TOOLS_LOADGEN_LATENCY_HISTOGRAM_H_

#include <cstdint>
#include <vector>

namespace sluice::loadgen {

// A log-linear histogram of nanosecond latencies, in the spirit of
// HdrHistogram: every power of two is split into 128 equal sub-buckets, so a
// reported percentile is within 1/128 (< 0.8%) of a recorded value. Record is
// O(1) and allocation-free; memory is fixed (a few thousand counters), however
// many samples are recorded. Values above ~1.2 hours are clamped.
//
// Not thread-safe: one histogram per thread.
class LatencyHistogram {
 public:
  LatencyHistogram();

  void Record(uint64_t nanos);
  // Adds every sample of `other`, as if recorded here (one histogram per
  // thread, merged at the end).
  void Merge(const LatencyHistogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  // Exact, not bucketed. 0 when empty.
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const;

  // The value at quantile `q` in [0, 1]: the smallest recorded value v such
  // that at least q * count() samples are <= v, up to the bucket precision
  // (the bucket's midpoint, clamped to [min(), max()]). 0 when empty.
  uint64_t ValueAtQuantile(double q) const;

 private:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBucketCount = uint64_t{1} << kSubBucketBits;
  static constexpr int kMaxValueBits = 42;  // 2^42 ns ~ 73 minutes.

  static int BucketIndex(uint64_t nanos);
  static uint64_t BucketMidpoint(int index);

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace sluice::loadgen

#endif  // SLUICE_TOOLS_LOADGEN_LATENCY_HISTOGRAM_H_
