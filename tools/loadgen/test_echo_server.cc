// A minimal TCP echo server for loadgen's tests: one blocking thread per
// connection, on 127.0.0.1. Prints "listening on 127.0.0.1:PORT" once it
// accepts connections. With --corrupt_at=N it flips the byte at offset N of
// every connection's echo stream, to check that loadgen notices. It exits on
// its own after --lifetime, so a test killed mid-way leaves nothing behind.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

ABSL_FLAG(int, port, 0, "Port on 127.0.0.1; 0 picks a free one.");
ABSL_FLAG(int64_t, corrupt_at, -1,
          "If >= 0, flip the byte at this offset of each echo stream.");
ABSL_FLAG(absl::Duration, lifetime, absl::Seconds(60),
          "Exit after this long.");

namespace {

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void Echo(int fd, int64_t corrupt_at) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  char buffer[64 * 1024];
  int64_t offset = 0;
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (corrupt_at >= offset && corrupt_at < offset + n) {
      buffer[corrupt_at - offset] ^= 0x5a;
    }
    offset += n;
    if (!WriteAll(fd, buffer, static_cast<size_t>(n))) break;
  }
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  alarm(static_cast<unsigned>(
      absl::ToInt64Seconds(absl::GetFlag(FLAGS_lifetime)) + 1));

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(absl::GetFlag(FLAGS_port)));
  socklen_t len = sizeof(addr);
  if (listener < 0 ||
      bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1024) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::FPrintF(stderr, "test_echo_server: %s\n", std::strerror(errno));
    return 1;
  }
  absl::PrintF("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  const int64_t corrupt_at = absl::GetFlag(FLAGS_corrupt_at);
  for (;;) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      absl::FPrintF(stderr, "test_echo_server: accept: %s\n",
                    std::strerror(errno));
      return 1;
    }
    std::thread(Echo, fd, corrupt_at).detach();
  }
}
