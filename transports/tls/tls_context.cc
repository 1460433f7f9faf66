#include "transports/tls/tls_context.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "framework/exceptions.h"
#include "transports/tls/openssl_util.h"

namespace sluice {

using tls_internal::DrainOpenSslErrors;

class TlsContext::State {
 public:
  State(SSL_CTX* ctx, bool server, TlsContextOptions options)
      : ctx_(ctx), server_(server), options_(std::move(options)) {
    for (const std::string& protocol : options_.alpn_protocols) {
      alpn_wire_.push_back(static_cast<char>(protocol.size()));
      alpn_wire_.append(protocol);
    }
  }
  ~State() {
    for (auto& [name, session] : sessions_) SSL_SESSION_free(session);
    SSL_CTX_free(ctx_);
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  bool server() const { return server_; }
  const TlsContextOptions& options() const { return options_; }
  TlsContextOptions& mutable_options() { return options_; }
  const std::string& alpn_wire() const { return alpn_wire_; }

  // Client sessions by server name. Connections on several loops' threads
  // may share a context, hence the lock.
  SSL_SESSION* TakeSessionRef(const std::string& name) {
    absl::MutexLock lock(&sessions_mutex_);
    auto it = sessions_.find(name);
    if (it == sessions_.end()) return nullptr;
    SSL_SESSION_up_ref(it->second);
    return it->second;
  }
  // Takes `session`'s reference.
  void KeepSession(const std::string& name, SSL_SESSION* session) {
    absl::MutexLock lock(&sessions_mutex_);
    if (sessions_.size() >= kMaxSessions && !sessions_.contains(name)) {
      SSL_SESSION_free(sessions_.begin()->second);
      sessions_.erase(sessions_.begin());
    }
    auto [it, inserted] = sessions_.try_emplace(name, session);
    if (!inserted) {
      SSL_SESSION_free(it->second);
      it->second = session;
    }
  }

 private:
  static constexpr size_t kMaxSessions = 1024;
  SSL_CTX* const ctx_;
  const bool server_;
  TlsContextOptions options_;
  // The ALPN list in its wire format: length-prefixed names.
  std::string alpn_wire_;
  absl::Mutex sessions_mutex_;
  absl::flat_hash_map<std::string, SSL_SESSION*> sessions_
      ABSL_GUARDED_BY(sessions_mutex_);
};

namespace {

TlsContext::State* StateOf(const SSL* ssl) {
  return static_cast<TlsContext::State*>(
      SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
}

using BioPtr = tls_internal::OpenSslPtr<BIO, BIO_free>;
using X509Ptr = tls_internal::OpenSslPtr<X509, X509_free>;
using PkeyPtr = tls_internal::OpenSslPtr<EVP_PKEY, EVP_PKEY_free>;

absl::Status Invalid(const std::string& what, const std::string& detail) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", detail));
}

// The first certificate of a chain must be valid now: an expired or
// not-yet-valid one is a configuration error, caught here rather than at
// every handshake.
absl::Status CheckValidity(X509* certificate, const std::string& where) {
  if (X509_cmp_current_time(X509_get0_notAfter(certificate)) < 0) {
    return Invalid(where, "the certificate has expired");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(certificate)) > 0) {
    return Invalid(where, "the certificate is not valid yet");
  }
  return absl::OkStatus();
}

absl::Status LoadCertificateAndKey(SSL_CTX* ctx,
                                   const TlsContextOptions& options) {
  const bool from_files = !options.certificate_chain_file.empty() ||
                          !options.private_key_file.empty();
  const bool from_pem = !options.certificate_chain_pem.empty() ||
                        !options.private_key_pem.empty();
  if (from_files && from_pem) {
    return absl::InvalidArgumentError(
        "TLS certificate: give files or PEM in memory, not both");
  }
  if (from_files) {
    if (options.certificate_chain_file.empty() ||
        options.private_key_file.empty()) {
      return absl::InvalidArgumentError(
          "TLS certificate: both certificate_chain_file and private_key_file "
          "are needed");
    }
    const std::string& chain = options.certificate_chain_file;
    if (SSL_CTX_use_certificate_chain_file(ctx, chain.c_str()) != 1) {
      return Invalid(absl::StrCat("certificate chain file ", chain),
                     DrainOpenSslErrors());
    }
    const std::string& key = options.private_key_file;
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return Invalid(absl::StrCat("private key file ", key),
                     DrainOpenSslErrors());
    }
  } else if (from_pem) {
    if (options.certificate_chain_pem.empty() ||
        options.private_key_pem.empty()) {
      return absl::InvalidArgumentError(
          "TLS certificate: both certificate_chain_pem and private_key_pem "
          "are needed");
    }
    BioPtr chain(
        BIO_new_mem_buf(options.certificate_chain_pem.data(),
                        static_cast<int>(options.certificate_chain_pem.size())));
    X509Ptr leaf(
        PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr));
    if (leaf == nullptr || SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
      return Invalid("certificate_chain_pem", DrainOpenSslErrors());
    }
    // The rest of the chain, if any, until the PEM runs out.
    while (X509* intermediate =
               PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add0_chain_cert(ctx, intermediate) != 1) {
        X509_free(intermediate);
        return Invalid("certificate_chain_pem", DrainOpenSslErrors());
      }
    }
    ERR_clear_error();  // The end of the PEM is reported as an error.
    BioPtr key_bio(
        BIO_new_mem_buf(options.private_key_pem.data(),
                        static_cast<int>(options.private_key_pem.size())));
    PkeyPtr key(
        PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    if (key == nullptr || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) {
      return Invalid("private_key_pem", DrainOpenSslErrors());
    }
  } else {
    return absl::OkStatus();
  }
  const std::string where = from_files
                                ? absl::StrCat("certificate chain file ",
                                               options.certificate_chain_file)
                                : std::string("certificate_chain_pem");
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return Invalid(where, absl::StrCat("the private key does not match it (",
                                       DrainOpenSslErrors(), ")"));
  }
  return CheckValidity(SSL_CTX_get0_certificate(ctx), where);
}

