#ifndef SLUICE_FRAMEWORK_TIMEOUT_H_
#define SLUICE_FRAMEWORK_TIMEOUT_H_

#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/status_like.h"
#include "framework/task.h"

namespace sluice {

// Runs `task` with a time limit (asyncio.wait_for): if it has not finished
// after `timeout`, it is cancelled and, once it has wound down, the result is
// kDeadlineExceeded (unless the task finished with something other than
// kCancelled despite the cancellation, which is then returned). Destroying
// the returned Task while it waits cancels `task` too.
template <StatusLike T>
Task<T> WithTimeout(EventLoop& loop, Task<T> task, absl::Duration timeout) {
  Future<T> running = Spawn(loop, std::move(task));
  bool timed_out = false;
  Handle timer = loop.CallLater(timeout, [running, &timed_out]() mutable {
    timed_out = true;
    running.Cancel();
  });
  // Also when this frame is destroyed while it waits: the spawned task
  // must not run on with nobody to take its result.
  absl::Cleanup stop = [&timer, running]() mutable {
    timer.Cancel();
    if (!running.IsDone()) running.Cancel();
  };
  T result = co_await std::move(running);
  if (timed_out && StatusOf(result).code() == absl::StatusCode::kCancelled) {
    co_return T(absl::DeadlineExceededError(
        absl::StrCat("timed out after ", absl::FormatDuration(timeout))));
  }
  co_return result;
}

// The same for any awaitable with a StatusLike result: a Future, a Sleep, a
// drain or a read.
template <NonTaskAwaitable A>
Task<AwaitResult<A>> WithTimeout(EventLoop& loop, A awaitable,
                                 absl::Duration timeout) {
  return WithTimeout(loop, AwaitAsTask(std::move(awaitable)), timeout);
}

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_TIMEOUT_H_
