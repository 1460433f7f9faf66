#include "tools/loadgen/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace sluice::loadgen {

// Layout: indices [0, 128) hold the values [0, 128) exactly. Above that, a
// value is shifted right until it keeps 7 significant bits, i.e. lands in
// [64, 128); shift level s >= 1 thus covers the values [64 << s, 128 << s)
// with 64 buckets of width 1 << s, at indices [128 + 64 (s - 1), 128 + 64 s).
namespace {
constexpr uint64_t kHalf = 64;
}  // namespace

LatencyHistogram::LatencyHistogram()
    : counts_(BucketIndex(~uint64_t{0}) + 1, 0) {}

int LatencyHistogram::BucketIndex(uint64_t nanos) {
  nanos = std::min(nanos, (uint64_t{1} << kMaxValueBits) - 1);
  if (nanos < kSubBucketCount) return static_cast<int>(nanos);
  int top_bit = std::bit_width(nanos) - 1;  // >= kSubBucketBits
  int shift = top_bit - (kSubBucketBits - 1);
  uint64_t sub = (nanos >> shift) - kHalf;  // in [0, 64)
  return static_cast<int>(kSubBucketCount + kHalf * (shift - 1) + sub);
}

uint64_t LatencyHistogram::BucketMidpoint(int index) {
  if (index < static_cast<int>(kSubBucketCount)) return index;
  int rel = index - static_cast<int>(kSubBucketCount);
  int shift = rel / static_cast<int>(kHalf) + 1;
  uint64_t sub = rel % kHalf;
  uint64_t low = (kHalf + sub) << shift;
  return low + (uint64_t{1} << shift) / 2;
}

void LatencyHistogram::Record(uint64_t nanos) {
  ++counts_[BucketIndex(nanos)];
  ++count_;
  min_ = std::min(min_, nanos);
  max_ = std::max(max_, nanos);
  sum_ += nanos;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void LatencyHistogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  sum_ = 0;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / count_);
}

uint64_t LatencyHistogram::ValueAtQuantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::clamp(BucketMidpoint(static_cast<int>(i)), min(), max_);
    }
  }
  return max_;
}

}  // namespace sluice::loadgen
