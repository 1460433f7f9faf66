#include "samples/serve.h"

#include <signal.h>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "framework/socket_address.h"

namespace sluice::samples {

int ServeUntilSignalled(EventLoop& loop, Server& server, std::string_view what,
                        std::string_view program) {
  for (const SocketAddress& address : server.addresses()) {
    absl::PrintF("%s listening on %s\n", what, address.ToString());
  }
  auto stop = [&] {
    absl::PrintF("shutting down (%d connections)\n",
                 server.active_connections());
    server.Close();
    server.CloseClients();
    server.WaitClosed().AddDoneCallback(
        [&](const absl::Status&) { loop.Stop(); });
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
