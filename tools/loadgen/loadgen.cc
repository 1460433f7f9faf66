// loadgen: a closed-loop ("ping-pong") load generator for echo servers.
//
// Raw non-blocking sockets in one epoll set per thread (--threads, default 1;
// connections are dealt to the threads in turn). Each of --connections
// connections has exactly one request in flight: it sends --size bytes, waits
// until exactly --size bytes have been echoed back (checking every byte), and
// only then sends the next request. After --warmup, it measures for
// --duration: requests completed, per-request latency (monotonic clock, from
// the first send() of a request to the recv() that completes its echo) in a
// log-linear histogram, and the CPU time this process and, with --server_pid,
// the server consumed in that window; also how busy the whole host was (in
// cores: more than server + loadgen means something else competed) and how
// many TCP segments it retransmitted (a sign of stalls; see
// ReadTcpRetransSegs).
//
//   loadgen --port=7000 --connections=100 --size=1024 --server_pid=1234
//
// Output: a header line, a human-readable table row, and one machine-readable
// line (`RESULT key=value ...`, or a JSON object with --format=json).
// With --tls every connection is TLS (OpenSSL, by default TLS 1.3 with
// TLS_AES_128_GCM_SHA256 only): all handshakes finish before the warmup
// starts, so the window measures application data, and the server's
// certificate is not checked (loopback benchmarking only).
//
// Any error (connect refused, reset, a wrong echo byte, a server that stops
// answering) is reported on stderr as "loadgen: error: ..." with exit status
// 1; bad flags (and a non-loopback --host) exit with 2. The run is bounded:
// it ends after connect + warmup + duration (+ up to 1 s for the requests in
// flight to finish, so connections close cleanly), and a watchdog exits
// (status 3) if it somehow does not.

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "tools/loadgen/latency_histogram.h"

ABSL_FLAG(std::string, host, "127.0.0.1",
          "Server address (numeric or a name). Must be a loopback address "
          "unless --allow_non_loopback.");
ABSL_FLAG(int, port, 0, "Server TCP port.");
ABSL_FLAG(std::string, unix, "",
          "Connect to this Unix-domain stream socket path instead of TCP.");
ABSL_FLAG(bool, allow_non_loopback, false,
          "Allow a --host that is not a loopback address.");
ABSL_FLAG(int, connections, 10, "Number of connections, one request each.");
ABSL_FLAG(int, size, 1024, "Bytes per request (and per echo).");
ABSL_FLAG(int, threads, 1,
          "Threads, each with its own epoll set and share of the "
          "connections. More than one, on cores of their own, keeps loadgen "
          "from being the bottleneck in front of a fast server.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1),
          "Load applied before measuring.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "Measured window.");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(5),
          "Time allowed to establish all connections.");
ABSL_FLAG(absl::Duration, request_timeout, absl::Seconds(5),
          "A request whose echo is not complete after this long is an error.");
ABSL_FLAG(int, server_pid, 0,
          "If set, also report the CPU time this process used during the "
          "measured window, per request.");
ABSL_FLAG(bool, tls, false,
          "Speak TLS (handshakes before the warmup; the certificate is not "
          "checked).");
ABSL_FLAG(std::string, tls_ciphersuites, "TLS_AES_128_GCM_SHA256",
          "With --tls: the TLS 1.3 cipher suites offered (OpenSSL syntax).");
ABSL_FLAG(std::string, tls_min_version, "1.3",
          "With --tls: the lowest protocol version offered, 1.2 or 1.3.");
ABSL_FLAG(std::string, format, "text",
          "Machine-readable line: 'text' (RESULT key=value ...) or 'json'.");

namespace sluice::loadgen {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr size_t kScratchBytes = 256 * 1024;
// Request k of connection c sends the pattern starting at a varying offset,
// so a stale, duplicated or misplaced byte is caught, not just a flipped one.
constexpr size_t kPatternOffsets = 256;
constexpr int kMaxEvents = 256;
constexpr int64_t kStallCheckNanos = 100'000'000;
// After the measured window, requests in flight get this long to finish, so
// connections close cleanly (FIN) rather than with unread data (RST).
constexpr int64_t kDrainNanos = 1'000'000'000;

int64_t NowNanos(clockid_t clock = CLOCK_MONOTONIC) {
  timespec ts;
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * kNanosPerSecond + ts.tv_nsec;
}

std::string Errno(int err) { return std::strerror(err); }

// Reads the CPU time (user + system, all threads) consumed so far by a
// process: the sum of /proc/PID/task/*/schedstat (nanoseconds, exact), or,
// if the kernel has no schedstat, utime + stime from /proc/PID/stat (clock
// ticks, usually 10 ms).
class ProcessCpuClock {
 public:
  explicit ProcessCpuClock(pid_t pid) : pid_(pid) {}

