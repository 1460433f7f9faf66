#include "transports/tls/queue_bio.h"

#include <openssl/bio.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace sluice::tls_internal {

void ByteQueue::Reserve(size_t extra) {
  if (capacity_ - tail_ >= extra) return;
  const size_t needed = size() + extra;
  if (needed <= capacity_) {
    // Room once the front is reclaimed.
    std::memmove(block_.get(), block_.get() + head_, size());
  } else {
    const size_t capacity = std::max(needed, 2 * capacity_);
    auto block = std::make_unique_for_overwrite<char[]>(capacity);
    if (!empty()) std::memcpy(block.get(), block_.get() + head_, size());
    block_ = std::move(block);
    capacity_ = capacity;
  }
  tail_ = size();
  head_ = 0;
}

void ByteQueue::Append(std::string_view data) {
  if (data.empty()) return;
  Reserve(data.size());
  std::memcpy(block_.get() + tail_, data.data(), data.size());
  tail_ += data.size();
}

std::span<char> ByteQueue::Lend(size_t size) {
  Reserve(size);
  return std::span<char>(block_.get() + tail_, capacity_ - tail_);
}

size_t ByteQueue::Read(char* into, size_t size) {
  const size_t n = std::min(size, this->size());
  if (n == 0) return 0;
  std::memcpy(into, block_.get() + head_, n);
  head_ += n;
  if (empty()) Clear();
  return n;
}

void ByteQueue::Clear() {
  block_.reset();
  capacity_ = head_ = tail_ = 0;
}

namespace {

ByteQueue& QueueOf(BIO* bio) {
  return *static_cast<ByteQueue*>(BIO_get_data(bio));
}

int QueueWrite(BIO* bio, const char* data, size_t size, size_t* written) {
  BIO_clear_retry_flags(bio);
  QueueOf(bio).Append(std::string_view(data, size));
  *written = size;
  return 1;
}

int QueueRead(BIO* bio, char* into, size_t size, size_t* read) {
  BIO_clear_retry_flags(bio);
  *read = QueueOf(bio).Read(into, size);
  if (*read > 0) return 1;
  BIO_set_retry_read(bio);
  return 0;
}

long QueueCtrl(BIO* bio, int command, long /*number*/, void* /*pointer*/) {
  switch (command) {
    case BIO_CTRL_PENDING: {
      const size_t size = QueueOf(bio).size();
      return static_cast<long>(
          std::min<size_t>(size, std::numeric_limits<long>::max()));
    }
    case BIO_CTRL_WPENDING:
      return 0;
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;
  }
}

const BIO_METHOD* QueueMethod() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice queue");
    BIO_meth_set_write_ex(m, QueueWrite);
    BIO_meth_set_read_ex(m, QueueRead);
    BIO_meth_set_ctrl(m, QueueCtrl);
    return m;
  }();
  return method;
}

}  // namespace

BIO* NewQueueBio(ByteQueue* queue) {
  BIO* bio = BIO_new(QueueMethod());
  if (bio == nullptr) return nullptr;
  BIO_set_data(bio, queue);
  BIO_set_init(bio, 1);
  return bio;
}

}  // namespace sluice::tls_internal
