#ifndef SLUICE_TRANSPORTS_TLS_QUEUE_BIO_H_
#define SLUICE_TRANSPORTS_TLS_QUEUE_BIO_H_

#include <cassert>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

// OpenSSL's type, without its headers.
typedef struct bio_st BIO;

namespace sluice::tls_internal {

// Bytes in order, appended at the back and read from the front, in one
// contiguous block that is freed whenever the queue empties (an idle
// connection holds none).
class ByteQueue {
 public:
  ByteQueue() = default;
  ByteQueue(const ByteQueue&) = delete;
  ByteQueue& operator=(const ByteQueue&) = delete;

  size_t size() const { return tail_ - head_; }
  bool empty() const { return head_ == tail_; }
  // Everything queued, contiguous; valid until the next change.
  std::string_view View() const {
    return std::string_view(block_.get() + head_, size());
  }

  void Append(std::string_view data);
  // Space for at least `size` more bytes at the back, for a writer that
  // fills it in place and then Commits what it wrote.
  std::span<char> Lend(size_t size);
  void Commit(size_t size) {
    assert(size <= capacity_ - tail_);
    tail_ += size;
  }
  // Moves up to `size` bytes from the front into `into`; returns how many.
  size_t Read(char* into, size_t size);
  void Clear();

 private:
  // Room for `extra` more bytes at the back, keeping what is queued.
  void Reserve(size_t extra);

  std::unique_ptr<char[]> block_;
  size_t capacity_ = 0;
  size_t head_ = 0;
  size_t tail_ = 0;
};

// A BIO over `queue` (not owned; it must outlive the BIO): writes append,
// reads take from the front, and reading an empty queue asks to retry (as
// OpenSSL's memory BIO does with an EOF return of -1), never EOF. Unlike
// the memory BIO it does not zero the space each write lands in
// (BUF_MEM_grow_clean), which cost as much as a copy of every byte.
BIO* NewQueueBio(ByteQueue* queue);

}  // namespace sluice::tls_internal

#endif  // SLUICE_TRANSPORTS_TLS_QUEUE_BIO_H_
