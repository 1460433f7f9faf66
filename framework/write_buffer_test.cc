#include "framework/write_buffer.h"

#include <sys/uio.h>

#include <array>
#include <string>

#include "gtest/gtest.h"

namespace sluice {
namespace {

std::string Drain(WriteBuffer& buffer, size_t max_entries = 64) {
  std::string out;
  std::array<iovec, 64> iov;
  while (!buffer.empty()) {
    size_t count = buffer.Peek(std::span<iovec>(iov.data(), max_entries));
    size_t taken = 0;
    for (size_t i = 0; i < count; ++i) {
      out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      taken += iov[i].iov_len;
    }
    buffer.Consume(taken);
  }
  return out;
}

TEST(WriteBufferTest, KeepsOrderAcrossSmallAndLargeAppends) {
  WriteBuffer buffer;
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    std::string piece(i % 7 == 0 ? 40000 : 13, static_cast<char>('a' + i % 26));
    buffer.Append(piece);
    expected += piece;
  }
  EXPECT_EQ(buffer.size(), expected.size());
  EXPECT_EQ(Drain(buffer, 3), expected);
  EXPECT_TRUE(buffer.empty());
}

TEST(WriteBufferTest, SmallAppendsShareAChunk) {
  WriteBuffer buffer;
  for (int i = 0; i < 100; ++i) buffer.Append("0123456789");
  std::array<iovec, 8> iov;
  EXPECT_EQ(buffer.Peek(iov), 1u);  // 1,000 bytes in one 16 KiB chunk.
}

TEST(WriteBufferTest, PartialConsumeLeavesTheRest) {
  WriteBuffer buffer;
  buffer.Append("hello world");
  buffer.Consume(6);
  EXPECT_EQ(buffer.size(), 5u);
  buffer.Append("!");
  EXPECT_EQ(Drain(buffer), "world!");
}

TEST(WriteBufferTest, PeekRespectsTheArraySize) {
  WriteBuffer buffer;
  for (int i = 0; i < 5; ++i) buffer.Append(std::string(20000, 'x'));
  std::array<iovec, 2> iov;
  EXPECT_EQ(buffer.Peek(iov), 2u);
}

TEST(WriteBufferTest, ClearEmptiesAndTheBufferIsReusable) {
  WriteBuffer buffer;
  buffer.Append(std::string(50000, 'x'));
  buffer.Clear();
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.size(), 0u);
  buffer.Append("again");
  EXPECT_EQ(Drain(buffer), "again");
}

TEST(WriteBufferTest, EmptyAppendIsANoOp) {
  WriteBuffer buffer;
  buffer.Append("");
  EXPECT_TRUE(buffer.empty());
  std::array<iovec, 2> iov;
  EXPECT_EQ(buffer.Peek(iov), 0u);
}

}  // namespace
}  // namespace sluice
