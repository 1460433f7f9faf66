// A tour of the event loop: a coroutine counts down with loop.Sleep, a
// periodic timer ticks beside it, Ctrl-C (SIGINT) cancels the countdown
// through its future, and a deadline bounds the whole run.
//
//   ./bazelw run //samples:countdown -- --from=5 --interval=500ms

#include <signal.h>

#include <cstdio>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/task.h"
#include "framework/timeout.h"
#include "samples/command_line.h"

ABSL_FLAG(int, from, 5, "Number to count down from.");
ABSL_FLAG(absl::Duration, interval, absl::Milliseconds(500),
          "Time between two counts.");
ABSL_FLAG(absl::Duration, deadline, absl::Minutes(1),
          "Give up if the countdown takes longer than this.");

namespace {

using sluice::EventLoop;
using sluice::Task;

Task<absl::Status> Countdown(EventLoop& loop, int from,
                             absl::Duration interval) {
  for (int n = from; n > 0; --n) {
    absl::PrintF("%d...\n", n);
    absl::Status slept = co_await loop.Sleep(interval);
    if (!slept.ok()) co_return slept;  // Cancelled by Ctrl-C.
  }
  absl::PrintF("liftoff!\n");
  co_return absl::OkStatus();
}

// A repeating timer in callback style, next to the coroutine.
void Tick(EventLoop& loop, absl::Duration period, int count) {
  absl::PrintF("  (tick %d)\n", count);
  loop.CallLater(period, [&loop, period, count] {
    Tick(loop, period, count + 1);
  });
}

}  // namespace

constexpr char kUsage[] =
    "A tour of the event loop: a coroutine counts down with Sleep, a periodic\n"
    "timer ticks beside it, Ctrl-C cancels the countdown, and a deadline bounds\n"
    "the run.\n"
    "\n"
    "  ./bazelw run //samples:countdown -- --from=5 --interval=500ms\n";

int main(int argc, char** argv) {
  sluice::samples::ParseCommandLine(argc, argv, kUsage);
  auto loop = EventLoop::Create();
  if (!loop.ok()) {
    absl::FPrintF(stderr, "cannot create the event loop: %s\n",
                  loop.status().ToString());
    return 1;
  }
  const absl::Duration interval = absl::GetFlag(FLAGS_interval);
  sluice::Future<absl::Status> countdown = sluice::Spawn(
      **loop, sluice::WithTimeout(
                  **loop, Countdown(**loop, absl::GetFlag(FLAGS_from), interval),
                  absl::GetFlag(FLAGS_deadline)));
  absl::Status handled = (*loop)->AddSignalHandler(SIGINT, [&countdown] {
    absl::PrintF("\ninterrupted\n");
    countdown.Cancel();
  });
  if (!handled.ok()) {
    absl::FPrintF(stderr, "cannot handle SIGINT: %s\n", handled.ToString());
    return 1;
  }
  (*loop)->CallLater(interval / 2, [&loop, interval] {
    Tick(**loop, interval, 1);
  });

  absl::Status result = (*loop)->RunUntilComplete(countdown);
  absl::PrintF("countdown finished: %s\n", result.ToString());
  return result.ok() ? 0 : 1;
}
