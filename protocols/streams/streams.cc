#include "protocols/streams/streams.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "framework/future.h"
#include "protocols/streams/stream_errors.h"

namespace sluice {
namespace {

Task<absl::StatusOr<StreamPair>> Open(EventLoop& loop, bool unix_socket,
                                      std::string target, uint16_t port,
                                      StreamOptions options) {
  if (options.limit == 0) co_return InvalidLimitError();
  auto factory = [&loop, limit = options.limit] {
    return std::make_unique<StreamReaderProtocol>(loop, limit);
  };
  absl::StatusOr<Connection> connection;
  if (unix_socket) {
    connection = co_await CreateUnixConnection(loop, factory, std::move(target),
                                               options.connect);
  } else {
    connection = co_await CreateConnection(loop, factory, std::move(target),
                                           port, options.connect);
  }
  if (!connection.ok()) co_return connection.status();
  co_return static_cast<StreamReaderProtocol*>(connection->protocol)->streams();
}

Task<absl::StatusOr<std::unique_ptr<Server>>> Refuse(absl::Status error) {
  co_return error;
}

ProtocolFactory ServerFactory(EventLoop& loop, ClientConnectedCallback callback,
                              size_t limit) {
  auto shared = std::make_shared<ClientConnectedCallback>(std::move(callback));
  return [&loop, shared, limit] {
    return std::make_unique<StreamReaderProtocol>(loop, limit, shared);
  };
}

}  // namespace

Task<absl::StatusOr<StreamPair>> OpenConnection(EventLoop& loop,
                                                std::string host, uint16_t port,
                                                StreamOptions options) {
  return Open(loop, false, std::move(host), port, std::move(options));
}

Task<absl::StatusOr<StreamPair>> OpenUnixConnection(EventLoop& loop,
                                                    std::string path,
                                                    StreamOptions options) {
  return Open(loop, true, std::move(path), 0, std::move(options));
}

Task<absl::StatusOr<std::unique_ptr<Server>>> StartServer(
    EventLoop& loop, ClientConnectedCallback on_connected, std::string host,
    uint16_t port, StreamOptions options) {
  if (options.limit == 0) return Refuse(InvalidLimitError());
  return CreateServer(loop,
                      ServerFactory(loop, std::move(on_connected), options.limit),
                      std::move(host), port, options.server);
}

absl::StatusOr<std::unique_ptr<Server>> StartUnixServer(
    EventLoop& loop, ClientConnectedCallback on_connected, std::string path,
    StreamOptions options) {
  if (options.limit == 0) return InvalidLimitError();
  return CreateUnixServer(
      loop, ServerFactory(loop, std::move(on_connected), options.limit),
      std::move(path), options.server);
}

}  // namespace sluice
