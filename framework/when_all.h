#ifndef SLUICE_FRAMEWORK_WHEN_ALL_H_
#define SLUICE_FRAMEWORK_WHEN_ALL_H_

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/status_like.h"
#include "framework/task.h"

namespace sluice {

// Runs `tasks` concurrently and completes once every one has finished, with
// their results in order; a failed task is one failed element, not a failed
// whole (asyncio.gather(return_exceptions=True)). Cancelling the returned
// future cancels every task still running and completes with kCancelled
// once they have all finished.
template <StatusLike T>
Future<absl::StatusOr<std::vector<T>>> WhenAll(EventLoop& loop,
                                               std::vector<Task<T>> tasks) {
  using Combined = absl::StatusOr<std::vector<T>>;
  struct Gather {
    explicit Gather(EventLoop& loop) : combined(loop) {}
    Future<Combined> combined;
    std::vector<Future<T>> children;
    std::vector<std::optional<T>> results;
    size_t remaining = 0;
    bool cancelled = false;
  };
  // Owned by the combined future's cancel hook (until it completes); the
  // children hold it weakly, so an abandoned WhenAll leaves no cycle.
  auto gather = std::make_shared<Gather>(loop);
  Future<Combined> combined = gather->combined;
  if (tasks.empty()) {
    combined.SetResult(std::vector<T>());
    return combined;
  }
  gather->results.resize(tasks.size());
  gather->remaining = tasks.size();
  for (Task<T>& task : tasks) {
    gather->children.push_back(Spawn(loop, std::move(task)));
  }
  std::weak_ptr<Gather> weak = gather;
  for (size_t i = 0; i < gather->children.size(); ++i) {
    gather->children[i].AddDoneCallback([weak, i](const T& result) {
      std::shared_ptr<Gather> gather = weak.lock();
      if (gather == nullptr) return;
      gather->results[i] = result;
      if (--gather->remaining > 0) return;
      if (gather->cancelled) {
        gather->combined.SetResult(absl::CancelledError("WhenAll cancelled"));
        return;
      }
      std::vector<T> results;
      results.reserve(gather->results.size());
      for (auto& one : gather->results) results.push_back(std::move(*one));
      gather->combined.SetResult(std::move(results));
    });
  }
  combined.SetCancelHook([gather] {
    gather->cancelled = true;
    for (Future<T>& child : gather->children) child.Cancel();
  });
  return combined;
}

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_WHEN_ALL_H_