  absl::StatusOr<int64_t> ReadNanos() {
    if (std::optional<int64_t> ns = ReadSchedstat()) {
      source_ = "schedstat";
      return *ns;
    }
    std::ifstream in(absl::StrCat("/proc/", pid_, "/stat"));
    std::string stat((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');
    if (stat.empty()) {
      return absl::NotFoundError(
          absl::StrFormat("server pid %d: cannot read /proc/%d/stat (has it "
                          "exited?)",
                          pid_, pid_));
    }
    if (paren == std::string::npos) {
      return absl::InternalError(
          absl::StrFormat("cannot parse /proc/%d/stat", pid_));
    }
    // Fields after "(comm)" start at field 3 (state); utime and stime are
    // fields 14 and 15.
    std::istringstream fields(stat.substr(paren + 1));
    std::string field;
    int64_t utime = -1, stime = -1;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14 && !absl::SimpleAtoi(field, &utime)) break;
      if (i == 15 && !absl::SimpleAtoi(field, &stime)) break;
    }
    if (utime < 0 || stime < 0) {
      return absl::InternalError(
          absl::StrFormat("cannot parse utime/stime in /proc/%d/stat", pid_));
    }
    source_ = "stat";
    return (utime + stime) * kNanosPerSecond / sysconf(_SC_CLK_TCK);
  }

  // "schedstat" or "stat": where the last reading came from.
  const char* source() const { return source_; }

 private:
  std::optional<int64_t> ReadSchedstat() {
    std::string dir = absl::StrCat("/proc/", pid_, "/task");
    DIR* tasks = opendir(dir.c_str());
    if (tasks == nullptr) return std::nullopt;
    int64_t total = 0;
    bool any = false;
    while (dirent* entry = readdir(tasks)) {
      if (entry->d_name[0] == '.') continue;
      // A thread may exit between readdir and open: skip it.
      std::ifstream in(absl::StrCat(dir, "/", entry->d_name, "/schedstat"));
      int64_t on_cpu_ns;
      if (in >> on_cpu_ns) {
        total += on_cpu_ns;
        any = true;
      }
    }
    closedir(tasks);
    if (!any) return std::nullopt;
    return total;
  }

  pid_t pid_;
  const char* source_ = "";
};

// The network namespace's count of retransmitted TCP segments (RetransSegs in
// /proc/net/snmp), or nullopt if unreadable. Loopback loses next to nothing,
// so retransmissions during a run are mostly spurious (a tail loss probe
// fired because an ACK came later than 2 RTT + 2 jiffies) and each one marks
// a connection that stalled for milliseconds: a run that is not steady-state.
std::optional<int64_t> ReadTcpRetransSegs() {
  std::ifstream in("/proc/net/snmp");
  std::string names, values;
  while (std::getline(in, names)) {
    if (names.rfind("Tcp: ", 0) != 0 || !std::getline(in, values)) continue;
    std::istringstream n(names), v(values);
    std::string name, value;
    while (n >> name && v >> value) {
      int64_t count;
      if (name == "RetransSegs" && absl::SimpleAtoi(value, &count)) {
        return count;
      }
    }
  }
  return std::nullopt;
}

// CPU time the whole host has been busy (all CPUs; user, system, irq,
// softirq; not idle, iowait or steal), from /proc/stat, in nanoseconds.
// During a run, whatever exceeds server + loadgen is other work competing
// for the same cores.
std::optional<int64_t> ReadHostBusyNanos() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  int64_t user, nice, system, idle, iowait, irq, softirq;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >>
        softirq) ||
      cpu != "cpu") {
    return std::nullopt;
  }
  return (user + nice + system + irq + softirq) * kNanosPerSecond /
         sysconf(_SC_CLK_TCK);
}

struct Options {
  std::string host;
  int port = 0;
  std::string unix_path;
  bool allow_non_loopback = false;
  int connections = 0;
  size_t size = 0;
  int threads = 1;
  int64_t warmup_ns = 0;
  int64_t duration_ns = 0;
  int64_t connect_timeout_ns = 0;
  int64_t request_timeout_ns = 0;
  pid_t server_pid = 0;
  bool json = false;
  // With --tls: the client context every connection's SSL comes from
  // (owned by main; OpenSSL allows SSL_new from several threads).
  SSL_CTX* tls = nullptr;
};

struct Report {
  uint64_t requests = 0;
  double seconds = 0;
  LatencyHistogram latency;
  int64_t loadgen_cpu_ns = 0;
  std::optional<int64_t> server_cpu_ns;
  std::string server_cpu_source;
  std::optional<int64_t> tcp_retrans;
  std::optional<int64_t> host_busy_ns;
  std::string tls;  // LoadGenerator::TlsDescription, if TLS.
};

struct Connection {
  int index = 0;
  int fd = -1;
  SSL* ssl = nullptr;          // With --tls.
  bool tcp_connected = false;
  bool connected = false;      // And, with --tls, the handshake done.
  bool want_write = false;  // EPOLLOUT is in the interest set
  bool in_flight = false;
  uint64_t requests_started = 0;
  const char* message = nullptr;  // the request in flight, inside the pattern
  size_t sent = 0;
  size_t received = 0;
  int64_t started_ns = 0;
};

// When the load starts, when measuring starts and when it stops
// (CLOCK_MONOTONIC nanoseconds): the same for every thread.
struct Window {
  int64_t start_ns = 0;
  int64_t measure_ns = 0;
  int64_t stop_ns = 0;
};

// What every request sends a window of: size + kPatternOffsets
// pseudo-random bytes, so a shifted or stale byte is unlikely to match.
std::vector<char> MakePattern(size_t size) {
  std::vector<char> pattern(size + kPatternOffsets);
  uint32_t x = 2463534242u;
  for (char& b : pattern) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<char>(x >> 24);
  }
  return pattern;
}

