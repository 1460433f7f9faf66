#include "transports/tls/tls_transport.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "transports/tls/openssl_util.h"

namespace sluice {
namespace {

using tls_internal::DrainOpenSslErrors;

// Plaintext encrypted per hand-over to the layer below: a few records, so
// that one large write neither becomes one huge ciphertext buffer nor one
// send per 16 KiB record.
constexpr size_t kEncryptBatch = 64 * 1024;
// What SSL_read fills for a protocol that does not lend its memory.
constexpr size_t kPlaintextChunk = 64 * 1024;
// What the layer lends the transport below to receive into, at least: a
// few records, as much as a socket read takes at once.
constexpr size_t kMinCiphertextLend = 64 * 1024;

char* PlaintextBuffer() {
  // Own to this layer (not the transports' receive buffer, which the
  // bytes being decrypted may still be in). A TLS layer over TLS shares
  // it: each layer has consumed its chunk before it reads the next.
  thread_local std::array<char, kPlaintextChunk> buffer;
  return buffer.data();
}

// Where DoShutdown drops application data that arrives after Close: not
// PlaintextBuffer, which a DataReceived that called Close may still read.
char* DiscardBuffer() {
  thread_local std::array<char, kPlaintextChunk> buffer;
  return buffer.data();
}

bool IsIpAddress(const std::string& name) {
  unsigned char address[16];
  return inet_pton(AF_INET, name.c_str(), address) == 1 ||
         inet_pton(AF_INET6, name.c_str(), address) == 1;
}

std::string PeerSubject(X509* certificate) {
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, X509_get_subject_name(certificate), 0,
                     XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string subject(data, size > 0 ? static_cast<size_t>(size) : 0);
  BIO_free(bio);
  return subject;
}

void AddSubjectAltNames(X509* certificate, TlsInfo& info) {
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      const ASN1_IA5STRING* dns = name->d.dNSName;
      info.peer_dns_names.emplace_back(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
          static_cast<size_t>(ASN1_STRING_length(dns)));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      const int length = ASN1_STRING_length(ip);
      char text[INET6_ADDRSTRLEN] = {};
      const int family = length == 4 ? AF_INET : AF_INET6;
      if ((length == 4 || length == 16) &&
          inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof(text))) {
        info.peer_ip_addresses.emplace_back(text);
      }
    }
  }
  GENERAL_NAMES_free(names);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsTransport>> TlsTransport::Create(
    EventLoop& loop, const TlsContext& context, TlsOptions options,
    std::unique_ptr<Protocol> protocol) {
  if (protocol == nullptr) {
    return absl::InvalidArgumentError("a TLS transport needs a protocol");
  }
  return Make(loop, context, std::move(options), std::move(protocol));
}

absl::StatusOr<TlsTransport*> TlsTransport::Upgrade(Transport& transport,
                                                    const TlsContext& context,
                                                    TlsOptions options) {
  absl::StatusOr<std::unique_ptr<TlsTransport>> layer =
      Make(transport.loop(), context, std::move(options), nullptr);
  if (!layer.ok()) return layer.status();
  TlsTransport* tls = layer->get();
  // The limits the protocol chose for the connection are now the layer's.
  const WriteBufferLimits limits = transport.GetWriteBufferLimits();
  if (absl::Status adopted = tls->TransportLayer::SetWriteBufferLimits(
          limits.high, limits.low);
      !adopted.ok()) {
    return adopted;
  }
  absl::Status inserted = Insert(transport, *std::move(layer));
  if (!inserted.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("StartTls: ", inserted.message()));
  }
  return tls;
}

