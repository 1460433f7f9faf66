#include "transports/tls/queue_bio.h"

#include <openssl/bio.h>

#include <cstring>
#include <span>
#include <string>

#include "gtest/gtest.h"

namespace sluice::tls_internal {
namespace {

TEST(ByteQueueTest, KeepsOrderAcrossGrowthAndPartialReads) {
  ByteQueue queue;
  std::string expected;
  std::string got;
  char buffer[7];
  for (int i = 0; i < 200; ++i) {
    const std::string piece(static_cast<size_t>(i % 13 + 1),
                            static_cast<char>('a' + i % 26));
    queue.Append(piece);
    expected += piece;
    if (i % 3 == 0) got.append(buffer, queue.Read(buffer, sizeof(buffer)));
    EXPECT_EQ(queue.View(), std::string_view(expected).substr(got.size()));
  }
  while (!queue.empty()) got.append(buffer, queue.Read(buffer, sizeof(buffer)));
  EXPECT_EQ(got, expected);
  EXPECT_EQ(queue.Read(buffer, sizeof(buffer)), 0u);
}

TEST(ByteQueueTest, LentSpaceCommittedJoinsTheBack) {
  ByteQueue queue;
  queue.Append("abc");
  char buffer[2];
  ASSERT_EQ(queue.Read(buffer, sizeof(buffer)), 2u);
  std::span<char> lent = queue.Lend(1000);
  ASSERT_GE(lent.size(), 1000u);
  std::memcpy(lent.data(), "defg", 4);
  queue.Commit(4);
  EXPECT_EQ(queue.View(), "cdefg");
  // Lent but not committed: nothing joins.
  queue.Lend(10);
  EXPECT_EQ(queue.size(), 5u);
}

TEST(QueueBioTest, ReadsWhatWasWrittenAndAsksToRetryWhenEmpty) {
  ByteQueue queue;
  BIO* bio = NewQueueBio(&queue);
  ASSERT_NE(bio, nullptr);
  char buffer[16];
  EXPECT_LE(BIO_read(bio, buffer, sizeof(buffer)), 0);
  EXPECT_TRUE(BIO_should_retry(bio));
  EXPECT_TRUE(BIO_should_read(bio));

  EXPECT_EQ(BIO_write(bio, "hello, ", 7), 7);
  queue.Append("world");
  EXPECT_EQ(BIO_ctrl_pending(bio), 12u);
  ASSERT_EQ(BIO_read(bio, buffer, 5), 5);
  EXPECT_EQ(std::string(buffer, 5), "hello");
  ASSERT_EQ(BIO_read(bio, buffer, sizeof(buffer)), 7);
  EXPECT_EQ(std::string(buffer, 7), ", world");
  EXPECT_FALSE(BIO_should_retry(bio));
  EXPECT_EQ(BIO_ctrl_pending(bio), 0u);
  EXPECT_TRUE(queue.empty());
  BIO_free(bio);
}

}  // namespace
}  // namespace sluice::tls_internal
