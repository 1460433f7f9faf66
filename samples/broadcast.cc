// Fans one stream out to many clients: a producer coroutine makes a message
// every --interval, and each client has its own sender coroutine that
// writes and awaits Drain(). A slow client therefore slows only itself: its
// backlog grows, and past --max_lag messages it loses the oldest ones
// (--slow=drop) or is disconnected (--slow=disconnect). Memory stays
// bounded by clients x (max_lag messages + the transport's watermark), and
// a message body is shared by all the queues it is in.
//
//   ./bazelw run //samples:broadcast -- --port=8890 --interval=10ms
//   nc 127.0.0.1 8890

#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <deque>
#include <list>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "framework/event_loop.h"
#include "framework/future.h"
#include "framework/task.h"
#include "framework/wait_queue.h"
#include "protocols/streams/streams.h"
#include "samples/command_line.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 8890, "TCP port; 0 picks a free one.");
ABSL_FLAG(absl::Duration, interval, absl::Milliseconds(10),
          "Time between two messages.");
ABSL_FLAG(int, message_size, 1024, "Bytes per message, newline included.");
ABSL_FLAG(int, max_lag, 100,
          "Messages a client may be behind before --slow applies.");
ABSL_FLAG(std::string, slow, "drop",
          "What happens to a client past --max_lag: drop (its oldest "
          "messages) or disconnect.");
ABSL_FLAG(absl::Duration, stats_interval, absl::Seconds(1),
          "How often to print the statistics.");

namespace {

using sluice::EventLoop;
using sluice::StreamReader;
using sluice::StreamWriter;
using sluice::Task;

// One client: its backlog, and the coroutine that sends it. Shared by that
// coroutine and the producer's list.
struct Subscriber {
  Subscriber(EventLoop& loop, StreamWriter writer)
      : writer(std::move(writer)), ready(loop) {}
  StreamWriter writer;
  std::deque<std::shared_ptr<const std::string>> backlog;
  sluice::WaitQueue ready;
  uint64_t dropped = 0;
  bool disconnected = false;
};

class Broadcaster {
 public:
  explicit Broadcaster(EventLoop& loop) : loop_(loop) {}

  // The per-client coroutine (StartServer's callback).
  Task<absl::Status> Serve(StreamReader, StreamWriter writer) {
    auto subscriber = std::make_shared<Subscriber>(loop_, writer);
    auto it = subscribers_.insert(subscribers_.end(), subscriber);
    struct Unsubscribe {
      Broadcaster& self;
      std::list<std::shared_ptr<Subscriber>>::iterator it;
      ~Unsubscribe() { self.subscribers_.erase(it); }
    } unsubscribe{*this, it};
    while (!subscriber->disconnected) {
      if (subscriber->backlog.empty()) {
        if (!(co_await subscriber->ready.Wait()).ok()) break;
        continue;
      }
      std::shared_ptr<const std::string> message =
          std::move(subscriber->backlog.front());
      subscriber->backlog.pop_front();
      writer.Write(*message);
      // Only this client waits for its own slowness.
      if (!(co_await writer.Drain()).ok()) break;
    }
    writer.Close();
    co_return absl::OkStatus();
  }

  // The producer: one message every `interval`, to every client.
  Task<absl::Status> Produce(absl::Duration interval, size_t size,
                             size_t max_lag, bool disconnect_slow) {
    for (uint64_t sequence = 0;; ++sequence) {
      if (absl::Status slept = co_await loop_.Sleep(interval); !slept.ok()) {
        co_return slept;
      }
      std::string text = absl::StrFormat("message %d ", sequence);
      text.resize(std::max(size, text.size() + 1), '.');
      text.back() = '\n';
      auto message = std::make_shared<const std::string>(std::move(text));
      for (const std::shared_ptr<Subscriber>& subscriber : subscribers_) {
        if (subscriber->disconnected) continue;
        if (subscriber->backlog.size() >= max_lag) {
          if (disconnect_slow) {
            subscriber->disconnected = true;
            subscriber->backlog.clear();
            if (sluice::Transport* t = subscriber->writer.transport()) {
              t->Abort();
            }
            subscriber->ready.WakeAll(absl::CancelledError("too slow"));
            ++disconnected_;
            continue;
          }
          subscriber->backlog.pop_front();
          ++subscriber->dropped;
        }
        subscriber->backlog.push_back(message);
        subscriber->ready.WakeAll();
      }
      ++produced_;
    }
  }

