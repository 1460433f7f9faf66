#include "transports/server.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/exceptions.h"
#include "framework/clock.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/protocol.h"
#include "framework/task.h"
#include "framework/transport.h"
#include "framework/when_all.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transports/connection.h"
#include "transports/resolver.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

class EchoProtocol final : public Protocol {
 public:
  void ConnectionMade(Transport& transport) override { transport_ = &transport; }
  void DataReceived(std::string_view data) override { transport_->Write(data); }
  void PauseWriting() override { transport_->PauseReading(); }
  void ResumeWriting() override { transport_->ResumeReading(); }

 private:
  Transport* transport_ = nullptr;
};

ProtocolFactory EchoFactory() {
  return [] { return std::make_unique<EchoProtocol>(); };
}

// Sends `message` once connected and completes `echoed` with what came back
// once it is all there, then closes.
class OneShotClient final : public Protocol {
 public:
  OneShotClient(std::string message, Future<absl::StatusOr<std::string>> echoed)
      : message_(std::move(message)), echoed_(std::move(echoed)) {}

  void ConnectionMade(Transport& transport) override {
    transport_ = &transport;
    transport.Write(message_);
  }
  void DataReceived(std::string_view data) override {
    received_.append(data);
    if (received_.size() >= message_.size()) {
      echoed_.SetResult(received_);
      transport_->Close();
    }
  }
  void ConnectionLost(const absl::Status& status) override {
    echoed_.SetResult(status.ok() ? absl::UnavailableError("closed early")
                                  : status);
  }

 private:
  std::string message_;
  Future<absl::StatusOr<std::string>> echoed_;
  Transport* transport_ = nullptr;
  std::string received_;
};

Task<absl::StatusOr<std::string>> EchoOnce(EventLoop& loop, std::string host,
                                           uint16_t port, std::string message) {
  Future<absl::StatusOr<std::string>> echoed(loop);
  auto factory = [message, echoed] {
    return std::make_unique<OneShotClient>(message, echoed);
  };
  absl::StatusOr<Connection> connection =
      co_await CreateConnection(loop, factory, host, port);
  if (!connection.ok()) co_return connection.status();
  co_return co_await echoed;
}

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() : loop_(EventLoop::Create().value()) {
    loop_->SetErrorHandler([this](const LoopError& e) {
      errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
    });
    // The bound on every test: fail rather than hang.
    watchdog_ = loop_->CallLater(absl::Seconds(60), [this] {
      ADD_FAILURE() << "test still running after 60 s";
      loop_->Stop();
    });
  }
  ~ServerTest() override { watchdog_.Cancel(); }

  template <class A>
  auto Run(A awaitable) {
    return loop_->RunUntilComplete(std::move(awaitable));
  }

  std::unique_ptr<Server> Listen(std::string host = "127.0.0.1",
                                 uint16_t port = 0, ServerOptions options = {}) {
    auto server = Run(CreateServer(*loop_, EchoFactory(), host, port, options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(server).value() : nullptr;
  }

  std::unique_ptr<EventLoop> loop_;
  std::vector<std::string> errors_;
  Handle watchdog_;
};

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

int CountOpenFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (readdir(dir) != nullptr) ++count;
  closedir(dir);
  return count;
}

// Raises the soft descriptor limit to `wanted` (or the hard limit); returns
// the limit in force.
rlim_t RaiseDescriptorLimit(rlim_t wanted) {
  rlimit limit;
  getrlimit(RLIMIT_NOFILE, &limit);
  wanted = std::min(limit.rlim_max, wanted);
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = wanted;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

TEST_F(ServerTest, EchoesOverTcpOnAPortTheKernelChose) {
  auto server = Listen();
  ASSERT_EQ(server->addresses().size(), 1u);
  uint16_t port = server->addresses()[0].port();
  EXPECT_NE(port, 0);
  auto echoed = Run(EchoOnce(*loop_, "127.0.0.1", port, "ping"));
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "ping");
  EXPECT_TRUE(errors_.empty());
}

