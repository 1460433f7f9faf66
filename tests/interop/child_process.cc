#include "tests/interop/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

extern char** environ;

namespace sluice::interop_testing {
namespace {

constexpr absl::Duration kPatience = absl::Seconds(10);

}  // namespace

Child::Child(std::vector<std::string> argv) {
  int in[2], out[2];
  // Close-on-exec: a later child must not inherit this one's pipes (dup2
  // clears the flag on the copies that become this child's 0, 1 and 2).
  EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  posix_spawn_file_actions_addclose(&actions, in[1]);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const int spawned =
      posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
  EXPECT_EQ(spawned, 0) << "cannot run " << argv[0];
  if (spawned != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  stdin_ = in[1];
  stdout_ = out[0];
  fcntl(stdout_, F_SETFL, O_NONBLOCK);
}

Child::~Child() {
  CloseStdin();
  // Never kill(-1): that is every process of this user.
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  close(stdout_);
}

void Child::Write(std::string_view data) {
  EXPECT_EQ(write(stdin_, data.data(), data.size()),
            static_cast<ssize_t>(data.size()));
}

void Child::CloseStdin() {
  if (stdin_ >= 0) close(stdin_);
  stdin_ = -1;
}

const std::string& Child::Poll() {
  char buffer[4096];
  ssize_t n;
  while ((n = read(stdout_, buffer, sizeof(buffer))) > 0) {
    output_.append(buffer, static_cast<size_t>(n));
  }
  return output_;
}

std::optional<std::string> Child::WaitFor(std::vector<std::string_view> texts,
                                          EventLoop& loop) {
  const absl::Time deadline = absl::Now() + kPatience;
  while (absl::Now() < deadline) {
    Poll();
    for (std::string_view text : texts) {
      if (size_t at = output_.find(text); at != std::string::npos) {
        const size_t rest = at + text.size();
        return output_.substr(rest, output_.find('\n', rest) - rest);
      }
    }
    loop.RunOnce(absl::Milliseconds(5));
  }
  ADD_FAILURE() << "the child's output never showed what was awaited; it "
                   "printed:\n"
                << output_;
  return std::nullopt;
}

std::optional<int> Child::WaitForExit(EventLoop& loop) {
  const absl::Time deadline = absl::Now() + kPatience;
  while (pid_ > 0 && !reaped_ && absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      Poll();
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return std::nullopt;
    }
    loop.RunOnce(absl::Milliseconds(5));
  }
  return std::nullopt;
}

}  // namespace sluice::interop_testing
