#include "protocols/streams/stream_reader_protocol.h"

#include <memory>
#include <utility>

#include "framework/future.h"

namespace sluice {

StreamReaderProtocol::StreamReaderProtocol(EventLoop& loop, size_t limit)
    : state_(std::make_shared<streams_internal::StreamState>(loop, limit)) {}

StreamReaderProtocol::StreamReaderProtocol(
    EventLoop& loop, size_t limit,
    std::shared_ptr<ClientConnectedCallback> on_connected)
    : state_(std::make_shared<streams_internal::StreamState>(loop, limit)),
      on_connected_(std::move(on_connected)) {}

StreamReaderProtocol::~StreamReaderProtocol() {
  state_->Detach(absl::FailedPreconditionError(
      "the stream's protocol was destroyed before its connection ended"),
      /*transport_alive=*/false);
}

void StreamReaderProtocol::ConnectionHandedOver() {
  state_->Detach(absl::FailedPreconditionError(
      "the stream's protocol was replaced: the transport belongs to another "
      "protocol now"),
      /*transport_alive=*/true);
}

void StreamReaderProtocol::ConnectionMade(Transport& transport) {
  state_->ConnectionMade(transport);
  if (on_connected_ == nullptr) return;
  EventLoop& loop = state_->loop();
  Future<absl::Status> handled = Spawn(
      loop, (*on_connected_)(StreamReader(state_), StreamWriter(state_)));
  handled.AddDoneCallback([&loop, state = state_](const absl::Status& status) {
    if (status.ok()) return;
    loop.ReportError(LoopError{"client_connected callback failed", status});
    if (Transport* transport = state->transport()) transport->Close();
  });
}

std::span<char> StreamReaderProtocol::GetBuffer(size_t size_hint) {
  return state_->GetBuffer(size_hint);
}

void StreamReaderProtocol::BufferUpdated(size_t size) {
  state_->BufferUpdated(size);
}

bool StreamReaderProtocol::EofReceived() {
  state_->FeedEof();
  return true;
}

void StreamReaderProtocol::PauseWriting() { state_->PauseWriting(); }

void StreamReaderProtocol::ResumeWriting() { state_->ResumeWriting(); }

void StreamReaderProtocol::ConnectionLost(const absl::Status& status) {
  state_->ConnectionLost(status);
}

}  // namespace sluice
