// Checks that @com_google_benchmark links (with :benchmark_main).

#include <string>

#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"

namespace {

void BM_StrFormat(benchmark::State& state) {
  for (auto _ : state) {
    std::string s = absl::StrFormat("%s-%d", "bench", state.iterations());
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_StrFormat);

}  // namespace