absl::Status TlsTransport::ValidateOptions(const TlsContext& context,
                                           const TlsOptions& options) {
  if (options.handshake_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the TLS handshake timeout must be positive, got ",
        absl::FormatDuration(options.handshake_timeout)));
  }
  if (options.shutdown_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the TLS shutdown timeout must be positive, got ",
        absl::FormatDuration(options.shutdown_timeout)));
  }
  if (!context.is_server() && context.verify_hostname() &&
      options.server_name.empty()) {
    return absl::InvalidArgumentError(
        "a TLS client that verifies the server's name needs "
        "TlsOptions::server_name (or a context with verify_hostname off)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TlsTransport>> TlsTransport::Make(
    EventLoop& loop, const TlsContext& context, TlsOptions options,
    std::unique_ptr<Protocol> protocol) {
  if (absl::Status valid = ValidateOptions(context, options); !valid.ok()) {
    return valid;
  }
  ERR_clear_error();
  SSL* ssl = SSL_new(context.native());
  if (ssl == nullptr) {
    return absl::InternalError(absl::StrCat("SSL_new: ", DrainOpenSslErrors()));
  }
  if (!context.is_server() && !options.server_name.empty()) {
    const std::string name(options.server_name);
    const bool ip = IsIpAddress(name);
    // SNI carries host names only (RFC 6066).
    if (!ip && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
      SSL_free(ssl);
      return absl::InvalidArgumentError(absl::StrCat(
          "server_name '", name, "': ", DrainOpenSslErrors()));
    }
    if (context.verify_hostname()) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      const int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
      if (set != 1) {
        SSL_free(ssl);
        return absl::InvalidArgumentError(absl::StrCat(
            "server_name '", name, "': ", DrainOpenSslErrors()));
      }
    }
  }
  context.PrepareResumption(ssl, std::string(options.server_name));
  return std::unique_ptr<TlsTransport>(new TlsTransport(
      loop, context, std::move(options), std::move(protocol), ssl));
}

TlsTransport::TlsTransport(EventLoop& loop, const TlsContext& context,
                           TlsOptions options,
                           std::unique_ptr<Protocol> protocol, SSL* ssl)
    : TransportLayer(loop, std::move(protocol)),
      context_(context),
      handshake_timeout_(options.handshake_timeout),
      shutdown_timeout_(options.shutdown_timeout),
      ssl_(ssl),
      handshake_(loop) {
  // ssl_ owns the BIOs. An empty incoming queue means "wait for more",
  // not EOF.
  SSL_set_bio(ssl_, tls_internal::NewQueueBio(&ciphertext_in_),
              tls_internal::NewQueueBio(&ciphertext_out_));
  // Nobody waits for this connection any more (a connect or StartTls was
  // cancelled): it goes. Only while pending, and the layer completes the
  // future before it is destroyed.
  handshake_.SetCancelHook([this] { Abort(); });
  if (context_.is_server()) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
}

TlsTransport::~TlsTransport() {
  if (state_ == State::kHandshake) {
    // Not Describe(): the transport below, which owns this layer, is being
    // destroyed.
    AbandonHandshake(absl::CancelledError(
        "the TLS handshake was abandoned: the connection was destroyed"));
  }
  handshake_timer_.Cancel();
  shutdown_timer_.Cancel();
  resume_read_.Cancel();
  SSL_free(ssl_);
}

void TlsTransport::OnLowerConnected() {
  if (absl::Status limited = LimitLower(); !limited.ok()) {
    ForceClose(std::move(limited));
    return;
  }
  handshake_timer_ = loop_.CallLater(handshake_timeout_, [this] {
    FailHandshake(absl::DeadlineExceededError(absl::StrCat(
        "the TLS handshake with ", Describe(), " took longer than ",
        absl::FormatDuration(handshake_timeout_), ": aborted")));
  });
  DoHandshake();  // A client speaks first.
}

void TlsTransport::DataReceived(std::string_view data) {
  ciphertext_in_.Append(data);
  CiphertextArrived();
}

void TlsTransport::CiphertextArrived() {
  if (state_ == State::kDone || lost_) {
    ciphertext_in_.Clear();
    return;
  }
  Advance();
}

std::span<char> TlsTransport::CiphertextSink::GetBuffer(size_t size_hint) {
  // A record or two at least; the socket reads as much as it is lent.
  return tls_.ciphertext_in_.Lend(std::max(size_hint, kMinCiphertextLend));
}

void TlsTransport::CiphertextSink::BufferUpdated(size_t size) {
  tls_.ciphertext_in_.Commit(size);
  tls_.CiphertextArrived();
}

bool TlsTransport::EofReceived() {
  lower_eof_ = true;
  Advance();
  // This layer decides when the connection below closes.
  return true;
}

void TlsTransport::Advance() {
  switch (state_) {
    case State::kHandshake:
      DoHandshake();
      break;
    case State::kOpen:
      DoRead();
      break;
    case State::kFlushing:
    case State::kShutdown:
      DoShutdown();
      break;
    case State::kDone:
      break;
  }
}

