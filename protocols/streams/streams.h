#ifndef SLUICE_PROTOCOLS_STREAMS_STREAMS_H_
#define SLUICE_PROTOCOLS_STREAMS_STREAMS_H_

// The streams adapter's socket entry points (asyncio's open_connection and
// start_server); the adapter itself, which works over any Transport, is
// stream_reader_protocol.h.
//
//   auto streams = co_await OpenConnection(loop, "127.0.0.1", 8888);
//   streams->writer.Write("hello\n");
//   co_await streams->writer.Drain();
//   absl::StatusOr<std::string> line = co_await streams->reader.ReadLine();

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "protocols/streams/stream_reader.h"
#include "protocols/streams/stream_reader_protocol.h"
#include "protocols/streams/stream_writer.h"
#include "transports/connection.h"
#include "transports/server.h"

namespace sluice {

struct StreamOptions {
  // The reader's buffer limit (see StreamReader); must be positive:
  // OpenConnection and StartServer refuse 0 with kInvalidArgument.
  size_t limit = 64 * 1024;
  ConnectOptions connect = {};
  ServerOptions server = {};
};
// Braced in co_await expressions (see ConnectOptions).
static_assert(std::is_trivially_destructible_v<StreamOptions>);

// asyncio's open_connection: connects and returns the reader and writer.
Task<absl::StatusOr<StreamPair>> OpenConnection(EventLoop& loop,
                                                std::string host,
                                                uint16_t port,
                                                StreamOptions options = {});
Task<absl::StatusOr<StreamPair>> OpenUnixConnection(EventLoop& loop,
                                                    std::string path,
                                                    StreamOptions options = {});

// asyncio's start_server: `on_connected` runs for each connection.
Task<absl::StatusOr<std::unique_ptr<Server>>> StartServer(
    EventLoop& loop, ClientConnectedCallback on_connected, std::string host,
    uint16_t port, StreamOptions options = {});
absl::StatusOr<std::unique_ptr<Server>> StartUnixServer(
    EventLoop& loop, ClientConnectedCallback on_connected, std::string path,
    StreamOptions options = {});

}  // namespace sluice

#endif  // SLUICE_PROTOCOLS_STREAMS_STREAMS_H_