// One thread's share of the load: connections `first`, `first + stride`, ...
// sending from `pattern`, which all threads share and nobody writes.
class LoadGenerator {
 public:
  LoadGenerator(const Options& options, const std::vector<char>& pattern,
                int first, int stride)
      : options_(options), pattern_(pattern) {
    for (int i = first; i < options.connections; i += stride) {
      connections_.emplace_back().index = i;
    }
  }

  ~LoadGenerator() {
    for (Connection& c : connections_) {
      if (c.ssl != nullptr) {
        // close_notify, if the socket takes it now: a clean end for the
        // server rather than a truncation.
        if (c.connected) SSL_shutdown(c.ssl);
        SSL_free(c.ssl);
      }
      if (c.fd >= 0) close(c.fd);
    }
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Resolves the target and opens every connection, bounded by
  // --connect_timeout.
  absl::Status Connect();

  // Runs the warmup and the measured window, then lets the requests in
  // flight finish; returns the latencies of the requests completed within
  // the window. Returns early, with what it has, once `abort` is set.
  absl::StatusOr<LatencyHistogram> Run(const Window& window,
                                       const std::atomic<bool>& abort);

  const std::string& target() const { return target_; }
  // With --tls, what the first connection negotiated: "TLSv1.3
  // TLS_AES_128_GCM_SHA256".
  std::string TlsDescription() const {
    if (connections_.empty() || connections_.front().ssl == nullptr) return "";
    SSL* ssl = connections_.front().ssl;
    return absl::StrCat(SSL_get_version(ssl), " ",
                        SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
  }

 private:
  absl::Status ResolveTarget();
  absl::Status StartConnect(Connection& c);
  absl::Status FinishConnect(Connection& c);
  absl::Status Handshake(Connection& c);
  // One non-blocking send or receive over TCP or TLS: the bytes moved, 0
  // when the peer closed (receives), or -1 when it would block (`error`
  // stays OK) or failed (`error` says why).
  ssize_t SendSome(Connection& c, const char* data, size_t size,
                   absl::Status& error);
  ssize_t ReceiveSome(Connection& c, char* data, size_t size,
                      absl::Status& error);
  absl::Status TlsError(const Connection& c, int result,
                        std::string_view what) const;
  absl::Status SetInterest(Connection& c, uint32_t events);
  absl::Status StartRequest(Connection& c);
  absl::Status Send(Connection& c);
  absl::Status Receive(Connection& c);
  absl::Status CheckStalls(int64_t now);
  absl::Status ConnectionError(const Connection& c,
                               std::string_view what) const;

  Options options_;
  std::vector<Connection> connections_;
  int epoll_fd_ = -1;
  sockaddr_storage address_{};
  socklen_t address_len_ = 0;
  std::string target_;
  const std::vector<char>& pattern_;  // MakePattern(size), shared
  std::vector<char> scratch_;  // receive buffer, shared by all connections
  bool measuring_ = false;
  bool stopping_ = false;  // no new requests
  int in_flight_ = 0;       // connections with a request in flight
  LatencyHistogram latency_;
};

bool IsLoopback(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
           in6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

absl::Status LoadGenerator::ResolveTarget() {
  if (!options_.unix_path.empty()) {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (options_.unix_path.size() >= sizeof(un.sun_path)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--unix path too long: %s", options_.unix_path));
    }
    std::memcpy(un.sun_path, options_.unix_path.data(),
                options_.unix_path.size());
    std::memcpy(&address_, &un, sizeof(un));
    address_len_ = sizeof(un);
    target_ = absl::StrCat("unix:", options_.unix_path);
    return absl::OkStatus();
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  std::string port = absl::StrCat(options_.port);
  int rc = getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot resolve --host=%s: %s", options_.host, gai_strerror(rc)));
  }
  std::memcpy(&address_, result->ai_addr, result->ai_addrlen);
  address_len_ = result->ai_addrlen;
  freeaddrinfo(result);

  char text[INET6_ADDRSTRLEN] = "?";
  const sockaddr* sa = reinterpret_cast<const sockaddr*>(&address_);
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr,
              text, sizeof(text));
    target_ = absl::StrCat(text, ":", options_.port);
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr,
              text, sizeof(text));
    target_ = absl::StrCat("[", text, "]:", options_.port);
  }
  if (!IsLoopback(sa) && !options_.allow_non_loopback) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--host=%s is %s, not a loopback address; pass --allow_non_loopback "
        "to load a remote server",
        options_.host, text));
  }
  return absl::OkStatus();
}

absl::Status LoadGenerator::ConnectionError(const Connection& c,
                                            std::string_view what) const {
  return absl::UnavailableError(absl::StrFormat(
      "connection %d to %s: %s", c.index, target_, what));
}

absl::Status LoadGenerator::SetInterest(Connection& c, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &c;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl: ", Errno(errno)));
  }
  c.want_write = (events & EPOLLOUT) != 0;
  return absl::OkStatus();
}

// Starts a non-blocking connect. Leaves c.fd == -1 (to retry later) when a
// Unix socket's listen backlog is full.
absl::Status LoadGenerator::StartConnect(Connection& c) {
  const sockaddr* sa = reinterpret_cast<const sockaddr*>(&address_);
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("socket: ", Errno(errno)));
  }
  if (sa->sa_family != AF_UNIX) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
      int err = errno;
      close(fd);
      return absl::InternalError(absl::StrCat("TCP_NODELAY: ", Errno(err)));
    }
  }
  if (connect(fd, sa, address_len_) == 0) {
    c.tcp_connected = true;
  } else if (errno == EAGAIN && sa->sa_family == AF_UNIX) {
    close(fd);
    return absl::OkStatus();
  } else if (errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    std::string hint = err == ECONNREFUSED || err == ENOENT
                           ? " (is the server running?)"
                           : "";
    return ConnectionError(c,
                           absl::StrCat("connect failed: ", Errno(err), hint));
  }
  c.fd = fd;
  epoll_event ev{};
  ev.events = c.tcp_connected ? EPOLLIN : EPOLLOUT;
  ev.data.ptr = &c;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl: ", Errno(errno)));
  }
  return c.tcp_connected ? Handshake(c) : absl::OkStatus();
}