TEST_F(ServerTest, ResolvesNamesWithoutBlockingTheLoop) {
  auto server = Listen();
  uint16_t port = server->addresses()[0].port();
  // "localhost" goes through getaddrinfo on the executor: the lookup
  // suspends the task, and its answer comes back through the thread-safe
  // queue, never within the iteration that started it. A lookup on the
  // loop's thread would have finished there.
  Future<absl::StatusOr<std::vector<SocketAddress>>> lookup =
      Spawn(*loop_, Resolve(*loop_, "localhost", port));
  loop_->RunOnce(absl::ZeroDuration());
  EXPECT_FALSE(lookup.IsDone());
  absl::StatusOr<std::vector<SocketAddress>> addresses = Run(lookup);
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  ASSERT_FALSE(addresses->empty());
  EXPECT_EQ(addresses->front().port(), port);
  auto echoed = Run(EchoOnce(*loop_, "localhost", port, "by name"));
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "by name");
}

TEST_F(ServerTest, EmptyHostListensOnEveryFamilyWithOnePort) {
  auto server = Listen("", 0);
  ASSERT_FALSE(server->addresses().empty());
  uint16_t port = server->addresses()[0].port();
  bool has_v4 = false;
  for (const SocketAddress& address : server->addresses()) {
    EXPECT_EQ(address.port(), port) << address.ToString();
    has_v4 |= address.family() == AF_INET;
  }
  EXPECT_TRUE(has_v4);
  auto echoed = Run(EchoOnce(*loop_, "127.0.0.1", port, "v4"));
  EXPECT_TRUE(echoed.ok()) << echoed.status();
}

TEST_F(ServerTest, ConnectionRefusedIsUnavailableAndNamesTheAddress) {
  int port = FreePort();
  auto echoed = Run(EchoOnce(*loop_, "127.0.0.1", port, "x"));
  EXPECT_EQ(echoed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(echoed.status().message(),
              HasSubstr(absl::StrCat("127.0.0.1:", port)));
}

TEST_F(ServerTest, BindConflictNamesTheAddress) {
  auto first = Listen();
  uint16_t port = first->addresses()[0].port();
  auto second = Run(CreateServer(*loop_, EchoFactory(), "127.0.0.1", port));
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("bind on 127.0.0.1:", port)));
}

TEST_F(ServerTest, ReusePortLetsTwoServersShareAPort) {
  ServerOptions options{.reuse_port = true};
  auto first = Listen("127.0.0.1", 0, options);
  uint16_t port = first->addresses()[0].port();
  auto second = Listen("127.0.0.1", port, options);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->addresses()[0].port(), port);
}

// Fills a listening socket's accept queue so that the next SYN is dropped
// and a connect hangs: the only way to make one time out on loopback.
class FullBacklog {
 public:
  FullBacklog() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(listen_fd_, 0);
    socklen_t length = sizeof(address);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    for (int i = 0; i < 4; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
      fillers_.push_back(fd);
    }
  }
  ~FullBacklog() {
    for (int fd : fillers_) close(fd);
    close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int listen_fd_;
  uint16_t port_;
  std::vector<int> fillers_;
};