void TlsTransport::DoHandshake() {
  ERR_clear_error();
  const int result = SSL_do_handshake(ssl_);
  // Read OpenSSL's verdict before SendOutput: below, another TLS layer's
  // calls reset this thread's error queue.
  const int error = result == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, result);
  const absl::Status failure =
      error == SSL_ERROR_NONE || error == SSL_ERROR_WANT_READ
          ? absl::OkStatus()
          : SslError(error, "handshake");
  SendOutput();
  if (result == 1) {
    FinishHandshake();
    return;
  }
  if (error == SSL_ERROR_WANT_READ) {
    if (lower_eof_) {
      FailHandshake(absl::UnavailableError(absl::StrCat(
          "the connection to ", Describe(),
          " closed during the TLS handshake")));
    }
    return;
  }
  FailHandshake(failure);
}

void TlsTransport::FinishHandshake() {
  handshake_timer_.Cancel();
  state_ = State::kOpen;
  FillInfo();
  handshake_.SetResult(absl::OkStatus());
  MakeConnection();
  if (lost_) return;
  Flush();
  UpdateWritePause();
  // Application data may have come with the handshake's last flight.
  DoRead();
}

void TlsTransport::AbandonHandshake(const absl::Status& why) {
  handshake_timer_.Cancel();
  handshake_.SetResult(
      why.ok() ? absl::CancelledError(absl::StrCat(
                     "the TLS handshake with ", Describe(),
                     " was abandoned: the connection was closed"))
               : why);
}

void TlsTransport::FailHandshake(absl::Status status) {
  if (state_ != State::kHandshake) return;
  handshake_timer_.Cancel();
  handshake_.SetResult(status);
  Fail(std::move(status));
}

void TlsTransport::Fail(absl::Status status) {
  if (state_ == State::kDone) return;
  const bool alert = state_ == State::kHandshake;
  state_ = State::kDone;
  if (alert && lower() != nullptr && !lost_) {
    // Let the peer read OpenSSL's alert (unknown CA, no shared cipher)
    // before the connection goes.
    SendOutput();
    lost_ = true;
    closing_ = true;
    buffer_.Clear();
    ScheduleConnectionLost(status);
    lower()->Close();
    return;
  }
  ForceClose(status);
}

void TlsTransport::OnForceClose(const absl::Status& status) {
  if (state_ == State::kHandshake) AbandonHandshake(status);
  state_ = State::kDone;
  shutdown_timer_.Cancel();
  resume_read_.Cancel();
  TransportLayer::OnForceClose(status);
}

void TlsTransport::ConnectionLost(const absl::Status& status) {
  if (state_ == State::kHandshake) {
    handshake_timer_.Cancel();
    handshake_.SetResult(
        status.ok() ? absl::UnavailableError(absl::StrCat(
                          "the connection to ", Describe(),
                          " closed during the TLS handshake"))
                    : status);
  }
  state_ = State::kDone;
  shutdown_timer_.Cancel();
  resume_read_.Cancel();
  TransportLayer::ConnectionLost(status);
}

void TlsTransport::ReadingChanged() {
  TransportLayer::ReadingChanged();
  if (state_ == State::kOpen && IsReading() && !read_scheduled_ &&
      (SSL_pending(ssl_) > 0 || ciphertext_in_.size() > 0 ||
       lower_eof_)) {
    // What arrived while paused, from the loop (not inside ResumeReading).
    read_scheduled_ = true;
    resume_read_ = loop_.CallSoon([this] {
      read_scheduled_ = false;
      DoRead();
    });
  }
}

