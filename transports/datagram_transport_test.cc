#include "transports/datagram_transport.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/protocol.h"
#include "framework/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What a datagram protocol saw; outlives the protocol (the transport owns
// and destroys it).
struct Record {
  std::vector<std::string> datagrams;
  std::vector<SocketAddress> senders;
  std::vector<absl::Status> errors;
  std::vector<std::string> events;
  DatagramTransport* transport = nullptr;
};

class RecordingProtocol : public DatagramProtocol {
 public:
  explicit RecordingProtocol(Record& record, bool echo = false)
      : record_(record), echo_(echo) {}
  void ConnectionMade(DatagramTransport& transport) override {
    record_.transport = &transport;
    record_.events.push_back("made");
  }
  void DatagramReceived(std::string_view data,
                        const SocketAddress& from) override {
    record_.datagrams.emplace_back(data);
    record_.senders.push_back(from);
    if (echo_) record_.transport->SendTo(data, from);
  }
  void ErrorReceived(const absl::Status& error) override {
    record_.errors.push_back(error);
  }
  void ConnectionLost(const absl::Status& status) override {
    record_.events.push_back(
        absl::StrCat("lost:", absl::StatusCodeToString(status.code())));
  }

 private:
  Record& record_;
  bool echo_;
};

class DatagramTest : public ::testing::Test {
 protected:
  DatagramTest() : loop_(EventLoop::Create().value()) {
    loop_->SetErrorHandler([this](const LoopError& e) {
      loop_errors_.push_back(absl::StrCat(e.message, ": ", e.status.ToString()));
    });
    watchdog_ = loop_->CallLater(absl::Seconds(30), [this] {
      ADD_FAILURE() << "test still running after 30 s";
      loop_->Stop();
    });
  }
  ~DatagramTest() override { watchdog_.Cancel(); }

  DatagramEndpoint Open(Record& record, DatagramEndpointOptions options,
                        bool echo = false) {
    auto endpoint = loop_->RunUntilComplete(CreateDatagramEndpoint(
        *loop_,
        [&record, echo] {
          return std::make_unique<RecordingProtocol>(record, echo);
        },
        options));
    EXPECT_TRUE(endpoint.ok()) << endpoint.status();
    return *endpoint;
  }

  std::unique_ptr<EventLoop> loop_;
  std::vector<std::string> loop_errors_;
  Handle watchdog_;
};

TEST_F(DatagramTest, ConnectedClientRoundTrip) {
  Record server;
  DatagramEndpoint echo =
      Open(server, {.local = HostPort{"127.0.0.1", 0}}, /*echo=*/true);
  SocketAddress server_address = *echo.transport->LocalAddress();
  ASSERT_NE(server_address.port(), 0);

  Record client;
  DatagramEndpoint sender = Open(
      client, {.remote = HostPort{"127.0.0.1", server_address.port()}});
  EXPECT_EQ(sender.transport->PeerAddress()->port(), server_address.port());
  sender.transport->SendTo("ping");
  sender.transport->SendTo(std::string(60000, 'z'));  // A large one, intact.
  ASSERT_TRUE(loop_->RunUntil([&] { return client.datagrams.size() == 2; }));
  EXPECT_EQ(client.datagrams[0], "ping");
  EXPECT_EQ(client.datagrams[1], std::string(60000, 'z'));
  EXPECT_EQ(client.senders[0], server_address);
  // The server saw the client's own address.
  EXPECT_EQ(server.senders[0], *sender.transport->LocalAddress());
  EXPECT_TRUE(client.errors.empty());
}