TEST_F(ServerTest, ConnectTimeoutIsDeadlineExceeded) {
  FullBacklog backlog;
  // On virtual time: the SYN stays unanswered, and the loop, idle, jumps
  // to the timeout instead of waiting for it.
  VirtualClock clock;
  auto loop = EventLoop::Create(EventLoopOptions{.clock = &clock}).value();
  int fds_before = CountOpenFds();
  Future<absl::StatusOr<std::string>> unused(*loop);
  auto connected = loop->RunUntilComplete(CreateConnection(
      *loop, [unused] { return std::make_unique<OneShotClient>("x", unused); },
      "127.0.0.1", backlog.port(),
      ConnectOptions{.timeout = absl::Milliseconds(300)}));
  EXPECT_EQ(connected.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(connected.status().message(), HasSubstr("timed out after 300ms"));
  EXPECT_EQ(Difference(loop->Time(), MonotonicTime{}), absl::Milliseconds(300));
  loop->RunUntilIdle();
  EXPECT_EQ(CountOpenFds(), fds_before);  // The attempt's socket is closed.
}

TEST_F(ServerTest, CancellingAConnectClosesItsSocket) {
  FullBacklog backlog;
  int fds_before = CountOpenFds();
  Future<absl::StatusOr<std::string>> unused(*loop_);
  auto attempt = Spawn(*loop_, CreateConnection(
      *loop_, [unused] { return std::make_unique<OneShotClient>("x", unused); },
      "127.0.0.1", backlog.port()));
  // Queued after the attempt's start: it runs once the connect is in
  // flight (the full backlog leaves it unanswered), in the same iteration.
  bool was_connecting = false;
  loop_->CallSoon([&] {
    was_connecting = CountOpenFds() > fds_before;
    attempt.Cancel();
  });
  auto connected = Run(attempt);
  EXPECT_TRUE(was_connecting);
  EXPECT_EQ(connected.status().code(), absl::StatusCode::kCancelled);
  loop_->RunUntilIdle();
  EXPECT_EQ(CountOpenFds(), fds_before);
}

TEST_F(ServerTest, CloseKeepsConnectionsAndWaitClosedWaitsForThem) {
  auto server = Listen();
  uint16_t port = server->addresses()[0].port();
  // A client that keeps its connection until told.
  Future<absl::StatusOr<std::string>> first_echo(*loop_);
  Transport* client = nullptr;
  class Holder final : public Protocol {
   public:
    Holder(Future<absl::StatusOr<std::string>> echo, Transport** out)
        : echo_(std::move(echo)), out_(out) {}
    void ConnectionMade(Transport& t) override { *out_ = &t; }
    void DataReceived(std::string_view data) override {
      echo_.SetResult(std::string(data));
    }

   private:
    Future<absl::StatusOr<std::string>> echo_;
    Transport** out_;
  };
  auto connected = Run(CreateConnection(
      *loop_,
      [&] { return std::make_unique<Holder>(first_echo, &client); },
      "127.0.0.1", port));
  ASSERT_TRUE(connected.ok());
  ASSERT_TRUE(loop_->RunUntil([&] { return server->active_connections() == 1; }));

  server->Close();
  EXPECT_FALSE(server->IsServing());
  Future<absl::Status> closed = server->WaitClosed();
  client->Write("still here");
  auto echo = Run(first_echo);
  EXPECT_EQ(*echo, "still here");  // The connection outlived Close().
  EXPECT_FALSE(closed.IsDone());
  client->Close();
  EXPECT_TRUE(Run(closed).ok());
  EXPECT_EQ(server->active_connections(), 0u);
  // New connections are refused.
  auto refused = Run(EchoOnce(*loop_, "127.0.0.1", port, "x"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ServerTest, UnixServerReplacesAStaleSocketFileAndRemovesItsOwn) {
  // TEST_TMPDIR is too long for sun_path (108 bytes).
  char dir[] = "/tmp/sluice_test_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = absl::StrCat(dir, "/echo.sock");
  // A stale socket file: bound, then abandoned without unlink.
  int stale = socket(AF_UNIX, SOCK_STREAM, 0);
  auto address = SocketAddress::FromUnixPath(path);
  ASSERT_EQ(bind(stale, address->data(), address->length()), 0);
  close(stale);

  auto server = CreateUnixServer(*loop_, EchoFactory(), path);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->addresses()[0].ToString(), "unix:" + path);

  // A live server on the same path is refused.
  auto second = CreateUnixServer(*loop_, EchoFactory(), path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);

  Future<absl::StatusOr<std::string>> echoed(*loop_);
  auto connected = Run(CreateUnixConnection(
      *loop_,
      [echoed] { return std::make_unique<OneShotClient>("over unix", echoed); },
      path));
  ASSERT_TRUE(connected.ok()) << connected.status();
  EXPECT_EQ(*Run(echoed), "over unix");

  (*server)->Close();
  struct stat info;
  EXPECT_NE(stat(path.c_str(), &info), 0);  // The socket file is gone.
  rmdir(dir);
}

TEST_F(ServerTest, UnixProbeOfALiveServerWithAFullBacklogDoesNotBlock) {
  char dir[] = "/tmp/sluice_test_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = absl::StrCat(dir, "/busy.sock");
  auto address = SocketAddress::FromUnixPath(path);
  // A live listener that accepts nothing: its backlog fills up, and a
  // blocking connect to it would wait for ever.
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(bind(listener, address->data(), address->length()), 0);
  ASSERT_EQ(listen(listener, 0), 0);
  std::vector<int> queued;
  for (int i = 0; i < 64; ++i) {
    int client = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (connect(client, address->data(), address->length()) != 0) {
      EXPECT_EQ(errno, EAGAIN);
      close(client);
      break;
    }
    queued.push_back(client);
  }
  ASSERT_LT(queued.size(), 64u) << "the backlog never filled";
  auto second = CreateUnixServer(*loop_, EchoFactory(), path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists)
      << second.status();
  struct stat info;
  EXPECT_EQ(stat(path.c_str(), &info), 0);  // Not unlinked.
  for (int fd : queued) close(fd);
  close(listener);
  unlink(path.c_str());
  rmdir(dir);
}

TEST_F(ServerTest, AThousandConcurrentConnectionsEcho) {
  if (RaiseDescriptorLimit(8192) < 2200) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  auto server = Listen();
  uint16_t port = server->addresses()[0].port();
  constexpr int kClients = 1000;
  std::vector<Task<absl::StatusOr<std::string>>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(EchoOnce(*loop_, "127.0.0.1", port,
                               absl::StrCat("client ", i, " says hello")));
  }
  auto results = Run(WhenAll(*loop_, std::move(clients)));
  ASSERT_TRUE(results.ok());
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE((*results)[i].ok()) << i << ": " << (*results)[i].status();
    EXPECT_EQ(*(*results)[i], absl::StrCat("client ", i, " says hello"));
  }
  EXPECT_TRUE(loop_->RunUntil([&] { return server->active_connections() == 0; }));
}

