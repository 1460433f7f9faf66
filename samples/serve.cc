#include "samples/serve.h"

#include <signal.h>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "framework/socket_address.h"

ABSL_FLAG(absl::Duration, shutdown_timeout, absl::Seconds(10),
          "On SIGINT or SIGTERM, how long connections get to close "
          "gracefully before they are aborted; a second signal aborts them "
          "at once.");

namespace sluice::samples {

int ServeUntilSignalled(EventLoop& loop, Server& server, std::string_view what,
                        std::string_view program) {
  for (const SocketAddress& address : server.addresses()) {
    absl::PrintF("%s listening on %s\n", what, address.ToString());
  }
  bool shutting_down = false;
  auto stop = [&] {
    if (shutting_down) {
      absl::PrintF("aborting %d connections\n", server.active_connections());
      server.Shutdown(absl::ZeroDuration());
      return;
    }
    shutting_down = true;
    const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_timeout);
    absl::PrintF("shutting down (%d connections, %s to close)\n",
                 server.active_connections(), absl::FormatDuration(grace));
    server.Shutdown(grace).AddDoneCallback([&](const absl::Status& status) {
      if (!status.ok()) absl::PrintF("%s\n", status.message());
      loop.Stop();
    });
  };
  for (int signo : {SIGINT, SIGTERM}) {
    absl::Status handled = loop.AddSignalHandler(signo, stop);
    if (!handled.ok()) {
      absl::FPrintF(stderr, "%s: %s\n", program, handled.ToString());
      return 1;
    }
  }
  loop.RunForever();
  return 0;
}

}  // namespace sluice::samples