void TlsTransport::DoRead() {
  while (state_ == State::kOpen && IsReading() && !lost_) {
    const size_t ciphertext = ciphertext_in_.size();
    const size_t plaintext = static_cast<size_t>(SSL_pending(ssl_));
    if (ciphertext == 0 && plaintext == 0) {
      if (lower_eof_) HandleReadStop(SSL_ERROR_WANT_READ);
      return;
    }
    int error = SSL_ERROR_NONE;
    if (BufferedProtocol* const buffered = buffered_) {
      std::span<char> lent =
          LendBuffer(*buffered, std::max(plaintext, ciphertext));
      if (lent.empty()) return;
      const size_t n = ReadPlaintext(lent, error);
      if (n > 0 && !Call("protocol BufferUpdated() failed",
                         [&] { buffered->BufferUpdated(n); })) {
        return;
      }
    } else {
      const std::span<char> chunk(PlaintextBuffer(), kPlaintextChunk);
      const size_t n = ReadPlaintext(chunk, error);
      if (n > 0) DeliverUp(std::string_view(chunk.data(), n));
    }
    if (error != SSL_ERROR_NONE) {
      HandleReadStop(error);
      if (!lost_) AnswerKeyUpdate();
      // Records that are not application data (tickets, key updates) may
      // have produced an answer.
      if (!lost_) SendOutput();
      return;
    }
  }
}

// A peer's KeyUpdate that asks for ours: OpenSSL would send it with our
// next write; a connection that only reads answers now. SSL_key_update
// marks a handshake message as due, which SSL_do_handshake writes.
void TlsTransport::AnswerKeyUpdate() {
  if (SSL_get_key_update_type(ssl_) == SSL_KEY_UPDATE_NONE) return;
  ERR_clear_error();
  if (SSL_key_update(ssl_, SSL_KEY_UPDATE_NOT_REQUESTED) != 1) {
    Fail(SslError(SSL_ERROR_SSL, "key update"));
    return;
  }
  const int sent = SSL_do_handshake(ssl_);
  if (sent != 1) Fail(SslError(SSL_get_error(ssl_, sent), "key update"));
}

size_t TlsTransport::ReadPlaintext(std::span<char> into, int& error) {
  size_t filled = 0;
  error = SSL_ERROR_NONE;
  while (filled < into.size()) {
    ERR_clear_error();
    size_t n = 0;
    const int result =
        SSL_read_ex(ssl_, into.data() + filled, into.size() - filled, &n);
    if (result != 1) {
      error = SSL_get_error(ssl_, result);
      // Before the plaintext goes up: what it reaches may reset this
      // thread's error queue.
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_ZERO_RETURN) {
        read_failure_ = SslError(error, "read");
      }
      break;
    }
    filled += n;
  }
  return filled;
}

void TlsTransport::HandleReadStop(int error) {
  switch (error) {
    case SSL_ERROR_WANT_READ:
      if (lower_eof_ && ciphertext_in_.size() == 0 &&
          SSL_pending(ssl_) == 0) {
        Fail(absl::DataLossError(absl::StrCat(
            "the connection to ", Describe(),
            " ended without a TLS close_notify: the data may be truncated")));
      }
      return;
    case SSL_ERROR_ZERO_RETURN:
      // The peer's close_notify: a clean EOF. The protocol's EofReceived
      // decides, as over TCP: close (our close_notify follows what is
      // buffered) or keep writing (the peer half-closed, TLS 1.3 style).
      peer_closed_ = true;
      DeliverEofUp();
      return;
    default:
      Fail(std::exchange(read_failure_, absl::OkStatus()));
  }
}

void TlsTransport::Write(std::string_view data) {
  Writev(std::span<const std::string_view>(&data, 1));
}

void TlsTransport::Writev(std::span<const std::string_view> buffers) {
  size_t total = 0;
  for (std::string_view buffer : buffers) total += buffer.size();
  if (total == 0 || DropWriteIfClosed(total, eof_requested_)) return;
  // The protocol may Close or Abort inside Encrypt (in PauseWriting): the
  // shutdown waits until the rest of this write is buffered behind it.
  in_write_ = true;
  for (std::string_view piece : buffers) {
    // Straight to OpenSSL while nothing waits before it.
    if (buffer_.empty() && CanEncrypt()) piece.remove_prefix(Encrypt(piece));
    if (lost_) break;
    if (!piece.empty()) buffer_.Append(piece);
  }
  in_write_ = false;
  if ((state_ == State::kFlushing || eof_requested_) && !lost_) Flush();
  PauseAboveHigh();
}

void TlsTransport::WriteEof() {
  if (closing_ || eof_requested_ || state_ != State::kOpen) return;
  eof_requested_ = true;
  MaybeSendEof();
}

void TlsTransport::MaybeSendEof() {
  if (!eof_requested_ || eof_sent_ || in_write_ || !buffer_.empty() ||
      !CanEncrypt()) {
    return;
  }
  eof_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  SendOutput();
}