// A CA file, directory or PEM was given (else clients use the system store).
bool HasConfiguredTrust(const TlsContextOptions& options) {
  return !options.ca_file.empty() || !options.ca_directory.empty() ||
         !options.ca_pem.empty();
}

absl::Status LoadTrust(SSL_CTX* ctx, const TlsContextOptions& options,
                       bool verifies) {
  if (!options.ca_file.empty() || !options.ca_directory.empty()) {
    const char* file =
        options.ca_file.empty() ? nullptr : options.ca_file.c_str();
    const char* directory =
        options.ca_directory.empty() ? nullptr : options.ca_directory.c_str();
    if (SSL_CTX_load_verify_locations(ctx, file, directory) != 1) {
      return Invalid(absl::StrCat("CA ", file != nullptr ? "file " : "directory ",
                                  file != nullptr ? file : directory),
                     DrainOpenSslErrors());
    }
  }
  if (!options.ca_pem.empty()) {
    BioPtr bio(BIO_new_mem_buf(
        options.ca_pem.data(), static_cast<int>(options.ca_pem.size())));
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int added = 0;
    while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      const int ok = X509_STORE_add_cert(store, ca);
      X509_free(ca);
      if (ok != 1) return Invalid("ca_pem", DrainOpenSslErrors());
      ++added;
    }
    ERR_clear_error();
    if (added == 0) return Invalid("ca_pem", "no PEM certificate in it");
  }
  if (verifies && !HasConfiguredTrust(options) &&
      SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return Invalid("the system trust store", DrainOpenSslErrors());
  }
  return absl::OkStatus();
}

// Servers that ask for client certificates name the CAs they trust in the
// request, so a client holding several certificates can pick the right one.
absl::Status AnnounceClientCas(SSL_CTX* ctx, const TlsContextOptions& options) {
  STACK_OF(X509_OBJECT)* trusted =
      X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
  for (int i = 0; i < sk_X509_OBJECT_num(trusted); ++i) {
    X509* ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(trusted, i));
    if (ca != nullptr && SSL_CTX_add_client_CA(ctx, ca) != 1) {
      return Invalid("the client CA names", DrainOpenSslErrors());
    }
  }
  if (!options.ca_directory.empty()) {
    STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(ctx);
    if (names == nullptr) {
      names = sk_X509_NAME_new_null();
      SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (SSL_add_dir_cert_subjects_to_stack(names,
                                           options.ca_directory.c_str()) != 1) {
      return Invalid(absl::StrCat("CA directory ", options.ca_directory),
                     DrainOpenSslErrors());
    }
  }
  return absl::OkStatus();
}

// Servers: the first of our protocols that the client offers; none in
// common fails the handshake (RFC 7301's no_application_protocol).
int SelectAlpn(SSL* ssl, const unsigned char** out, unsigned char* out_size,
               const unsigned char* offered, unsigned int offered_size,
               void* /*arg*/) {
  const std::string& ours = StateOf(ssl)->alpn_wire();
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(
          &selected, out_size,
          reinterpret_cast<const unsigned char*>(ours.data()),
          static_cast<unsigned int>(ours.size()), offered,
          offered_size) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// An SSL ex-data index (one per T) whose values are T objects the SSL
// owns: they go with it.
template <class T>
int OwnedExDataIndex() {
  static const int index = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr,
      [](void* /*parent*/, void* value, CRYPTO_EX_DATA* /*data*/,
         int /*index*/, long /*argl*/, void* /*argp*/) {
        delete static_cast<T*>(value);
      });
  return index;
}

