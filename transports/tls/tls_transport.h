#ifndef SLUICE_TRANSPORTS_TLS_TLS_TRANSPORT_H_
#define SLUICE_TRANSPORTS_TLS_TLS_TRANSPORT_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/protocol.h"
#include "framework/transport.h"
#include "transports/tls/queue_bio.h"
#include "transports/tls/tls_context.h"
#include "transports/transport_layer.h"

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace sluice {

// Per-connection TLS settings, read during the call that takes them (and
// copied as needed), so server_name may view a temporary. Nothing in them
// owns anything: GCC 12 copies an aggregate temporary in a co_await
// expression bitwise and destroys both copies, and `co_await StartTls(t,
// context, {.server_name = "example.com"})` must work.
struct TlsOptions {
  // Clients: the server's name, sent as SNI (DNS names only) and checked
  // against its certificate (DNS or IP SANs) when the context verifies
  // hostnames.
  std::string_view server_name = {};
  // asyncio's defaults. Zero or less is kInvalidArgument.
  absl::Duration handshake_timeout = absl::Seconds(60);
  absl::Duration shutdown_timeout = absl::Seconds(30);
};
static_assert(std::is_trivially_destructible_v<TlsOptions>);

// What a TLS connection negotiated: transport.GetExtraInfo<TlsInfo>(), set
// once the handshake is done (null before).
struct TlsInfo {
  std::string version;  // "TLSv1.3"
  std::string cipher;   // "TLS_AES_128_GCM_SHA256"
  std::string alpn;     // The agreed ALPN protocol, empty if none.
  std::string server_name;  // SNI: the name the client asked for.
  bool resumed = false;     // The session was resumed, not made anew.
  // The peer's certificate, if it sent one.
  std::string peer_subject;  // "CN=localhost"
  std::vector<std::string> peer_dns_names;
  std::vector<std::string> peer_ip_addresses;
  std::string peer_certificate_der;
};

// TLS as a layer over any Transport (TCP, Unix, in-memory, TLS): the
// protocol of the transport below, a transport to the protocol above, with
// OpenSSL driven through in-memory BIOs of the layer's own (asyncio's
// SSLProtocol, Twisted's TLSMemoryBIOProtocol).
//
//   // Server: each accepted connection gets its own TLS layer.
//   auto factory = [&] {
//     return TlsTransport::Create(loop, context, {}, MakeApp()).value();
//   };
//
// The protocol above gets ConnectionMade once the handshake is done, and
// never hears of a connection whose handshake failed (asyncio's rule):
// Handshake() reports that. Close sends close_notify after what is
// buffered and waits (up to the shutdown timeout) for the peer's; Abort
// sends nothing. The peer's close_notify is a clean EOF; the connection
// below ending without one is kDataLoss (a truncation attack looks like
// that). Renegotiation is refused.
//
// Flow control: GetWriteBufferSize() is the plaintext not yet encrypted
// plus everything the layer below holds (ciphertext goes below as soon as
// it is made), and PauseWriting/ResumeWriting follow that total against
// this transport's watermarks: the layer below gets both of its
// watermarks set to our low one, so it pauses us once it holds more than
// that and plaintext waits here meanwhile. Writes are encrypted a few
// records at a time while the layer below accepts them.
// PauseReading stops decryption and, unless the handshake or the shutdown
// needs bytes, reading below. A BufferedProtocol above gets plaintext
// decrypted straight into the memory it lends.
class TlsTransport final : public TransportLayer {
 public:
  // kInvalidArgument for a timeout <= 0, or a client context that verifies
  // hostnames without `options.server_name` (ValidateOptions).
  static absl::StatusOr<std::unique_ptr<TlsTransport>> Create(
      EventLoop& loop, const TlsContext& context, TlsOptions options,
      std::unique_ptr<Protocol> protocol);
  // STARTTLS: puts a TLS layer between `transport` and its protocol, which
  // goes on with the connection through the layer (TransportLayer::Insert:
  // no second ConnectionMade; its pauses carry over) and must write to the
  // returned transport from now on. The handshake starts at once; what the
  // protocol writes meanwhile is sent after it. Handshake() says how it
  // went; a failure also reaches the protocol, as ConnectionLost. Bytes
  // that arrive from now on are TLS: call it once the peer has been told
  // (the "220 Ready" of SMTP), before it sends its hello. The returned
  // transport is valid until the protocol's ConnectionLost returns.
  // kFailedPrecondition if `transport` is closing; kInvalidArgument as
  // Create.
  static absl::StatusOr<TlsTransport*> Upgrade(Transport& transport,
                                               const TlsContext& context,
                                               TlsOptions options);
  // What Create and Upgrade refuse in `options`, checked up front (a server
  // validates its options once, not per connection).
  static absl::Status ValidateOptions(const TlsContext& context,
                                      const TlsOptions& options);
  ~TlsTransport() override;

  // Completes once the handshake has: OK, or why it failed (kUnauthenticated
  // for a certificate that did not verify, kDeadlineExceeded after the
  // handshake timeout, kUnavailable otherwise). Cancelling it, or a task
  // that awaits it, aborts the connection (kCancelled).
  Future<absl::Status> Handshake() const { return handshake_; }

  // Transport.
  void Close() override;
  void Abort() override { ForceClose(absl::OkStatus()); }
  void Write(std::string_view data) override;
  void Writev(std::span<const std::string_view> buffers) override;
  // Sends close_notify after what is buffered and goes on reading (TLS
  // 1.3's half-close; a TLS 1.2 peer may answer with its own close_notify
  // at once). Writes after it are dropped.
  void WriteEof() override;
  bool CanWriteEof() const override { return state_ == State::kOpen; }
  // The watermarks hold for everything GetWriteBufferSize counts (the
  // layer below gets limits of its own from them: see LimitLower).
  absl::Status SetWriteBufferLimits(
      std::optional<size_t> high = std::nullopt,
      std::optional<size_t> low = std::nullopt) override;
  const void* QueryExtraInfo(ExtraInfoId id) const override;

  // Protocol (facing the transport below).
  void DataReceived(std::string_view data) override;
  bool EofReceived() override;
  void PauseWriting() override;
  void ResumeWriting() override;
  void ConnectionLost(const absl::Status& status) override;
  // The transport below receives ciphertext straight into this layer's
  // queue (no copy on the way), through `ciphertext_sink_`.
  BufferedProtocol* AsBufferedProtocol() override { return &ciphertext_sink_; }

 private:
  // The BufferedProtocol side of this layer, for the transport below.
  class CiphertextSink final : public BufferedProtocol {
   public:
    explicit CiphertextSink(TlsTransport& tls) : tls_(tls) {}
    std::span<char> GetBuffer(size_t size_hint) override;
    void BufferUpdated(size_t size) override;

   private:
    TlsTransport& tls_;
  };

  enum class State {
    kHandshake,  // Until the handshake is done.
    kOpen,       // Application data both ways.
    kFlushing,   // Close: encrypting what is buffered.
    kShutdown,   // close_notify sent: waiting for the peer's.
    kDone,       // Failed, aborted or closed.
  };

  // Create without the protocol check: null for Upgrade.
  static absl::StatusOr<std::unique_ptr<TlsTransport>> Make(
      EventLoop& loop, const TlsContext& context, TlsOptions options,
      std::unique_ptr<Protocol> protocol);
  TlsTransport(EventLoop& loop, const TlsContext& context, TlsOptions options,
               std::unique_ptr<Protocol> protocol, SSL* ssl);

  // TransportLayer.
  void OnLowerConnected() override;
  bool NeedsToRead() const override {
    return state_ == State::kHandshake || state_ == State::kShutdown;
  }
  void ReadingChanged() override;
  void OnForceClose(const absl::Status& status) override;

  // Moves the state machine on after bytes or an EOF came from below.
  void Advance();
  void DoHandshake();
  void FinishHandshake();
  void FailHandshake(absl::Status status);
  // The connection went before the handshake finished: Handshake() says
  // why (kCancelled after a Close or Abort).
  void AbandonHandshake(const absl::Status& why);
  // Decrypts for the protocol above while it reads.
  void DoRead();
  // Reads into `into` until it is full or OpenSSL has no more plaintext;
  // returns the bytes read, and in `error` SSL_get_error of the last call
  // (SSL_ERROR_NONE if `into` was filled; read_failure_ says why for a
  // fatal one).
  size_t ReadPlaintext(std::span<char> into, int& error);
  // After SSL_read stopped with `error`: the peer's close_notify, a
  // truncation, or a fatal error.
  void HandleReadStop(int error);
  // Encrypts `data` while the layer below accepts more; returns how much.
  size_t Encrypt(std::string_view data);
  // Encrypts what is buffered, and starts the shutdown once it is all out.
  void Flush();
  void DoShutdown();
  // WriteEof's close_notify, once the buffer is out.
  void MaybeSendEof();
  // Hands what OpenSSL wrote (records, alerts, tickets) to the layer below.
  void SendOutput();
  absl::Status SslError(int error, const char* during);
  void Fail(absl::Status status);
  // After ciphertext_in_ grew (DataReceived or the sink's BufferUpdated).
  void CiphertextArrived();
  void AnswerKeyUpdate();
  void FillInfo();
  // Sets the layer below's watermarks from ours, and the protocol's write
  // pause from the whole stack's size.
  absl::Status LimitLower();
  void UpdateWritePause();
  void PauseAboveHigh();
  bool CanEncrypt() const {
    return (state_ == State::kOpen || state_ == State::kFlushing) &&
           !lower_paused_ && lower() != nullptr && !lost_;
  }

  const TlsContext context_;
  const absl::Duration handshake_timeout_;
  const absl::Duration shutdown_timeout_;
  SSL* const ssl_;
  // Ciphertext from below and for below, read and written by ssl_'s BIOs.
  tls_internal::ByteQueue ciphertext_in_;
  tls_internal::ByteQueue ciphertext_out_;
  CiphertextSink ciphertext_sink_{*this};
  State state_ = State::kHandshake;
  Future<absl::Status> handshake_;
  Handle handshake_timer_;
  Handle shutdown_timer_;
  Handle resume_read_;
  bool read_scheduled_ = false;
  bool lower_paused_ = false;  // The layer below paused our writing.
  bool lower_eof_ = false;     // The layer below ended its input.
  bool peer_closed_ = false;   // The peer's close_notify arrived.
  bool eof_sent_ = false;      // WriteEof's close_notify went out.
  bool in_write_ = false;      // Inside Writev.
  absl::Status read_failure_;  // Why SSL_read failed, taken at once.
  std::optional<TlsInfo> info_;
};

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_TLS_TLS_TRANSPORT_H_