absl::Status LoadGenerator::FinishConnect(Connection& c) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    std::string hint = err == ECONNREFUSED ? " (is the server running?)" : "";
    return ConnectionError(c,
                           absl::StrCat("connect failed: ", Errno(err), hint));
  }
  c.tcp_connected = true;
  if (absl::Status s = SetInterest(c, EPOLLIN); !s.ok()) return s;
  return Handshake(c);
}

// Without TLS, connected at once; with it, advances the handshake.
absl::Status LoadGenerator::Handshake(Connection& c) {
  if (options_.tls == nullptr) {
    c.connected = true;
    return absl::OkStatus();
  }
  if (c.ssl == nullptr) {
    c.ssl = SSL_new(options_.tls);
    if (c.ssl == nullptr || SSL_set_fd(c.ssl, c.fd) != 1) {
      return TlsError(c, 0, "SSL_new");
    }
    SSL_set_tlsext_host_name(c.ssl, "localhost");
    SSL_set_connect_state(c.ssl);
  }
  ERR_clear_error();
  const int result = SSL_do_handshake(c.ssl);
  if (result == 1) {
    c.connected = true;
    return SetInterest(c, EPOLLIN);
  }
  switch (SSL_get_error(c.ssl, result)) {
    case SSL_ERROR_WANT_READ:
      return c.want_write ? SetInterest(c, EPOLLIN) : absl::OkStatus();
    case SSL_ERROR_WANT_WRITE:
      return c.want_write ? absl::OkStatus()
                          : SetInterest(c, EPOLLIN | EPOLLOUT);
    default:
      return TlsError(c, result, "TLS handshake failed");
  }
}

absl::Status LoadGenerator::TlsError(const Connection& c, int result,
                                     std::string_view what) const {
  std::string detail;
  if (c.ssl != nullptr && result <= 0 &&
      SSL_get_error(c.ssl, result) == SSL_ERROR_SYSCALL && errno != 0) {
    detail = Errno(errno);
  }
  while (unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof(text));
    absl::StrAppend(&detail, detail.empty() ? "" : "; ", text);
  }
  return ConnectionError(
      c, absl::StrCat(std::string(what), detail.empty() ? "" : ": ", detail));
}

ssize_t LoadGenerator::SendSome(Connection& c, const char* data, size_t size,
                                absl::Status& error) {
  if (c.ssl == nullptr) {
    for (;;) {
      ssize_t n = send(c.fd, data, size, MSG_NOSIGNAL);
      if (n > 0) return n;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -1;
      error = ConnectionError(
          c, absl::StrCat("send failed: ", Errno(n < 0 ? errno : EIO)));
      return -1;
    }
  }
  ERR_clear_error();
  size_t written = 0;
  const int result = SSL_write_ex(c.ssl, data, size, &written);
  if (result == 1) return static_cast<ssize_t>(written);
  const int reason = SSL_get_error(c.ssl, result);
  // Waiting to read (a key update, say) is waiting too: EPOLLIN is always
  // watched, and EPOLLOUT retries the write.
  if (reason == SSL_ERROR_WANT_WRITE || reason == SSL_ERROR_WANT_READ) {
    return -1;
  }
  error = TlsError(c, result, "TLS write failed");
  return -1;
}

ssize_t LoadGenerator::ReceiveSome(Connection& c, char* data, size_t size,
                                   absl::Status& error) {
  if (c.ssl == nullptr) {
    for (;;) {
      ssize_t n = recv(c.fd, data, size, 0);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        error = ConnectionError(c, absl::StrCat("recv failed: ", Errno(errno)));
      }
      return -1;
    }
  }
  ERR_clear_error();
  size_t read = 0;
  const int result = SSL_read_ex(c.ssl, data, size, &read);
  if (result == 1) return static_cast<ssize_t>(read);
  switch (SSL_get_error(c.ssl, result)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    default:
      error = TlsError(c, result, "TLS read failed");
      return -1;
  }
}

absl::Status LoadGenerator::Connect() {
  if (absl::Status s = ResolveTarget(); !s.ok()) return s;
  scratch_.resize(kScratchBytes);

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    return absl::InternalError(absl::StrCat("epoll_create1: ", Errno(errno)));
  }
  const int64_t deadline = NowNanos() + options_.connect_timeout_ns;
  std::vector<epoll_event> events(kMaxEvents);
  for (;;) {
    int pending = 0;
    for (Connection& c : connections_) {
      if (c.fd < 0) {
        if (absl::Status s = StartConnect(c); !s.ok()) return s;
      }
      if (!c.connected) ++pending;
    }
    if (pending == 0) return absl::OkStatus();
    int64_t now = NowNanos();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "%d of %d connections to %s not established after %s", pending,
          connections_.size(), target_,
          absl::FormatDuration(absl::Nanoseconds(options_.connect_timeout_ns))));
    }
    int timeout_ms = static_cast<int>(
        std::min<int64_t>((deadline - now) / 1'000'000 + 1, 10));
    int n = epoll_wait(epoll_fd_, events.data(), kMaxEvents, timeout_ms);
    if (n < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("epoll_wait: ", Errno(errno)));
    }
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Connection*>(events[i].data.ptr);
      if (c->connected) continue;
      absl::Status s = c->tcp_connected ? Handshake(*c) : FinishConnect(*c);
      if (!s.ok()) return s;
    }
  }
}