TEST_F(ServerTest, ABurstOfConnectsCompletesBeforeTheServerAccepts) {
  if (RaiseDescriptorLimit(8192) < 2200) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  auto server = Listen();
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(server->addresses()[0].port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // The loop does not run: every handshake must fit in the backlog (with
  // asyncio's 100, the kernel drops the SYNs beyond it).
  constexpr int kClients = 1000;
  std::vector<pollfd> clients;
  for (int i = 0; i < kClients; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << strerror(errno);
    clients.push_back(pollfd{.fd = fd, .events = POLLOUT, .revents = 0});
  }
  int connected = 0;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  std::vector<pollfd> pending = clients;
  while (!pending.empty() && absl::Now() < give_up) {
    ASSERT_GE(poll(pending.data(), pending.size(), 100), 0);
    std::erase_if(pending, [&](const pollfd& p) {
      if (p.revents == 0) return false;
      int error = 0;
      socklen_t length = sizeof(error);
      getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &error, &length);
      EXPECT_EQ(error, 0) << strerror(error);
      ++connected;
      return true;
    });
  }
  EXPECT_EQ(connected, kClients) << "handshakes beyond the backlog";
  EXPECT_TRUE(loop_->RunUntil(
      [&] { return server->active_connections() == kClients; }));
  for (const pollfd& client : clients) close(client.fd);
}

// A client that sends `bytes` and never reads: the echo server's graceful
// close can never finish.
class NeverReads final : public Protocol {
 public:
  explicit NeverReads(size_t bytes) : bytes_(bytes) {}
  void ConnectionMade(Transport& transport) override {
    transport.PauseReading();
    transport.Write(std::string(bytes_, 'x'));
  }

 private:
  size_t bytes_;
};

