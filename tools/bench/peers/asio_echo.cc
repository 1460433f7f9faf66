// A TCP echo server on Boost.Asio, in the shape of Asio's own async echo
// example: one io_context run by one thread, and per connection a session
// that loops async_read_some -> async_write (of exactly what was read) on a
// reusable buffer (--buffer_size, 256 KiB by default like uvloop's, so that
// reads are sized alike), kept alive by the shared_ptr its handlers hold.
//
// --tls runs the same loop over boost::asio::ssl::stream (OpenSSL) after a
// server handshake, with the certificate chain and key from --cert/--key.
//
//   asio_echo --port=0     # prints "listening on 127.0.0.1:PORT"
//   asio_echo --port=0 --tls --cert=cert.pem --key=key.pem
//
// A peer for tools/bench/echo_bench.sh; see docs/benchmarks.md.

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "boost/asio.hpp"
#include "boost/asio/ssl.hpp"
#include "openssl/ssl.h"

ABSL_FLAG(int, port, 0, "Port on 127.0.0.1; 0 picks a free one.");
ABSL_FLAG(int, buffer_size, 256 * 1024, "Read buffer per connection.");
ABSL_FLAG(bool, tls, false, "Serve TLS (1.2 or 1.3) instead of plain TCP.");
ABSL_FLAG(std::string, cert, "", "With --tls: PEM certificate chain file.");
ABSL_FLAG(std::string, key, "", "With --tls: PEM private key file.");

namespace {

using boost::asio::ip::tcp;
namespace ssl = boost::asio::ssl;

using TlsStream = ssl::stream<tcp::socket>;

// Stream is tcp::socket or TlsStream: one echo loop for both, so that the
// TLS numbers differ from the plain ones by TLS alone.
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  // `args` construct the stream: a socket, or a socket and an ssl::context.
  template <typename... Args>
  explicit Session(std::size_t buffer_size, Args&&... args)
      : stream_(std::forward<Args>(args)...), buffer_(buffer_size) {}

  void Start() {
    boost::system::error_code ignored;
    stream_.lowest_layer().set_option(tcp::no_delay(true), ignored);
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      stream_.async_handshake(
          ssl::stream_base::server,
          [self = this->shared_from_this()](boost::system::error_code ec) {
            if (!ec) self->Read();
          });
    } else {
      Read();
    }
  }

 private:
  void Read() {
    stream_.async_read_some(
        boost::asio::buffer(buffer_),
        [self = this->shared_from_this()](boost::system::error_code ec,
                                          std::size_t n) {
          if (!ec) self->Write(n);
        });
  }

  void Write(std::size_t n) {
    boost::asio::async_write(
        stream_, boost::asio::buffer(buffer_, n),
        [self = this->shared_from_this()](boost::system::error_code ec,
                                          std::size_t) {
          if (!ec) self->Read();
        });
  }

  Stream stream_;
  std::vector<char> buffer_;
};

// `tls` is null for plain TCP; it outlives every session, as ssl::stream
// requires.
void Accept(tcp::acceptor& acceptor, ssl::context* tls) {
  acceptor.async_accept([&acceptor, tls](boost::system::error_code ec,
                                         tcp::socket socket) {
    if (!ec) {
      const std::size_t buffer_size = absl::GetFlag(FLAGS_buffer_size);
      if (tls != nullptr) {
        std::make_shared<Session<TlsStream>>(buffer_size, std::move(socket),
                                             *tls)
            ->Start();
      } else {
        std::make_shared<Session<tcp::socket>>(buffer_size, std::move(socket))
            ->Start();
      }
    }
    Accept(acceptor, tls);
  });
}

// Asio reports a missing file as just "asio.ssl error", so look first.
void CheckReadable(const char* flag, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    throw std::runtime_error(
        absl::StrFormat("--%s=%s: %s", flag, path, std::strerror(errno)));
  }
  std::fclose(f);
}

ssl::context MakeTlsContext(const std::string& cert, const std::string& key) {
  if (cert.empty() || key.empty()) {
    throw std::runtime_error("--tls needs --cert and --key (PEM files)");
  }
  CheckReadable("cert", cert);
  CheckReadable("key", key);
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds |
                  ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  try {
    ctx.use_certificate_chain_file(cert);
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error(
        absl::StrFormat("--cert=%s: %s", cert, e.code().message()));
  }
  try {
    ctx.use_private_key_file(key, ssl::context::pem);
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error(
        absl::StrFormat("--key=%s: %s", key, e.code().message()));
  }
  return ctx;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  try {
    std::optional<ssl::context> tls;
    if (absl::GetFlag(FLAGS_tls)) {
      tls.emplace(
          MakeTlsContext(absl::GetFlag(FLAGS_cert), absl::GetFlag(FLAGS_key)));
    }
    // concurrency_hint 1: one thread runs the io_context, so Asio may skip
    // its internal locking.
    boost::asio::io_context io(1);
    tcp::endpoint endpoint(boost::asio::ip::address_v4::loopback(),
                           static_cast<unsigned short>(absl::GetFlag(FLAGS_port)));
    tcp::acceptor acceptor(io);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(1024);
    absl::PrintF("listening on 127.0.0.1:%d\n", acceptor.local_endpoint().port());
    std::fflush(stdout);
    Accept(acceptor, tls ? &*tls : nullptr);
    io.run();
  } catch (const std::exception& e) {
    absl::FPrintF(stderr, "asio_echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
