#ifndef SLUICE_TRANSPORTS_TLS_TLS_CONTEXT_H_
#define SLUICE_TRANSPORTS_TLS_TLS_CONTEXT_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"

// OpenSSL's types, without its headers.
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace sluice {

class TlsContext;

enum class TlsVersion { kTls12, kTls13 };

// Whether, and how strictly, the peer's certificate is checked.
enum class TlsVerify {
  kNone,      // Not asked for (servers) or not checked (clients: insecure).
  kOptional,  // Servers: asked for, checked if sent.
  kRequired,  // Must be sent and valid (the default for clients).
};

struct TlsContextOptions {
  // Our certificate chain and private key, from files or PEM in memory.
  // Servers need one; clients only for client-certificate (mutual) TLS.
  std::string certificate_chain_file = {};
  std::string private_key_file = {};
  std::string certificate_chain_pem = {};
  std::string private_key_pem = {};

  // Whom we trust to sign the peer's certificate. With none of these a
  // client that verifies uses the system's trust store.
  std::string ca_file = {};
  std::string ca_directory = {};
  std::string ca_pem = {};

  // Defaults: kRequired for clients, kNone for servers.
  std::optional<TlsVerify> verify = std::nullopt;
  // Clients: the certificate must name the server (DNS or IP SANs) given
  // as TlsOptions::server_name. On by default, as in asyncio.
  bool verify_hostname = true;

  TlsVersion min_version = TlsVersion::kTls12;
  // OpenSSL cipher strings: TLS 1.2 (`cipher_list`) and TLS 1.3
  // (`cipher_suites`); empty keeps OpenSSL's defaults.
  std::string cipher_list = {};
  std::string cipher_suites = {};

  // ALPN protocols in preference order ("h2", "http/1.1"). A server picks
  // the first of its own that the client offers; no overlap fails the
  // handshake.
  std::vector<std::string> alpn_protocols = {};

  // Servers: called on each ClientHello with the name the client asked for
  // (SNI, as sent: compare case-insensitively if you must; empty if none),
  // to choose the context that serves it: its certificate, client checks,
  // session resumption and ALPN list (protocol versions and ciphers stay
  // this context's). nullptr keeps this context; an error refuses the
  // handshake with an unrecognized_name alert. The returned context need
  // only live until the call returns (the connection keeps its own handle).
  // A context shared by loops on several threads calls it from each.
  absl::AnyInvocable<absl::StatusOr<const TlsContext*>(
      std::string_view server_name) const>
      server_name_callback = {};

  // Clients: keep the session each server (by TlsOptions::server_name)
  // gives, and offer it on the next connection to that name, which then
  // skips the full handshake (TlsInfo::resumed). Servers issue session
  // tickets either way (OpenSSL's default).
  bool session_resumption = true;

  // Called with each key-log line (the SSLKEYLOGFILE format), to decrypt a
  // packet capture. For debugging only.
  absl::AnyInvocable<void(std::string_view line)> key_log = {};
};

// A TLS configuration (OpenSSL's SSL_CTX), made once and shared by many
// connections: a cheap handle, copies share it, and connections keep it
// alive as long as they need it.
class TlsContext {
 public:
  // Bad options (unreadable or mismatched certificate and key files, an
  // unknown cipher, a server without a certificate) are kInvalidArgument,
  // naming the file and the reason.
  static absl::StatusOr<TlsContext> CreateServer(TlsContextOptions options);
  static absl::StatusOr<TlsContext> CreateClient(TlsContextOptions options);

  bool is_server() const;
  bool verify_hostname() const;

  // The OpenSSL context, for what these options do not cover.
  SSL_CTX* native() const;

  class State;

 private:
  friend class TlsTransport;
  // Clients: offers `ssl` the session last kept for `server_name`, and
  // keeps the sessions `ssl` receives under that name.
  void PrepareResumption(SSL* ssl, const std::string& server_name) const;

  explicit TlsContext(std::shared_ptr<State> state) : state_(std::move(state)) {}
  static absl::StatusOr<TlsContext> Create(TlsContextOptions options,
                                           bool server);

  std::shared_ptr<State> state_;
};

}  // namespace sluice

#endif  // SLUICE_TRANSPORTS_TLS_TLS_CONTEXT_H_