absl::Status LoadGenerator::StartRequest(Connection& c) {
  size_t offset =
      (c.requests_started * 97 + static_cast<size_t>(c.index) * 31) %
      kPatternOffsets;
  ++c.requests_started;
  c.message = pattern_.data() + offset;
  c.sent = 0;
  c.received = 0;
  c.in_flight = true;
  ++in_flight_;
  c.started_ns = NowNanos();
  return Send(c);
}

absl::Status LoadGenerator::Send(Connection& c) {
  const size_t size = options_.size;
  while (c.sent < size) {
    absl::Status error;
    ssize_t n = SendSome(c, c.message + c.sent, size - c.sent, error);
    if (!error.ok()) return error;
    if (n < 0) {
      // Partial write: finish it when the socket is writable again, while
      // still reading the echo of what went out (a server that echoes a
      // large message as it arrives needs that to make progress).
      return c.want_write ? absl::OkStatus()
                          : SetInterest(c, EPOLLIN | EPOLLOUT);
    }
    c.sent += static_cast<size_t>(n);
  }
  return c.want_write ? SetInterest(c, EPOLLIN) : absl::OkStatus();
}

absl::Status LoadGenerator::Receive(Connection& c) {
  const size_t size = options_.size;
  for (;;) {
    absl::Status error;
    ssize_t n = ReceiveSome(c, scratch_.data(), scratch_.size(), error);
    if (!error.ok()) return error;
    if (n < 0) return absl::OkStatus();  // Would block.
    if (n == 0) {
      return ConnectionError(
          c, absl::StrFormat("server closed the connection (after %d "
                             "requests; %d of %d bytes of the current echo "
                             "received)",
                             c.requests_started - 1, c.received, size));
    }
    const size_t got = static_cast<size_t>(n);
    if (!c.in_flight || c.received + got > c.sent) {
      return ConnectionError(
          c, absl::StrFormat("server sent %d bytes more than it was sent "
                             "(request %d: sent %d, echo had %d)",
                             c.received + got - c.sent,
                             c.requests_started - 1, c.sent, c.received));
    }
    const char* want = c.message + c.received;
    if (std::memcmp(scratch_.data(), want, got) != 0) {
      size_t i = 0;
      while (scratch_[i] == want[i]) ++i;
      return ConnectionError(
          c, absl::StrFormat("wrong echo byte at offset %d of request %d: "
                             "got 0x%02x, want 0x%02x",
                             c.received + i, c.requests_started - 1,
                             static_cast<uint8_t>(scratch_[i]),
                             static_cast<uint8_t>(want[i])));
    }
    c.received += got;
    if (c.received == size) {
      c.in_flight = false;
      --in_flight_;
      if (measuring_ && !stopping_) {
        latency_.Record(static_cast<uint64_t>(NowNanos() - c.started_ns));
      }
      // The next echo cannot have arrived yet: back to epoll after sending.
      return stopping_ ? absl::OkStatus() : StartRequest(c);
    }
    // A short read drained the socket; level-triggered epoll reports more.
    // Not so for TLS: OpenSSL may hold decrypted bytes the socket no longer
    // shows, so read until it would block.
    if (c.ssl == nullptr && got < scratch_.size()) return absl::OkStatus();
  }
}

