#ifndef SLUICE_PROTOCOLS_STREAMS_STREAM_READER_PROTOCOL_H_
#define SLUICE_PROTOCOLS_STREAMS_STREAM_READER_PROTOCOL_H_

// The streams adapter (asyncio's streams) over any Transport: TCP, Unix,
// in-memory, a stacked layer. The socket entry points (OpenConnection,
// StartServer) are in streams.h.

#include <cstddef>
#include <memory>
#include <span>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "protocols/streams/stream_reader.h"
#include "protocols/streams/stream_state.h"
#include "protocols/streams/stream_writer.h"

namespace sluice {

struct StreamPair {
  StreamReader reader;
  StreamWriter writer;
};

// Runs once per accepted connection, as a task of its own. An error it
// returns is reported to the loop's error handler and closes the
// connection.
using ClientConnectedCallback =
    absl::AnyInvocable<Task<absl::Status>(StreamReader, StreamWriter)>;

// The Protocol that feeds a StreamReader and turns PauseWriting /
// ResumeWriting into StreamWriter::Drain (asyncio.StreamReaderProtocol).
// With a callback, it is the server side: the callback gets the pair once
// the connection is made. A BufferedProtocol: the transport receives into
// the reader's buffer, and a large read takes it without a copy.
class StreamReaderProtocol final : public BufferedProtocol {
 public:
  StreamReaderProtocol(EventLoop& loop, size_t limit);
  StreamReaderProtocol(EventLoop& loop, size_t limit,
                       std::shared_ptr<ClientConnectedCallback> on_connected);

  // The streams stop using the transport once this protocol is replaced
  // (SetProtocol) or destroyed: reads, writes and drains then fail with
  // kFailedPrecondition instead of reaching a transport they no longer
  // belong to, and a read pause of the reader's is lifted.
  ~StreamReaderProtocol() override;

  StreamPair streams() const {
    return StreamPair{StreamReader(state_), StreamWriter(state_)};
  }

  void ConnectionMade(Transport& transport) override;
  std::span<char> GetBuffer(size_t size_hint) override;
  void BufferUpdated(size_t size) override;
  // Keeps the transport half-open: the application closes it when it has
  // written what it wanted to.
  bool EofReceived() override;
  void PauseWriting() override;
  void ResumeWriting() override;
  void ConnectionHandedOver() override;
  void ConnectionLost(const absl::Status& status) override;

 private:
  std::shared_ptr<streams_internal::StreamState> state_;
  std::shared_ptr<ClientConnectedCallback> on_connected_;
};

}  // namespace sluice

#endif  // SLUICE_PROTOCOLS_STREAMS_STREAM_READER_PROTOCOL_H_
