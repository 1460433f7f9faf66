#ifndef SLUICE_SAMPLES_SERVE_H_
#define SLUICE_SAMPLES_SERVE_H_

#include <string_view>

#include "framework/event_loop.h"
#include "transports/server.h"

namespace sluice::samples {

// What the sample servers do once listening: print "<what> listening on
// ADDR" for each address, then run `loop` until SIGINT or SIGTERM. The first
// signal shuts the server down (Server::Shutdown): it stops listening,
// closes every connection gracefully (TLS ones with close_notify) and aborts
// those still open after --shutdown_timeout; a second signal aborts them at
// once. Returns the exit code: 0, or 1 (reported as `program`: ...) when the
// signal handlers cannot be installed.
int ServeUntilSignalled(EventLoop& loop, Server& server, std::string_view what,
                        std::string_view program);

}  // namespace sluice::samples

#endif  // SLUICE_SAMPLES_SERVE_H_