class ShutdownTest : public ServerTest {
 protected:
  // An echo server whose connections' transports are kept in
  // `server_sides_`, and a client that never reads its echo, connected
  // until the server holds echo it cannot send.
  void ListenWithAClientThatNeverReads() {
    auto server = Run(CreateServer(
        *loop_,
        [this] {
          class Recorded final : public Protocol {
           public:
            explicit Recorded(std::vector<Transport*>& out) : out_(out) {}
            void ConnectionMade(Transport& t) override {
              out_.push_back(&t);
              echo_.ConnectionMade(t);
            }
            void DataReceived(std::string_view data) override {
              echo_.DataReceived(data);
            }
            void PauseWriting() override { echo_.PauseWriting(); }
            void ResumeWriting() override { echo_.ResumeWriting(); }

           private:
            std::vector<Transport*>& out_;
            EchoProtocol echo_;
          };
          return std::make_unique<Recorded>(server_sides_);
        },
        "127.0.0.1", 0));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto client = Run(CreateConnection(
        *loop_, [] { return std::make_unique<NeverReads>(32 << 20); },
        "127.0.0.1", server_->addresses()[0].port()));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = client->transport;
    ASSERT_TRUE(loop_->RunUntil([&] {
      return server_sides_.size() == 1 &&
             server_sides_[0]->GetWriteBufferSize() > 0;
    }));
  }

  std::unique_ptr<Server> server_;
  std::vector<Transport*> server_sides_;
  Transport* client_ = nullptr;
};

TEST_F(ShutdownTest, ClosesGracefullyWhenEveryClientFinishes) {
  auto server = Listen();
  uint16_t port = server->addresses()[0].port();
  Future<absl::Status> lost(*loop_);
  class Idle final : public Protocol {
   public:
    explicit Idle(Future<absl::Status> lost) : lost_(std::move(lost)) {}
    void ConnectionLost(const absl::Status& status) override {
      lost_.SetResult(status);
    }

   private:
    Future<absl::Status> lost_;
  };
  auto client = Run(CreateConnection(
      *loop_, [&] { return std::make_unique<Idle>(lost); }, "127.0.0.1", port));
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(loop_->RunUntil([&] { return server->active_connections() == 1; }));

  Future<absl::Status> shut = server->Shutdown(absl::Seconds(30));
  EXPECT_FALSE(server->IsServing());
  EXPECT_TRUE(Run(shut).ok());
  EXPECT_TRUE(Run(lost).ok());  // The client saw a clean EOF, not a reset.
  EXPECT_EQ(server->active_connections(), 0u);
}

TEST_F(ShutdownTest, WithNoConnectionsCompletesAtOnce) {
  auto server = Listen();
  EXPECT_TRUE(Run(server->Shutdown(absl::Hours(1))).ok());
}

TEST_F(ShutdownTest, AbortsWhatIsStillOpenAtTheDeadline) {
  ListenWithAClientThatNeverReads();
  const MonotonicTime start = loop_->Time();
  absl::Status shut = Run(server_->Shutdown(absl::Milliseconds(200)));
  EXPECT_GE(Difference(loop_->Time(), start), absl::Milliseconds(200));
  EXPECT_EQ(shut.code(), absl::StatusCode::kDeadlineExceeded) << shut;
  EXPECT_THAT(shut.message(), HasSubstr("aborted 1 connection"));
  EXPECT_EQ(server_->active_connections(), 0u);
}