absl::Status TlsTransport::SetWriteBufferLimits(std::optional<size_t> high,
                                                std::optional<size_t> low) {
  absl::Status own = TransportLayer::SetWriteBufferLimits(high, low);
  if (!own.ok()) return own;
  absl::Status below = LimitLower();
  PauseAboveHigh();
  return below;
}

size_t TlsTransport::Encrypt(std::string_view data) {
  size_t done = 0;
  while (done < data.size() && CanEncrypt()) {
    const size_t batch_end = std::min(data.size(), done + kEncryptBatch);
    while (done < batch_end) {
      ERR_clear_error();
      size_t written = 0;
      const int result = SSL_write_ex(ssl_, data.data() + done,
                                      batch_end - done, &written);
      if (result != 1) {
        Fail(SslError(SSL_get_error(ssl_, result), "write"));
        return done;
      }
      done += written;
    }
    // The layer below may pause us here, inside its Write.
    SendOutput();
  }
  return done;
}

void TlsTransport::Flush() {
  if (in_write_) return;  // Writev flushes once it has buffered the rest.
  while (!buffer_.empty() && CanEncrypt()) {
    std::array<iovec, 1> front;
    buffer_.Peek(front);
    const std::string_view piece(static_cast<const char*>(front[0].iov_base),
                                 front[0].iov_len);
    const size_t done = Encrypt(piece);
    buffer_.Consume(done);
    if (done < piece.size()) break;
  }
  MaybeSendEof();
  if (state_ == State::kFlushing && buffer_.empty() && !lost_) DoShutdown();
}

// The layer below holds at most about our low watermark (see
// LimitLower): past it, it pauses us and we stop encrypting, so the rest
// waits here as plaintext.
void TlsTransport::PauseWriting() {
  lower_paused_ = true;
  // The protocol was told it is paused (StartTls on a paused connection):
  // that holds until the whole stack drains to the low watermark.
  if (told_paused_) AddWritePause(WritePause::kLowerTransport);
  UpdateWritePause();
}

void TlsTransport::ResumeWriting() {
  lower_paused_ = false;
  Flush();
  UpdateWritePause();
}

absl::Status TlsTransport::LimitLower() {
  if (lower() == nullptr) return absl::OkStatus();
  const WriteBufferLimits own = GetWriteBufferLimits();
  // Refused (an overflow limit below our low watermark): the stack's
  // watermarks would not hold, so it is an error, not a shrug.
  absl::Status limited = lower()->SetWriteBufferLimits(own.low, own.low);
  if (!limited.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the transport below a TLS layer refused watermarks of ", own.low,
        " bytes: ", limited.message()));
  }
  return absl::OkStatus();
}

// The protocol's pause follows the whole stack's size against our
// watermarks. Whenever that size is above low, the layer below is paused
// (it holds more than low, or we hold plaintext only while it is paused),
// so its ResumeWriting is the event that brings us back here.
// Only from the loop's callbacks: never resumes inside the protocol's own
// calls (Write, SetWriteBufferLimits), which only pause.
void TlsTransport::UpdateWritePause() {
  // Not before the layer below is known (Insert carries a pause first).
  if (lost_ || lower() == nullptr) return;
  if (GetWriteBufferSize() <= GetWriteBufferLimits().low) {
    RemoveWritePause(WritePause::kLowerTransport);
  } else {
    PauseAboveHigh();
  }
}

void TlsTransport::PauseAboveHigh() {
  if (!lost_ && lower() != nullptr &&
      GetWriteBufferSize() > GetWriteBufferLimits().high) {
    AddWritePause(WritePause::kLowerTransport);
  }
}

void TlsTransport::Close() {
  if (closing_) return;
  closing_ = true;
  if (state_ == State::kHandshake) {
    // Nothing to flush (asyncio aborts too).
    ForceClose(absl::OkStatus());
    return;
  }
  if (state_ != State::kOpen) return;
  state_ = State::kFlushing;
  shutdown_timer_ = loop_.CallLater(shutdown_timeout_, [this] {
    Fail(absl::DeadlineExceededError(absl::StrCat(
        "the TLS shutdown with ", Describe(), " timed out after ",
        absl::FormatDuration(shutdown_timeout_),
        state_ == State::kFlushing
            ? ": the peer did not read what was left to send"
            : ": the peer did not answer close_notify")));
  });
  UpdateLowerReading();
  Flush();
}