absl::Status LoadGenerator::CheckStalls(int64_t now) {
  for (const Connection& c : connections_) {
    if (c.in_flight && now - c.started_ns > options_.request_timeout_ns) {
      return ConnectionError(
          c, absl::StrFormat(
                 "no complete echo within %s (request %d: sent %d of %d "
                 "bytes, received %d)",
                 absl::FormatDuration(
                     absl::Nanoseconds(options_.request_timeout_ns)),
                 c.requests_started - 1, c.sent, options_.size, c.received));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LatencyHistogram> LoadGenerator::Run(
    const Window& window, const std::atomic<bool>& abort) {
  for (Connection& c : connections_) {
    if (absl::Status s = StartRequest(c); !s.ok()) return s;
  }
  std::vector<epoll_event> events(kMaxEvents);
  int64_t next_stall_check = window.start_ns + kStallCheckNanos;
  int64_t drain_until = 0;
  while (!abort.load(std::memory_order_relaxed)) {
    const int64_t now = NowNanos();
    if (!measuring_ && now >= window.measure_ns) measuring_ = true;
    if (!stopping_ && now >= window.stop_ns) {
      stopping_ = true;
      drain_until = now + kDrainNanos;
    }
    if (stopping_ && (in_flight_ == 0 || now >= drain_until)) break;
    if (!stopping_ && now >= next_stall_check) {
      if (absl::Status s = CheckStalls(now); !s.ok()) return s;
      next_stall_check = now + kStallCheckNanos;
    }
    int64_t wake = stopping_ ? drain_until
                             : std::min(measuring_ ? window.stop_ns
                                                   : window.measure_ns,
                                        next_stall_check);
    // Round up, so we never wake early and spin.
    int timeout_ms = static_cast<int>((wake - now + 999'999) / 1'000'000);
    int n = epoll_wait(epoll_fd_, events.data(), kMaxEvents, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("epoll_wait: ", Errno(errno)));
    }
    for (int i = 0; i < n; ++i) {
      Connection& c = *static_cast<Connection*>(events[i].data.ptr);
      const uint32_t ev = events[i].events;
      // EPOLLERR/EPOLLHUP: recv() reports the reason (reset, EOF).
      if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (absl::Status s = Receive(c); !s.ok()) return s;
      }
      if ((ev & EPOLLOUT) && c.in_flight && c.sent < options_.size) {
        if (absl::Status s = Send(c); !s.ok()) return s;
      }
    }
  }
  return std::move(latency_);
}

// What this process, the server and the host did during the measured
// window, read at its start and its end.
class WindowProbe {
 public:
  explicit WindowProbe(const Options& options)
      : tcp_(options.unix_path.empty()) {
    if (options.server_pid > 0) server_cpu_.emplace(options.server_pid);
  }

  absl::Status Begin() {
    if (server_cpu_) {
      absl::StatusOr<int64_t> ns = server_cpu_->ReadNanos();
      if (!ns.ok()) return ns.status();
      server_cpu_start_ = *ns;
    }
    if (tcp_) retrans_start_ = ReadTcpRetransSegs();
    host_busy_start_ = ReadHostBusyNanos();
    loadgen_cpu_start_ = NowNanos(CLOCK_PROCESS_CPUTIME_ID);
    start_ns_ = NowNanos();
    return absl::OkStatus();
  }

  // Fills in everything in `report` but the latencies.
  absl::Status End(Report& report) {
    report.seconds =
        static_cast<double>(NowNanos() - start_ns_) / kNanosPerSecond;
    report.loadgen_cpu_ns =
        NowNanos(CLOCK_PROCESS_CPUTIME_ID) - loadgen_cpu_start_;
    if (server_cpu_) {
      absl::StatusOr<int64_t> ns = server_cpu_->ReadNanos();
      if (!ns.ok()) return ns.status();
      report.server_cpu_ns = *ns - server_cpu_start_;
      report.server_cpu_source = server_cpu_->source();
    }
    if (host_busy_start_) {
      if (std::optional<int64_t> end = ReadHostBusyNanos()) {
        report.host_busy_ns = *end - *host_busy_start_;
      }
    }
    if (retrans_start_) {
      if (std::optional<int64_t> end = ReadTcpRetransSegs()) {
        report.tcp_retrans = *end - *retrans_start_;
      }
    }
    return absl::OkStatus();
  }

 private:
  const bool tcp_;
  std::optional<ProcessCpuClock> server_cpu_;
  int64_t server_cpu_start_ = 0;
  int64_t loadgen_cpu_start_ = 0;
  int64_t start_ns_ = 0;
  std::optional<int64_t> retrans_start_;
  std::optional<int64_t> host_busy_start_;
};

// Connects, runs one LoadGenerator per thread through warmup and window,
// and reports. The main thread reads the WindowProbe at the window's edges.
// The first error of any thread stops them all and is returned.
absl::StatusOr<Report> RunLoad(const Options& options, std::string& target) {
  const std::vector<char> pattern = MakePattern(options.size);
  std::vector<std::unique_ptr<LoadGenerator>> generators;
  for (int i = 0; i < options.threads; ++i) {
    generators.push_back(std::make_unique<LoadGenerator>(options, pattern, i,
                                                         options.threads));
    if (absl::Status s = generators.back()->Connect(); !s.ok()) return s;
  }
  target = generators.front()->target();
  const std::string tls = generators.front()->TlsDescription();

  Window window;
  window.start_ns = NowNanos();
  window.measure_ns = window.start_ns + options.warmup_ns;
  window.stop_ns = window.measure_ns + options.duration_ns;
  std::atomic<bool> abort{false};
  std::mutex mu;
  std::condition_variable aborted;
  absl::Status first_error;  // Guarded by mu until the threads are joined.
  std::vector<LatencyHistogram> latencies(generators.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < generators.size(); ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<LatencyHistogram> latency =
          generators[i]->Run(window, abort);
      if (latency.ok()) {
        latencies[i] = *std::move(latency);
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.ok()) first_error = latency.status();
      abort = true;
      aborted.notify_all();
    });
  }

  // Sleeps until `deadline_ns`; false if a thread failed first.
  auto sleep_until = [&](int64_t deadline_ns) {
    std::unique_lock<std::mutex> lock(mu);
    return !aborted.wait_until(
        lock,
        std::chrono::steady_clock::time_point(
            std::chrono::nanoseconds(deadline_ns)),
        [&] { return abort.load(); });
  };
  Report report;
  report.tls = tls;
  WindowProbe probe(options);
  absl::Status probed;
  if (sleep_until(window.measure_ns)) {
    probed = probe.Begin();
    if (probed.ok() && sleep_until(window.stop_ns)) probed = probe.End(report);
  }
  if (!probed.ok()) abort = true;
  for (std::thread& thread : threads) thread.join();
  if (!first_error.ok()) return first_error;
  if (!probed.ok()) return probed;

  for (const LatencyHistogram& latency : latencies) {
    report.latency.Merge(latency);
  }
  report.requests = report.latency.count();
  if (report.requests == 0) {
    return absl::UnavailableError(absl::StrFormat(
        "no request to %s completed during the %.3f s measured window",
        target, report.seconds));
  }
  return report;
}

double Micros(uint64_t nanos) { return static_cast<double>(nanos) / 1000.0; }

void PrintReport(const Options& options, const std::string& target,
                 const Report& r) {
  const double rps = static_cast<double>(r.requests) / r.seconds;
  // Payload bytes per second in one direction (sent == echoed back).
  const double mib_per_s =
      rps * static_cast<double>(options.size) / (1024.0 * 1024.0);
  const double p50 = Micros(r.latency.ValueAtQuantile(0.50));
  const double p99 = Micros(r.latency.ValueAtQuantile(0.99));
  const double p999 = Micros(r.latency.ValueAtQuantile(0.999));
  const double max = Micros(r.latency.max());
  const double mean = r.latency.mean() / 1000.0;
  const double window_ns = r.seconds * kNanosPerSecond;
  const double lg_us_per_req =
      static_cast<double>(r.loadgen_cpu_ns) / 1000.0 / r.requests;
  const double lg_util = r.loadgen_cpu_ns / window_ns;
  const double host_util =
      r.host_busy_ns ? *r.host_busy_ns / window_ns : std::nan("");
  const std::string retrans =
      r.tcp_retrans ? absl::StrCat(*r.tcp_retrans) : std::string("-");
  std::optional<double> srv_us_per_req, srv_util;
  if (r.server_cpu_ns) {
    srv_us_per_req = static_cast<double>(*r.server_cpu_ns) / 1000.0 / r.requests;
    srv_util = *r.server_cpu_ns / window_ns;
  }

  absl::PrintF(
      "loadgen: %s%s, %d connections x %d bytes, 1 request in flight each, "
      "%d thread(s); %s warmup, %.3f s measured; MiB/s = payload in each "
      "direction\n",
      target, r.tls.empty() ? "" : absl::StrCat(" over ", r.tls),
      options.connections, options.size, options.threads,
      absl::FormatDuration(absl::Nanoseconds(options.warmup_ns)), r.seconds);
  absl::PrintF(
      "%6s %8s %11s %9s %9s %9s %9s %9s %11s %8s %11s %7s %9s %8s\n", "conns",
      "size", "req/s", "MiB/s", "p50_us", "p99_us", "p99.9_us", "max_us",
      "srv_us/req", "srv_cpu", "lg_us/req", "lg_cpu", "host_cpu", "retrans");
  std::string srv_req = srv_us_per_req ? absl::StrFormat("%.2f", *srv_us_per_req)
                                       : std::string("-");
  std::string srv_cpu =
      srv_util ? absl::StrFormat("%.0f%%", *srv_util * 100) : std::string("-");
  absl::PrintF(
      "%6d %8d %11.1f %9.2f %9.1f %9.1f %9.1f %9.1f %11s %8s %11.2f %6.0f%% "
      "%8.0f%% %8s\n",
      options.connections, options.size, rps, mib_per_s, p50, p99, p999, max,
      srv_req, srv_cpu, lg_us_per_req, lg_util * 100, host_util * 100,
      retrans);

  if (options.json) {
    auto num = [](std::optional<double> v) {
      return v ? absl::StrFormat("%.4f", *v) : std::string("null");
    };
    absl::PrintF(
        "{\"target\":\"%s\",\"connections\":%d,\"size\":%d,\"threads\":%d,"
        "\"requests\":%d,"
        "\"seconds\":%.4f,\"req_per_s\":%.2f,\"mib_per_s\":%.4f,"
        "\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
        "\"mean_us\":%.2f,\"server_cpu_us_per_req\":%s,"
        "\"server_cpu_util\":%s,\"server_cpu_source\":\"%s\","
        "\"loadgen_cpu_us_per_req\":%.4f,\"loadgen_cpu_util\":%.4f,"
        "\"tcp_retrans\":%s,\"host_cpu_util\":%s}\n",
        target, options.connections, options.size, options.threads,
        r.requests, r.seconds, rps,
        mib_per_s, p50, p99, p999, max, mean, num(srv_us_per_req),
        num(srv_util), r.server_cpu_source, lg_us_per_req, lg_util,
        r.tcp_retrans ? retrans : std::string("null"),
        r.host_busy_ns ? absl::StrFormat("%.4f", host_util) : "null");
  } else {
    std::string server;
    if (srv_us_per_req) {
      server = absl::StrFormat(
          " server_cpu_us_per_req=%.4f server_cpu_util=%.4f "
          "server_cpu_source=%s",
          *srv_us_per_req, *srv_util, r.server_cpu_source);
    }
    absl::PrintF(
        "RESULT connections=%d size=%d threads=%d requests=%d seconds=%.4f "
        "req_per_s=%.2f mib_per_s=%.4f p50_us=%.2f p99_us=%.2f p999_us=%.2f "
        "max_us=%.2f mean_us=%.2f%s loadgen_cpu_us_per_req=%.4f "
        "loadgen_cpu_util=%.4f%s%s%s\n",
        options.connections, options.size, options.threads, r.requests,
        r.seconds, rps, mib_per_s, p50, p99, p999, max, mean, server, lg_us_per_req, lg_util,
        r.tcp_retrans ? absl::StrCat(" tcp_retrans=", retrans) : "",
        r.host_busy_ns ? absl::StrFormat(" host_cpu_util=%.4f", host_util)
                       : "",
        r.tls.empty() ? "" : " tls=1");
  }
  std::fflush(stdout);
}

// The client context of --tls: no certificate check (a benchmark on
// loopback), partial writes so that a connection knows what went out.
absl::StatusOr<SSL_CTX*> MakeTlsContext() {
  const std::string version = absl::GetFlag(FLAGS_tls_min_version);
  if (version != "1.2" && version != "1.3") {
    return absl::InvalidArgumentError("--tls_min_version must be 1.2 or 1.3");
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(
      ctx, version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  const std::string suites = absl::GetFlag(FLAGS_tls_ciphersuites);
  if (SSL_CTX_set_ciphersuites(ctx, suites.c_str()) != 1) {
    SSL_CTX_free(ctx);
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_ciphersuites: OpenSSL does not know '", suites,
                     "'"));
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

absl::StatusOr<Options> OptionsFromFlags() {
  Options o;
  o.host = absl::GetFlag(FLAGS_host);
  o.port = absl::GetFlag(FLAGS_port);
  o.unix_path = absl::GetFlag(FLAGS_unix);
  o.allow_non_loopback = absl::GetFlag(FLAGS_allow_non_loopback);
  o.connections = absl::GetFlag(FLAGS_connections);
  int size = absl::GetFlag(FLAGS_size);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.server_pid = absl::GetFlag(FLAGS_server_pid);
  std::string format = absl::GetFlag(FLAGS_format);
  auto nanos = [](absl::Duration d) { return absl::ToInt64Nanoseconds(d); };
  o.warmup_ns = nanos(absl::GetFlag(FLAGS_warmup));
  o.duration_ns = nanos(absl::GetFlag(FLAGS_duration));
  o.connect_timeout_ns = nanos(absl::GetFlag(FLAGS_connect_timeout));
  o.request_timeout_ns = nanos(absl::GetFlag(FLAGS_request_timeout));

  if (o.unix_path.empty() == (o.port == 0)) {
    return absl::InvalidArgumentError("pass exactly one of --port, --unix");
  }
  if (o.port < 0 || o.port > 65535) {
    return absl::InvalidArgumentError("--port must be in [1, 65535]");
  }
  if (o.connections < 1 || o.connections > 100000) {
    return absl::InvalidArgumentError("--connections must be in [1, 100000]");
  }
  if (o.threads < 1 || o.threads > std::min(o.connections, 256)) {
    return absl::InvalidArgumentError(
        "--threads must be in [1, 256] and at most --connections");
  }
  if (size < 1 || size > (64 << 20)) {
    return absl::InvalidArgumentError("--size must be in [1, 64 MiB]");
  }
  o.size = static_cast<size_t>(size);
  if (o.duration_ns <= 0 || o.warmup_ns < 0 || o.connect_timeout_ns <= 0 ||
      o.request_timeout_ns <= 0) {
    return absl::InvalidArgumentError(
        "--duration, --connect_timeout and --request_timeout must be "
        "positive, --warmup not negative");
  }
  if (o.warmup_ns + o.duration_ns > nanos(absl::Hours(24))) {
    return absl::InvalidArgumentError("--warmup + --duration exceeds a day");
  }
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError("--format must be 'text' or 'json'");
  }
  o.json = format == "json";
  if (absl::GetFlag(FLAGS_tls)) {
    absl::StatusOr<SSL_CTX*> tls = MakeTlsContext();
    if (!tls.ok()) return tls.status();
    o.tls = *tls;
  }
  if (o.server_pid < 0 ||
      (o.server_pid > 0 &&
       access(absl::StrCat("/proc/", o.server_pid).c_str(), F_OK) != 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--server_pid=%d: no such process", o.server_pid));
  }
  // One fd per connection, plus a few.
  rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
      nofile.rlim_cur < static_cast<rlim_t>(o.connections) + 16) {
    nofile.rlim_cur =
        std::min<rlim_t>(nofile.rlim_max, o.connections + 16);
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  return o;
}

void OnWatchdog(int) {
  static const char kMessage[] =
      "loadgen: error: watchdog: the run did not end in time\n";
  (void)!write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  _exit(3);
}

}  // namespace
}  // namespace sluice::loadgen

int main(int argc, char** argv) {
  using namespace sluice::loadgen;  // NOLINT: a main of this namespace.
  absl::SetProgramUsageMessage(
      "Closed-loop echo load generator: --port=P [--connections=N --size=B "
      "--duration=10s --warmup=1s --threads=T --server_pid=PID "
      "--format=text|json --tls]");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<Options> options = OptionsFromFlags();
  if (!options.ok()) {
    absl::FPrintF(stderr, "loadgen: %s\n", options.status().message());
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  // Belt and braces: every wait below is bounded, but never hang a script.
  signal(SIGALRM, OnWatchdog);
  alarm(static_cast<unsigned>(
      (options->connect_timeout_ns + options->warmup_ns +
       options->duration_ns) / kNanosPerSecond + 10));

  std::string target;
  absl::StatusOr<Report> report = RunLoad(*options, target);
  if (!report.ok()) {
    absl::FPrintF(stderr, "loadgen: error: %s\n", report.status().message());
    return absl::IsInvalidArgument(report.status()) ? 2 : 1;
  }
  PrintReport(*options, target, *report);
  SSL_CTX_free(options->tls);
  return 0;
}
