#include "framework/write_buffer.h"

#include <algorithm>
#include <utility>

namespace sluice {
namespace {

// Appends up to this size share a chunk; larger ones get their own.
constexpr size_t kChunkSize = 16 * 1024;

}  // namespace

void WriteBuffer::Append(std::string_view data) {
  if (data.empty()) return;
  size_ += data.size();
  if (!chunks_.empty()) {
    std::string& last = chunks_.back();
    // Never grow a chunk (growing would copy what it holds).
    if (last.capacity() - last.size() >= data.size()) {
      last.append(data);
      return;
    }
  }
  std::string chunk;
  if (data.size() < kChunkSize && spare_.capacity() >= kChunkSize) {
    chunk = std::move(spare_);
    spare_ = std::string();
  } else {
    chunk.reserve(std::max(data.size(), kChunkSize));
  }
  chunk.append(data);
  chunks_.push_back(std::move(chunk));
}

size_t WriteBuffer::Peek(std::span<iovec> out) const {
  size_t used = 0;
  size_t offset = front_offset_;
  for (const std::string& chunk : chunks_) {
    if (used == out.size()) break;
    out[used].iov_base = const_cast<char*>(chunk.data() + offset);
    out[used].iov_len = chunk.size() - offset;
    ++used;
    offset = 0;
  }
  return used;
}

void WriteBuffer::Consume(size_t n) {
  size_ -= n;
  while (n > 0) {
    std::string& front = chunks_.front();
    size_t available = front.size() - front_offset_;
    if (n < available) {
      front_offset_ += n;
      return;
    }
    n -= available;
    front_offset_ = 0;
    if (front.capacity() <= 4 * kChunkSize) {
      front.clear();
      spare_ = std::move(front);
    }
    chunks_.pop_front();
  }
}

void WriteBuffer::Clear() {
  std::deque<std::string>().swap(chunks_);
  spare_ = std::string();
  front_offset_ = 0;
  size_ = 0;
}

}  // namespace sluice
