#include "protocols/streams/stream_writer.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/time/time.h"

namespace sluice {
namespace {

Task<absl::Status> UpgradeToTls(
    std::shared_ptr<streams_internal::StreamState> state, TlsContext context,
    std::string server_name, TlsOptions options) {
  // What is buffered goes out in plaintext first (asyncio drains too).
  absl::Status drained = co_await StreamWriter(state).Drain();
  if (!drained.ok()) co_return drained;
  Transport* transport = state->transport();
  if (transport == nullptr) co_return state->LostError();
  options.server_name = server_name;
  absl::StatusOr<TlsTransport*> tls =
      TlsTransport::Upgrade(*transport, context, options);
  if (!tls.ok()) co_return tls.status();
  // The reader's pause moved up with the protocol: the state talks to the
  // TLS layer from now on.
  state->ConnectionMade(**tls);
  // Cancelling this await aborts the connection (see Handshake()).
  co_return co_await (*tls)->Handshake();
}

}  // namespace

void StreamWriter::Write(std::string_view data) {
  // After the loss the bytes are dropped; Drain reports why.
  if (Transport* transport = state_->transport()) transport->Write(data);
}

void StreamWriter::Write(std::string&& data) {
  Write(std::string_view(data));
  streams_internal::ReadBufferPool::Give(std::move(data));
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

Task<absl::Status> StreamWriter::StartTls(const TlsContext& context,
                                          TlsOptions options) {
  // The options' view is copied now: the upgrade comes after a drain.
  std::string server_name(options.server_name);
  options.server_name = {};
  return UpgradeToTls(state_, context, std::move(server_name), options);
}

StreamWriter::DrainAwaiter StreamWriter::Drain() const {
  return DrainAwaiter(state_);
}

bool StreamWriter::DrainAwaiter::await_ready() {
  // asyncio's drain(): the reader's error first; a closing transport yields
  // once so that a ConnectionLost already queued runs first (bpo-25441:
  // otherwise `Write(); co_await Drain();` loops forever); then the loss,
  // then the pause.
  if (!state_->exception().ok()) {
    result_ = state_->exception();
    return true;
  }
  if (state_->connection_lost()) {
    result_ = state_->LostError();
    return true;
  }
  if (state_->write_paused()) return false;  // Until resumed or lost.
  Transport* transport = state_->transport();
  if (transport != nullptr && transport->IsClosing()) {
    yield_ = true;
    return false;
  }
  result_ = absl::OkStatus();
  return true;
}

absl::Status StreamWriter::DrainAwaiter::await_resume() {
  if (yield_once_.has_value()) {
    absl::Status yielded = yield_once_->await_resume();
    if (!yielded.ok()) return yielded;
    if (!state_->exception().ok()) return state_->exception();
    if (state_->connection_lost()) return state_->LostError();
    // Still flushing and below the mark: nothing to wait for (asyncio).
    return absl::OkStatus();
  }
  if (resumed_.has_value()) return resumed_->await_resume();
  return result_;
}

void StreamWriter::Drain(absl::AnyInvocable<void(absl::Status)> done) {
  Future<absl::Status> drained = Spawn(state_->loop(), Drain());
  drained.AddDoneCallback(
      [done = std::move(done)](const absl::Status& status) mutable {
        done(status);
      });
}

}  // namespace sluice