// The server name a client connection keeps its sessions under.
int SessionKeyIndex() { return OwnedExDataIndex<std::string>(); }

// OpenSSL made a session a later connection may resume (in TLS 1.3, a
// ticket after the handshake): returning 1 keeps its reference.
int KeepNewSession(SSL* ssl, SSL_SESSION* session) {
  const auto* key =
      static_cast<const std::string*>(SSL_get_ex_data(ssl, SessionKeyIndex()));
  if (key == nullptr) return 0;
  StateOf(ssl)->KeepSession(*key, session);
  return 1;
}

// Servers: the context a client's server name chose, which the connection
// keeps alive (its SSL_CTX's app data is that context's State).
int ChosenContextIndex() { return OwnedExDataIndex<TlsContext>(); }

// The host name of a ClientHello's server_name extension (RFC 6066: a
// list of (type, length, name); the first host_name counts), "" if none.
std::string ServerNameOfClientHello(SSL* ssl) {
  const unsigned char* data = nullptr;
  size_t size = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &data, &size) !=
          1 ||
      size < 2) {
    return "";
  }
  size_t list = (size_t{data[0]} << 8) | data[1];
  size_t at = 2;
  list = std::min(list + 2, size);
  while (at + 3 <= list) {
    const unsigned char type = data[at];
    const size_t length = (size_t{data[at + 1]} << 8) | data[at + 2];
    at += 3;
    if (at + length > list) break;
    if (type == TLSEXT_NAMETYPE_host_name) {
      return std::string(reinterpret_cast<const char*>(data + at), length);
    }
    at += length;
  }
  return "";
}

// What the user's callback chose; what it throws stops here, short of
// OpenSSL's C frames.
absl::StatusOr<const TlsContext*> CallServerNameCallback(
    const TlsContext::State& state, std::string_view name) {
#if SLUICE_HAS_EXCEPTIONS
  try {
#endif
    return state.options().server_name_callback(name);
#if SLUICE_HAS_EXCEPTIONS
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("server_name_callback threw: ", e.what()));
  } catch (...) {
    return absl::InternalError("server_name_callback threw");
  }
#endif
}

// Servers with a server_name_callback: runs on the ClientHello before
// OpenSSL decides anything from it, so that a session is resumed, and
// client certificates are asked for, by the chosen context alone (each
// server context has a session id context of its own: a ticket one context
// issued never resumes under another). `arg` is the listening context's
// State; after a HelloRetryRequest the second ClientHello comes here again.
int ChooseContextByServerName(SSL* ssl, int* alert, void* arg) {
  const auto* state = static_cast<const TlsContext::State*>(arg);
  const std::string name = ServerNameOfClientHello(ssl);
  absl::StatusOr<const TlsContext*> chosen =
      CallServerNameCallback(*state, name);
  if (chosen.ok() && *chosen != nullptr && !(*chosen)->is_server()) {
    chosen = absl::InvalidArgumentError(
        "server_name_callback returned a client context");
  }
  if (!chosen.ok()) {
    ERR_raise_data(ERR_LIB_SSL, SSL_R_CALLBACK_FAILED,
                   "server name '%s' refused: %s", name.c_str(),
                   std::string(chosen.status().message()).c_str());
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (*chosen == nullptr || (*chosen)->native() == SSL_get_SSL_CTX(ssl)) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  SSL_CTX* ctx = (*chosen)->native();
  if (SSL_set_SSL_CTX(ssl, ctx) == nullptr) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  // The connection keeps the chosen context alive; a HelloRetryRequest's
  // second choice replaces the first.
  delete static_cast<TlsContext*>(SSL_get_ex_data(ssl, ChosenContextIndex()));
  SSL_set_ex_data(ssl, ChosenContextIndex(), new TlsContext(**chosen));
  // SSL_set_SSL_CTX switches the certificate and the session id context,
  // not the verify mode and parameters.
  SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), nullptr);
  SSL_set1_param(ssl, SSL_CTX_get0_param(ctx));
  return SSL_CLIENT_HELLO_SUCCESS;
}

void LogKey(const SSL* ssl, const char* line) {
  TlsContext::State* state = StateOf(ssl);
  if (state->mutable_options().key_log) state->mutable_options().key_log(line);
}

}  // namespace

absl::StatusOr<TlsContext> TlsContext::CreateServer(TlsContextOptions options) {
  return Create(std::move(options), /*server=*/true);
}

absl::StatusOr<TlsContext> TlsContext::CreateClient(TlsContextOptions options) {
  return Create(std::move(options), /*server=*/false);
}

