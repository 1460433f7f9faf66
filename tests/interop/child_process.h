#ifndef SLUICE_TESTS_INTEROP_CHILD_PROCESS_H_
#define SLUICE_TESTS_INTEROP_CHILD_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "framework/event_loop.h"

namespace sluice::interop_testing {

// A peer program (openssl s_client, a Python script) as a child process
// with its stdin and its stdout and stderr on pipes; killed when this goes.
// Failures to start it are test failures.
class Child {
 public:
  explicit Child(std::vector<std::string> argv);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void Write(std::string_view data);
  void CloseStdin();
  // What the child printed so far, without waiting.
  const std::string& Poll();
  // Waits (at most 10 s) until the output holds one of `texts`, and
  // returns what follows it on its line; runs `loop` meanwhile, which the
  // child may be talking to.
  std::optional<std::string> WaitFor(std::vector<std::string_view> texts,
                                     EventLoop& loop);
  // Waits (at most 10 s, running `loop`) for the child to exit; its exit
  // status, or nullopt if it did not exit normally in time.
  std::optional<int> WaitForExit(EventLoop& loop);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string output_;
};

}  // namespace sluice::interop_testing

#endif  // SLUICE_TESTS_INTEROP_CHILD_PROCESS_H_
