#include "protocols/streams/stream_writer.h"

#include <utility>

#include "absl/time/time.h"

namespace sluice {

void StreamWriter::Write(std::string_view data) {
  // After the loss the bytes are dropped; Drain reports why.
  if (Transport* transport = state_->transport()) transport->Write(data);
}

void StreamWriter::Writelines(std::span<const std::string_view> buffers) {
  if (Transport* transport = state_->transport()) transport->Writev(buffers);
}

void StreamWriter::WriteEof() {
  if (Transport* transport = state_->transport()) transport->WriteEof();
}

bool StreamWriter::CanWriteEof() const {
  Transport* transport = state_->transport();
  return transport != nullptr && transport->CanWriteEof();
}

void StreamWriter::Close() {
  if (Transport* transport = state_->transport()) transport->Close();
}

bool StreamWriter::IsClosing() const {
  Transport* transport = state_->transport();
  return transport == nullptr || transport->IsClosing();
}

std::optional<SocketAddress> StreamWriter::PeerAddress() const {
  Transport* transport = state_->transport();
  return transport != nullptr ? transport->PeerAddress() : std::nullopt;
}

std::optional<SocketAddress> StreamWriter::LocalAddress() const {
  Transport* transport = state_->transport();
  return transport != nullptr ? transport->LocalAddress() : std::nullopt;
}

Task<absl::Status> StreamWriter::Drain() {
  std::shared_ptr<streams_internal::StreamState> state = state_;
  if (!state->exception().ok()) co_return state->exception();
  if (state->transport() != nullptr && state->transport()->IsClosing()) {
    // Yield once, so that a ConnectionLost already scheduled runs first
    // (bpo-25441: otherwise `Write(); co_await Drain();` loops forever).
    absl::Status slept = co_await state->loop().Sleep(absl::ZeroDuration());
    if (!slept.ok()) co_return slept;
    if (!state->connection_lost()) {
      co_return absl::FailedPreconditionError(
          "the connection is closing: nothing more can be written");
    }
  }
  if (state->connection_lost()) co_return state->LostError();
  if (!state->write_paused()) co_return absl::OkStatus();
  co_return co_await state->drain_waiters().Wait();
}

void StreamWriter::Drain(absl::AnyInvocable<void(absl::Status)> done) {
  Future<absl::Status> drained = Spawn(state_->loop(), Drain());
  drained.AddDoneCallback(
      [done = std::move(done)](const absl::Status& status) mutable {
        done(status);
      });
}

}  // namespace sluice