absl::StatusOr<TlsContext> TlsContext::Create(TlsContextOptions options,
                                              bool server) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) {
    return absl::InternalError(
        absl::StrCat("SSL_CTX_new: ", DrainOpenSslErrors()));
  }
  auto state = std::make_shared<State>(ctx, server, std::move(options));
  const TlsContextOptions& o = state->options();
  SSL_CTX_set_app_data(ctx, state.get());

  if (absl::Status loaded = LoadCertificateAndKey(ctx, o); !loaded.ok()) {
    return loaded;
  }
  if (server && SSL_CTX_get0_certificate(ctx) == nullptr) {
    return absl::InvalidArgumentError(
        "a TLS server needs a certificate and its private key");
  }
  const TlsVerify verify =
      o.verify.value_or(server ? TlsVerify::kNone : TlsVerify::kRequired);
  if (absl::Status trusted = LoadTrust(ctx, o, verify != TlsVerify::kNone);
      !trusted.ok()) {
    return trusted;
  }
  // Not the whole system store: that would be tens of KiB per request.
  if (server && verify != TlsVerify::kNone && HasConfiguredTrust(o)) {
    if (absl::Status announced = AnnounceClientCas(ctx, o); !announced.ok()) {
      return announced;
    }
  }
  int mode = SSL_VERIFY_NONE;
  if (verify != TlsVerify::kNone) mode = SSL_VERIFY_PEER;
  if (verify == TlsVerify::kRequired && server) {
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  SSL_CTX_set_verify(ctx, mode, nullptr);

  SSL_CTX_set_min_proto_version(
      ctx, o.min_version == TlsVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  if (!o.cipher_list.empty() &&
      SSL_CTX_set_cipher_list(ctx, o.cipher_list.c_str()) != 1) {
    return Invalid(absl::StrCat("cipher_list '", o.cipher_list, "'"),
                   DrainOpenSslErrors());
  }
  if (!o.cipher_suites.empty() &&
      SSL_CTX_set_ciphersuites(ctx, o.cipher_suites.c_str()) != 1) {
    return Invalid(absl::StrCat("cipher_suites '", o.cipher_suites, "'"),
                   DrainOpenSslErrors());
  }
  for (const std::string& protocol : o.alpn_protocols) {
    if (protocol.empty() || protocol.size() > 255) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ALPN protocol names are 1 to 255 bytes, got '", protocol, "'"));
    }
  }
  if (!o.alpn_protocols.empty()) {
    if (server) {
      SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, nullptr);
    } else if (SSL_CTX_set_alpn_protos(
                   ctx,
                   reinterpret_cast<const unsigned char*>(
                       state->alpn_wire().data()),
                   static_cast<unsigned int>(state->alpn_wire().size())) != 0) {
      return Invalid("alpn_protocols", DrainOpenSslErrors());
    }
  }
  if (o.server_name_callback) {
    if (!server) {
      return absl::InvalidArgumentError(
          "server_name_callback is for server contexts");
    }
    SSL_CTX_set_client_hello_cb(ctx, ChooseContextByServerName, state.get());
  }
  if (server) {
    // Sessions resume only under the context that made them (SNI).
    unsigned char session_context[SSL_MAX_SID_CTX_LENGTH];
    if (RAND_bytes(session_context, sizeof(session_context)) != 1 ||
        SSL_CTX_set_session_id_context(ctx, session_context,
                                       sizeof(session_context)) != 1) {
      return absl::InternalError(absl::StrCat("session id context: ",
                                              DrainOpenSslErrors()));
    }
  }
  if (o.key_log) SSL_CTX_set_keylog_callback(ctx, LogKey);
  if (!server && o.session_resumption) {
    SSL_CTX_set_session_cache_mode(
        ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, KeepNewSession);
  }

  // Renegotiation is refused (it has had its attacks, and TLS 1.3 has none);
  // buffers are released while a connection is idle.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return TlsContext(std::move(state));
}

bool TlsContext::is_server() const { return state_->server(); }

bool TlsContext::verify_hostname() const {
  const TlsContextOptions& o = state_->options();
  return !state_->server() && o.verify_hostname &&
         o.verify.value_or(TlsVerify::kRequired) != TlsVerify::kNone;
}

SSL_CTX* TlsContext::native() const { return state_->ctx(); }

void TlsContext::PrepareResumption(SSL* ssl,
                                   const std::string& server_name) const {
  if (state_->server() || !state_->options().session_resumption ||
      server_name.empty()) {
    return;
  }
  SSL_set_ex_data(ssl, SessionKeyIndex(), new std::string(server_name));
  if (SSL_SESSION* session = state_->TakeSessionRef(server_name)) {
    SSL_set_session(ssl, session);  // Takes its own reference.
    SSL_SESSION_free(session);
  }
}

}  // namespace sluice
