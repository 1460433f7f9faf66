#ifndef SLUICE_FRAMEWORK_WRITE_BUFFER_H_
#define SLUICE_FRAMEWORK_WRITE_BUFFER_H_

#include <sys/uio.h>

#include <cstddef>
#include <deque>
#include <span>
#include <string>
#include <string_view>

namespace sluice {

// The bytes a transport has accepted but not yet handed to the kernel: a
// queue of chunks that hands out its front as an iovec array for writev.
//
// Small appends are coalesced into the last chunk, large ones get a chunk
// of their own, and drained chunks are recycled, so a transport under
// steady back-pressure does not allocate per write.
class WriteBuffer {
 public:
  WriteBuffer() = default;
  WriteBuffer(const WriteBuffer&) = delete;
  WriteBuffer& operator=(const WriteBuffer&) = delete;

  void Append(std::string_view data);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Fills `out` with the front of the buffer; returns how many entries it
  // used. They stay valid until the next Append, Consume or Clear.
  size_t Peek(std::span<iovec> out) const;

  // Drops the first `n` bytes (n <= size()).
  void Consume(size_t n);

  // Drops everything and releases the memory.
  void Clear();

 private:
  std::deque<std::string> chunks_;
  size_t front_offset_ = 0;  // Bytes of chunks_.front() already consumed.
  size_t size_ = 0;
  std::string spare_;  // A drained chunk kept for reuse.
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_WRITE_BUFFER_H_
