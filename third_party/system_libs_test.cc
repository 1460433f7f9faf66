// Checks that the system libraries behind the third-party labels
// (@com_google_absl, @com_google_googletest, @openssl) compile, link and work.

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, system_libs_test_flag, 1, "A flag for the absl/flags check.");

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::Return;
using ::testing::UnorderedElementsAre;

TEST(AbslTest, StrFormatAndStrings) {
  EXPECT_EQ(absl::StrFormat("%s-%03d-%.1f", "x", 7, 2.25), "x-007-2.2");
  EXPECT_EQ(absl::StrCat("a", 1, "b"), "a1b");
  std::vector<std::string> parts = absl::StrSplit("a,b,c", ',');
  EXPECT_THAT(parts, ElementsAre("a", "b", "c"));
}

absl::StatusOr<int> ParsePositive(int v) {
  if (v <= 0) return absl::InvalidArgumentError(absl::StrCat("not positive: ", v));
  return v;
}

TEST(AbslTest, StatusOr) {
  absl::StatusOr<int> ok = ParsePositive(3);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  absl::StatusOr<int> bad = ParsePositive(-1);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not positive"));
}

TEST(AbslTest, FlatHashMap) {
  absl::flat_hash_map<std::string, int> m = {{"one", 1}, {"two", 2}};
  m["three"] = 3;
  EXPECT_EQ(m.size(), 3u);
  EXPECT_THAT(m, UnorderedElementsAre(Pair("one", 1), Pair("two", 2), Pair("three", 3)));
}

// Not run under --config=tsan: Debian's Abseil is built without TSAN, which
// therefore cannot see absl::Mutex synchronize.
TEST(AbslTest, MutexAndTime) {
  absl::Mutex mu;
  int counter = 0;  // Guarded by mu.
  absl::Notification start;
  const absl::Time begin = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      start.WaitForNotification();
      for (int i = 0; i < 1000; ++i) {
        absl::MutexLock lock(&mu);
        ++counter;
      }
    });
  }
  start.Notify();
  for (std::thread& t : threads) t.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(counter, 4000);
  EXPECT_GE(absl::Now() - begin, absl::ZeroDuration());
  EXPECT_EQ(absl::FormatDuration(absl::Milliseconds(1500)), "1.5s");
}

TEST(AbslTest, Flags) {
  EXPECT_EQ(absl::GetFlag(FLAGS_system_libs_test_flag), 1);
  std::array<char*, 2> argv = {const_cast<char*>("prog"),
                               const_cast<char*>("--system_libs_test_flag=42")};
  absl::ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  EXPECT_EQ(absl::GetFlag(FLAGS_system_libs_test_flag), 42);
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int Now() = 0;
};

class MockClock : public Clock {
 public:
  MOCK_METHOD(int, Now, (), (override));
};

TEST(GMockTest, MockAndMatchers) {
  MockClock clock;
  EXPECT_CALL(clock, Now()).WillOnce(Return(5)).WillOnce(Return(6));
  EXPECT_EQ(clock.Now(), 5);
  EXPECT_EQ(clock.Now(), 6);
}

TEST(OpenSslTest, VersionAtLeast3) {
  EXPECT_GE(OpenSSL_version_num(), 0x30000000UL);
  EXPECT_THAT(std::string(OpenSSL_version(OPENSSL_VERSION)), HasSubstr("OpenSSL 3"));
}

TEST(OpenSslTest, CreatesTlsContext) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
  SSL* ssl = SSL_new(ctx);
  EXPECT_NE(ssl, nullptr);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
}

TEST(OpenSslTest, Sha256) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  ASSERT_EQ(EVP_Digest("abc", 3, md.data(), &len, EVP_sha256(), nullptr), 1);
  ASSERT_EQ(len, 32u);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppendFormat(&hex, "%02x", md[i]);
  EXPECT_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
