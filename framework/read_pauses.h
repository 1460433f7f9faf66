#ifndef SLUICE_FRAMEWORK_READ_PAUSES_H_
#define SLUICE_FRAMEWORK_READ_PAUSES_H_

#include <cstdint>

#include "framework/transport.h"

namespace sluice {

// The set of reasons a transport is not reading (see ReadPause). Add and
// Remove say whether the set changed between empty and non-empty, the only
// edges a transport acts on.
class ReadPauses {
 public:
  // True if this made the set non-empty.
  bool Add(ReadPause reason) {
    const bool was_empty = bits_ == 0;
    bits_ |= static_cast<uint32_t>(reason);
    return was_empty;
  }
  // True if this emptied the set.
  bool Remove(ReadPause reason) {
    if (!Has(reason)) return false;
    bits_ &= ~static_cast<uint32_t>(reason);
    return bits_ == 0;
  }
  bool Has(ReadPause reason) const {
    return (bits_ & static_cast<uint32_t>(reason)) != 0;
  }
  bool empty() const { return bits_ == 0; }

 private:
  uint32_t bits_ = 0;
};

}  // namespace sluice

#endif  // SLUICE_FRAMEWORK_READ_PAUSES_H_
