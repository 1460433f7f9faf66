// A TCP echo server on Boost.Asio, in the shape of Asio's own async echo
// example: one io_context run by one thread, and per connection a session
// that loops async_read_some -> async_write (of exactly what was read) on a
// reusable buffer (--buffer_size, 256 KiB by default like uvloop's, so that
// reads are sized alike), kept alive by the shared_ptr its handlers hold.
//
//   asio_echo --port=0     # prints "listening on 127.0.0.1:PORT"
//
// A peer for tools/bench/echo_bench.sh; see docs/benchmarks.md.

#include <cstddef>
#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "boost/asio.hpp"

ABSL_FLAG(int, port, 0, "Port on 127.0.0.1; 0 picks a free one.");
ABSL_FLAG(int, buffer_size, 256 * 1024, "Read buffer per connection.");

namespace {

using boost::asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::size_t buffer_size)
      : socket_(std::move(socket)), buffer_(buffer_size) {}

  void Start() {
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    Read();
  }

 private:
  void Read() {
    socket_.async_read_some(
        boost::asio::buffer(buffer_),
        [self = shared_from_this()](boost::system::error_code ec,
                                    std::size_t n) {
          if (!ec) self->Write(n);
        });
  }

  void Write(std::size_t n) {
    boost::asio::async_write(
        socket_, boost::asio::buffer(buffer_, n),
        [self = shared_from_this()](boost::system::error_code ec,
                                    std::size_t) {
          if (!ec) self->Read();
        });
  }

  tcp::socket socket_;
  std::vector<char> buffer_;
};

void Accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](boost::system::error_code ec,
                                    tcp::socket socket) {
    if (!ec) {
      std::make_shared<Session>(std::move(socket),
                                absl::GetFlag(FLAGS_buffer_size))
          ->Start();
    }
    Accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  try {
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
    Accept(acceptor);
    io.run();
  } catch (const std::exception& e) {
    absl::FPrintF(stderr, "asio_echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