void TlsTransport::DoShutdown() {
  // Application data after our Close is dropped, as by any transport that
  // closes (while flushing too, or it would pile up in the BIO); the loop
  // runs until the peer's close_notify.
  while (!peer_closed_) {
    ERR_clear_error();
    size_t n = 0;
    const int result =
        SSL_read_ex(ssl_, DiscardBuffer(), kPlaintextChunk, &n);
    if (result == 1) continue;
    const int error = SSL_get_error(ssl_, result);
    if (error == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
    } else if (error == SSL_ERROR_WANT_READ) {
      break;
    } else {
      Fail(SslError(error, "shutdown"));
      return;
    }
  }
  if (state_ == State::kFlushing) {
    if (!buffer_.empty()) return;  // Flush comes back here when it is.
    state_ = State::kShutdown;
    UpdateLowerReading();  // The peer's close_notify must be read.
  }
  ERR_clear_error();
  SSL_shutdown(ssl_);  // Queues our close_notify (once).
  SendOutput();
  if (peer_closed_ || lower_eof_) {
    // Both sides said so, or the peer is gone: close below (it flushes,
    // then reports ConnectionLost(OK), which comes up through here).
    shutdown_timer_.Cancel();
    state_ = State::kDone;
    if (lower() != nullptr) lower()->Close();
  }
}

void TlsTransport::SendOutput() {
  if (ciphertext_out_.empty()) return;
  if (lower() != nullptr) lower()->Write(ciphertext_out_.View());
  ciphertext_out_.Clear();
}

absl::Status TlsTransport::SslError(int error, const char* during) {
  if (error == SSL_ERROR_SSL) {
    const long verify = SSL_get_verify_result(ssl_);
    // OpenSSL keeps a verify result under SSL_VERIFY_NONE too: it is the
    // cause only when verification was asked for and is what failed.
    if (state_ == State::kHandshake && verify != X509_V_OK &&
        SSL_get_verify_mode(ssl_) != SSL_VERIFY_NONE &&
        ERR_GET_REASON(ERR_peek_error()) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      ERR_clear_error();
      return absl::UnauthenticatedError(absl::StrCat(
          "TLS handshake with ", Describe(),
          " failed: certificate verify failed: ",
          X509_verify_cert_error_string(verify)));
    }
    return absl::UnavailableError(absl::StrCat(
        "TLS ", during, " with ", Describe(), " failed: ",
        DrainOpenSslErrors()));
  }
  if (error == SSL_ERROR_SYSCALL) {
    // Our BIOs make no system calls: OpenSSL saw an unexpected EOF.
    return absl::UnavailableError(absl::StrCat(
        "TLS ", during, " with ", Describe(),
        " failed: unexpected end of the stream"));
  }
  return absl::InternalError(absl::StrCat("TLS ", during, " with ",
                                          Describe(), ": SSL_get_error ",
                                          error));
}

void TlsTransport::FillInfo() {
  TlsInfo info;
  info.version = SSL_get_version(ssl_);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_)) {
    info.cipher = SSL_CIPHER_get_name(cipher);
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpn_size = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_size);
  if (alpn != nullptr) {
    info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_size);
  }
  if (const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) {
    info.server_name = name;
  }
  info.resumed = SSL_session_reused(ssl_) == 1;
  if (X509* peer = SSL_get1_peer_certificate(ssl_)) {
    info.peer_subject = PeerSubject(peer);
    AddSubjectAltNames(peer, info);
    unsigned char* der = nullptr;
    const int size = i2d_X509(peer, &der);
    if (size > 0) {
      info.peer_certificate_der.assign(reinterpret_cast<char*>(der),
                                       static_cast<size_t>(size));
      OPENSSL_free(der);
    }
    X509_free(peer);
  }
  info_ = std::move(info);
}

const void* TlsTransport::QueryExtraInfo(ExtraInfoId id) const {
  if (id == ExtraInfoId::Of<TlsInfo>()) {
    return info_.has_value() ? &*info_ : nullptr;
  }
  return TransportLayer::QueryExtraInfo(id);
}

}  // namespace sluice
