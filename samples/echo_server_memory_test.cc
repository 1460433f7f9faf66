// A client writes up to 1 GiB to samples/echo_server without reading its
// echo. With flow control the server stops reading from that client once
// its write buffer is full, the kernel buffers fill, and the client cannot
// write more: the server's memory stays flat. Without it, the server would
// read and buffer the whole gigabyte.

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

extern char** environ;

namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

// The server's resident set, from /proc.
int64_t ResidentKiB(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kib = 0;
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits += c;
      }
      if (absl::SimpleAtoi(digits, &kib)) return kib;
    }
  }
  return -1;
}

class EchoServerProcess {
 public:
  EchoServerProcess() {
    std::string binary =
        absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                     "/samples/echo_server");
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<std::string> args = {binary, "--port=0"};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, binary.c_str(), &actions, nullptr,
                          argv.data(), environ),
              0);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    // "echo server listening on 127.0.0.1:PORT\n"
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
    // Kept open: the server prints again when it shuts down.
    stdout_ = out[0];
    size_t colon = line.rfind(':');
    int port = 0;
    EXPECT_TRUE(colon != std::string::npos &&
                absl::SimpleAtoi(line.substr(colon + 1), &port))
        << line;
    port_ = port;
  }

  ~EchoServerProcess() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    close(stdout_);
  }

  pid_t pid() const { return pid_; }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int stdout_ = -1;
};

TEST(EchoServerMemoryTest, AClientThatNeverReadsCannotGrowTheServer) {
  EchoServerProcess server;
  ASSERT_GT(server.port(), 0);
  const int64_t baseline_kib = ResidentKiB(server.pid());
  ASSERT_GT(baseline_kib, 0);

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(server.port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  // Write until the connection stays unwritable for a second (the server
  // pushed back) or a gigabyte went through (it did not).
  const std::string chunk(1 << 20, 'x');
  int64_t written = 0;
  int64_t peak_kib = baseline_kib;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (written < kGiB && absl::Now() < give_up) {
    ssize_t n = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      written += n;
      continue;
    }
    ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << errno;
    peak_kib = std::max(peak_kib, ResidentKiB(server.pid()));
    pollfd waiting{fd, POLLOUT, 0};
    if (poll(&waiting, 1, 1000) == 0) break;  // Pushed back.
  }
  peak_kib = std::max(peak_kib, ResidentKiB(server.pid()));
  std::printf("client wrote %lld MiB before the server pushed back; server "
              "RSS %lld KiB -> peak %lld KiB\n",
              static_cast<long long>(written >> 20),
              static_cast<long long>(baseline_kib),
              static_cast<long long>(peak_kib));
  // Kernel socket buffers hold some megabytes; the server holds at most its
  // high watermark plus one read.
  EXPECT_LT(written, 256 << 20);
  EXPECT_LT(peak_kib - baseline_kib, 16 * 1024);

  // The server is still healthy: reading the echo lets it resume, and every
  // byte comes back.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval timeout{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::vector<char> buffer(1 << 20);
  int64_t echoed = 0;
  while (echoed < written) {
    ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
    ASSERT_GT(n, 0) << "echo stopped after " << echoed << " of " << written;
    for (ssize_t i = 0; i < n; ++i) ASSERT_EQ(buffer[i], 'x');
    echoed += n;
  }
  EXPECT_EQ(echoed, written);
  close(fd);
}

}  // namespace