TEST_F(ShutdownTest, ASecondCallBringsTheDeadlineForward) {
  ListenWithAClientThatNeverReads();
  Future<absl::Status> first = server_->Shutdown(absl::Hours(1));
  Future<absl::Status> second = server_->Shutdown(absl::ZeroDuration());
  EXPECT_EQ(Run(second).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Run(first).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(server_->active_connections(), 0u);
  // A later, longer grace does not push the deadline back.
  EXPECT_EQ(Run(server_->Shutdown(absl::Hours(1))).code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ServerTest, OutOfDescriptorsAtAcceptBacksOffAndRecovers) {
  auto server = Listen("127.0.0.1", 0,
                       ServerOptions{.accept_retry_delay = absl::Milliseconds(100)});
  uint16_t port = server->addresses()[0].port();
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Clients connect (the kernel completes the handshakes), then the
  // process runs out of descriptors before the server accepts them.
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    clients.push_back(fd);
  }
  rlimit original;
  getrlimit(RLIMIT_NOFILE, &original);
  // Fill every free descriptor below the highest open one, then set the
  // limit right there: the next accept gets EMFILE.
  int highest = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) highest = fd;
  }
  std::vector<int> fillers;
  int first_free;
  while ((first_free = open("/dev/null", O_RDONLY | O_CLOEXEC)) < highest) {
    fillers.push_back(first_free);
  }
  close(first_free);
  rlimit tight = original;
  tight.rlim_cur = first_free;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);

  bool saw_error = loop_->RunUntil([&] { return !errors_.empty(); });
  size_t accepted_while_out = server->active_connections();
  // Restored before any assertion: sanitizers' checks need descriptors.
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
  ASSERT_TRUE(saw_error);
  EXPECT_THAT(errors_[0], HasSubstr("out of system resources"));
  EXPECT_EQ(accepted_while_out, 0u);
  EXPECT_TRUE(server->IsServing());

  // After the back-off the pending connections are accepted and served.
  ASSERT_TRUE(loop_->RunUntil([&] { return server->active_connections() == 3; }));
  ASSERT_EQ(write(clients[0], "alive", 5), 5);
  char buf[5];
  // The echo comes back while the loop runs.
  int flags = fcntl(clients[0], F_GETFL);
  fcntl(clients[0], F_SETFL, flags | O_NONBLOCK);
  size_t got = 0;
  ASSERT_TRUE(loop_->RunUntil([&] {
    ssize_t n = read(clients[0], buf + got, sizeof(buf) - got);
    if (n > 0) got += n;
    return got == sizeof(buf);
  }));
  EXPECT_EQ(std::string(buf, 5), "alive");
  for (int fd : clients) close(fd);
  for (int fd : fillers) close(fd);
}

#if SLUICE_HAS_EXCEPTIONS
TEST_F(ServerTest, AFailingProtocolFactoryIsReportedAndTheServerGoesOn) {
  int calls = 0;
  auto server = Run(CreateServer(
      *loop_,
      [&calls]() -> std::unique_ptr<Protocol> {
        if (++calls == 1) return nullptr;
        if (calls == 2) throw std::runtime_error("factory exploded");
        return std::make_unique<EchoProtocol>();
      },
      "127.0.0.1", 0));
  ASSERT_TRUE(server.ok());
  uint16_t port = (*server)->addresses()[0].port();
  for (int i = 0; i < 2; ++i) {
    auto refused = Run(EchoOnce(*loop_, "127.0.0.1", port, "x"));
    EXPECT_FALSE(refused.ok());  // Closed by the server: no protocol.
  }
  auto echoed = Run(EchoOnce(*loop_, "127.0.0.1", port, "third time"));
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "third time");
  ASSERT_EQ(errors_.size(), 2u);
  EXPECT_THAT(errors_[0], HasSubstr("returned nothing"));
  EXPECT_THAT(errors_[1], HasSubstr("factory exploded"));
}

#endif  // SLUICE_HAS_EXCEPTIONS

TEST(ResolverTest, NumericAddressesNeedNoLookup) {
  auto loop = EventLoop::Create().value();
  auto v6 = loop->RunUntilComplete(Resolve(*loop, "::1", 80));
  ASSERT_TRUE(v6.ok());
  ASSERT_EQ(v6->size(), 1u);
  EXPECT_EQ((*v6)[0].ToString(), "[::1]:80");
  auto wrong_family = loop->RunUntilComplete(
      Resolve(*loop, "::1", 80, ResolveOptions{.family = AF_INET}));
  EXPECT_EQ(wrong_family.status().code(), absl::StatusCode::kNotFound);
  auto empty = loop->RunUntilComplete(Resolve(*loop, "", 80));
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