TEST_F(DatagramTest, UnconnectedEndpointSendsToAnyAddress) {
  Record a;
  Record b;
  DatagramEndpoint first = Open(a, {.local = HostPort{"127.0.0.1", 0}});
  DatagramEndpoint second = Open(b, {.local = HostPort{"127.0.0.1", 0}});
  first.transport->SendTo("to b", *second.transport->LocalAddress());
  second.transport->SendTo("to a", *first.transport->LocalAddress());
  ASSERT_TRUE(loop_->RunUntil(
      [&] { return a.datagrams.size() == 1 && b.datagrams.size() == 1; }));
  EXPECT_EQ(a.datagrams[0], "to a");
  EXPECT_EQ(b.datagrams[0], "to b");
  // No address on an unconnected endpoint: an error, not a crash.
  first.transport->SendTo("nowhere");
  ASSERT_TRUE(loop_->RunUntil([&] { return !a.errors.empty(); }));
  EXPECT_EQ(a.errors[0].code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DatagramTest, IcmpPortUnreachableSurfacesAsErrorReceived) {
  // A port with nobody listening: bind, read the port, close.
  int probe = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length);
  close(probe);

  Record client;
  DatagramEndpoint sender =
      Open(client, {.remote = HostPort{"127.0.0.1", ntohs(address.sin_port)}});
  sender.transport->SendTo("anyone?");
  ASSERT_TRUE(loop_->RunUntil([&] { return !client.errors.empty(); }));
  EXPECT_EQ(client.errors[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(client.errors[0].message(), HasSubstr("refused"));
  // The endpoint stays open and usable.
  EXPECT_FALSE(sender.transport->IsClosing());
  EXPECT_THAT(client.events, ElementsAre("made"));
}

TEST_F(DatagramTest, ConnectedEndpointRefusesOtherAddresses) {
  Record server;
  DatagramEndpoint echo = Open(server, {.local = HostPort{"127.0.0.1", 0}});
  Record client;
  DatagramEndpoint sender = Open(
      client,
      {.remote = HostPort{"127.0.0.1", echo.transport->LocalAddress()->port()}});
  sender.transport->SendTo("x", SocketAddress::FromIp("127.0.0.1", 9).value());
  ASSERT_TRUE(loop_->RunUntil([&] { return !client.errors.empty(); }));
  EXPECT_EQ(client.errors[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(server.datagrams.empty());
}

TEST_F(DatagramTest, CloseReportsConnectionLostAndDropsLaterSends) {
  Record record;
  DatagramEndpoint endpoint = Open(record, {.local = HostPort{"127.0.0.1", 0}});
  endpoint.transport->Close();
  EXPECT_TRUE(endpoint.transport->IsClosing());
  endpoint.transport->SendTo("late",
                             SocketAddress::FromIp("127.0.0.1", 9).value());
  endpoint.transport->SendTo("later",
                             SocketAddress::FromIp("127.0.0.1", 9).value());
  ASSERT_TRUE(loop_->RunUntil([&] { return record.events.size() == 2; }));
  EXPECT_THAT(record.events, ElementsAre("made", "lost:OK"));
  ASSERT_EQ(loop_errors_.size(), 1u);  // Reported once.
  EXPECT_THAT(loop_errors_[0], HasSubstr("dropped a write of 4 bytes"));
}

TEST_F(DatagramTest, FlowControlLimitsAreValidated) {
  Record record;
  DatagramEndpoint endpoint = Open(record, {.local = HostPort{"127.0.0.1", 0}});
  WriteBufferLimits limits = endpoint.transport->GetWriteBufferLimits();
  EXPECT_EQ(limits.high, 65536u);
  EXPECT_EQ(limits.low, 16384u);
  EXPECT_EQ(endpoint.transport->SetWriteBufferLimits(10, 20).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(endpoint.transport->SetWriteBufferLimits(std::nullopt, 100).ok());
  EXPECT_EQ(endpoint.transport->GetWriteBufferLimits().high, 400u);
  EXPECT_EQ(endpoint.transport->GetWriteBufferSize(), 0u);
}

TEST_F(DatagramTest, NeedsAnAddressOrAFamily) {
  auto endpoint = loop_->RunUntilComplete(CreateDatagramEndpoint(
      *loop_, [] { return std::make_unique<DatagramProtocol>(); }, {}));
  EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument);
  // Binding an address this host does not have (no packet is sent).
  auto bad_bind = loop_->RunUntilComplete(CreateDatagramEndpoint(
      *loop_, [] { return std::make_unique<DatagramProtocol>(); },
      {.local = HostPort{"192.0.2.1", 0}}));
  EXPECT_FALSE(bad_bind.ok());
  EXPECT_THAT(bad_bind.status().message(), HasSubstr("bind on 192.0.2.1:0"));
}

TEST_F(DatagramTest, UnixDatagramEndpointsExchangeAndCleanUp) {
  // TEST_TMPDIR is too long for sun_path (108 bytes).
  char dir[] = "/tmp/sluice_dgram_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string server_path = absl::StrCat(dir, "/server.sock");
  const std::string client_path = absl::StrCat(dir, "/client.sock");
  // A stale socket file where the server binds: replaced.
  {
    int stale = socket(AF_UNIX, SOCK_DGRAM, 0);
    auto address = SocketAddress::FromUnixPath(server_path);
    ASSERT_EQ(bind(stale, address->data(), address->length()), 0);
    close(stale);
  }
  Record server_record;
  auto server_factory = [&server_record] {
    return std::make_unique<RecordingProtocol>(server_record, /*echo=*/true);
  };
  auto server = loop_->RunUntilComplete(CreateUnixDatagramEndpoint(
      *loop_, server_factory,
      UnixDatagramEndpointOptions{.local_path = server_path}));
  ASSERT_TRUE(server.ok()) << server.status();
  Record client_record;
  auto client_factory = [&client_record] {
    return std::make_unique<RecordingProtocol>(client_record);
  };
  auto client = loop_->RunUntilComplete(CreateUnixDatagramEndpoint(
      *loop_, client_factory,
      UnixDatagramEndpointOptions{.local_path = client_path,
                                  .remote_path = server_path}));
  ASSERT_TRUE(client.ok()) << client.status();
  client->transport->SendTo("over unix");
  ASSERT_TRUE(loop_->RunUntil([&] { return !client_record.datagrams.empty(); }));
  EXPECT_THAT(server_record.datagrams, ElementsAre("over unix"));
  EXPECT_EQ(server_record.senders[0].ToString(), "unix:" + client_path);
  EXPECT_THAT(client_record.datagrams, ElementsAre("over unix"));
  EXPECT_EQ(client->transport->PeerAddress()->ToString(), "unix:" + server_path);

  client->transport->Close();
  server->transport->Close();
  ASSERT_TRUE(loop_->RunUntil([&] {
    return client_record.events.size() == 2 && server_record.events.size() == 2;
  }));
  struct stat info;
  EXPECT_NE(stat(server_path.c_str(), &info), 0);  // Its own file is gone.
  EXPECT_NE(stat(client_path.c_str(), &info), 0);
  rmdir(dir);
}

TEST_F(DatagramTest, UnixDatagramToNobodyIsAnError) {
  Record record;
  auto factory = [&record] { return std::make_unique<RecordingProtocol>(record); };
  auto endpoint = loop_->RunUntilComplete(CreateUnixDatagramEndpoint(
      *loop_, factory,
      UnixDatagramEndpointOptions{.remote_path = "/tmp/sluice-nobody.sock"}));
  EXPECT_FALSE(endpoint.ok());
  EXPECT_THAT(std::string(endpoint.status().message()),
              HasSubstr("sluice-nobody.sock"));
}

}  // namespace
}  // namespace sluice