  void PrintStats() const {
    size_t queued = 0;
    size_t buffered = 0;
    uint64_t dropped = 0;
    for (const std::shared_ptr<Subscriber>& subscriber : subscribers_) {
      queued += subscriber->backlog.size();
      dropped += subscriber->dropped;
      if (sluice::Transport* t = subscriber->writer.transport()) {
        buffered += t->GetWriteBufferSize();
      }
    }
    absl::PrintF(
        "messages: %d, clients: %d, queued messages: %d, buffered: %d "
        "bytes, dropped: %d, disconnected: %d\n",
        produced_, subscribers_.size(), queued, buffered, dropped,
        disconnected_);
  }

 private:
  EventLoop& loop_;
  std::list<std::shared_ptr<Subscriber>> subscribers_;
  uint64_t produced_ = 0;
  uint64_t disconnected_ = 0;
};

void StatsEvery(EventLoop& loop, const Broadcaster& broadcaster,
                absl::Duration interval) {
  broadcaster.PrintStats();
  loop.CallLater(interval, [&loop, &broadcaster, interval] {
    StatsEvery(loop, broadcaster, interval);
  });
}

}  // namespace

constexpr char kUsage[] =
    "Fans one stream out to many clients: a message every --interval, each\n"
    "client sent its own backlog with Drain(), so a slow client slows only\n"
    "itself and past --max_lag loses messages (--slow=drop) or is disconnected.\n"
    "\n"
    "  ./bazelw run //samples:broadcast -- --port=8890 --interval=10ms\n"
    "  nc 127.0.0.1 8890\n";

int main(int argc, char** argv) {
  sluice::samples::ParseCommandLine(argc, argv, kUsage);
  const std::string slow = absl::GetFlag(FLAGS_slow);
  const int port = absl::GetFlag(FLAGS_port);
  if ((slow != "drop" && slow != "disconnect") || port < 0 || port > 65535 ||
      absl::GetFlag(FLAGS_max_lag) < 1 || absl::GetFlag(FLAGS_message_size) < 1) {
    absl::FPrintF(stderr,
                  "broadcast: --slow is drop or disconnect, --port 0..65535, "
                  "--max_lag and --message_size positive\n");
    return 2;
  }
  auto loop = EventLoop::Create();
  if (!loop.ok()) {
    absl::FPrintF(stderr, "broadcast: %s\n", loop.status().ToString());
    return 1;
  }
  Broadcaster broadcaster(**loop);
  auto serve = [&broadcaster](StreamReader reader, StreamWriter writer) {
    return broadcaster.Serve(std::move(reader), std::move(writer));
  };
  auto server = (*loop)->RunUntilComplete(sluice::StartServer(
      **loop, serve, absl::GetFlag(FLAGS_host), static_cast<uint16_t>(port)));
  if (!server.ok()) {
    absl::FPrintF(stderr, "broadcast: %s\n", server.status().ToString());
    return 1;
  }
  for (const sluice::SocketAddress& address : (*server)->addresses()) {
    absl::PrintF("broadcast server listening on %s\n", address.ToString());
  }
  sluice::Future<absl::Status> producer = sluice::Spawn(
      **loop, broadcaster.Produce(
                  absl::GetFlag(FLAGS_interval),
                  static_cast<size_t>(absl::GetFlag(FLAGS_message_size)),
                  static_cast<size_t>(absl::GetFlag(FLAGS_max_lag)),
                  slow == "disconnect"));
  StatsEvery(**loop, broadcaster, absl::GetFlag(FLAGS_stats_interval));
  auto stop = [&] {
    producer.Cancel();
    (*server)->Close();
    (*server)->AbortClients();
    (*loop)->Stop();
  };
  for (int signo : {SIGINT, SIGTERM}) {
    if (absl::Status s = (*loop)->AddSignalHandler(signo, stop); !s.ok()) {
      absl::FPrintF(stderr, "broadcast: %s\n", s.ToString());
      return 1;
    }
  }
  (*loop)->RunForever();
  // The loop goes first: its coroutines refer to the broadcaster.
  loop->reset();
  return 0;
}
