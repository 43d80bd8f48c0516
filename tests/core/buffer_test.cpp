// HugePageArena: allocations are 64-byte aligned, disjoint and keep their contents while later
// ones are made; a slab starts at a 2 MiB boundary; an allocation larger than a slab gets a slab
// of its own; bytes() counts what was asked for.
#include "qiusuo/core/buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace qs {
namespace {

TEST(HugePageArena, AlignedDisjointAndKept) {
  constexpr size_t kSlab = size_t(4) << 20;
  HugePageArena a(kSlab);
  struct Piece {
    uint8_t* p;
    size_t n;
  };
  std::vector<Piece> pieces;
  const size_t sizes[] = {1, 63, 64, 65, 3000, size_t(1) << 20, 1408 * 2048, 5, kSlab + 12345, 77};
  size_t asked = 0;
  for (size_t n : sizes) {
    auto* p = static_cast<uint8_t*>(a.alloc(n));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << n;
    std::memset(p, int(pieces.size() + 1), n);
    pieces.push_back({p, n});
    asked += n;
  }
  EXPECT_EQ(a.bytes(), asked);
  // The first allocation opens the first slab: at a 2 MiB boundary.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pieces[0].p) % HugePageArena::kHuge, 0u);
  // The one larger than a slab has a slab of its own, also at a boundary.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pieces[8].p) % HugePageArena::kHuge, 0u);
  for (size_t i = 0; i < pieces.size(); ++i) {
    for (size_t j = i + 1; j < pieces.size(); ++j) {
      const bool disjoint = pieces[i].p + pieces[i].n <= pieces[j].p || pieces[j].p + pieces[j].n <= pieces[i].p;
      EXPECT_TRUE(disjoint) << "allocations " << i << " and " << j << " overlap";
    }
    for (size_t k = 0; k < pieces[i].n; k += 997) ASSERT_EQ(pieces[i].p[k], uint8_t(i + 1)) << "allocation " << i;
    ASSERT_EQ(pieces[i].p[pieces[i].n - 1], uint8_t(i + 1));
  }
  // Moving the arena keeps the memory where it is.
  HugePageArena b = std::move(a);
  EXPECT_EQ(b.bytes(), asked);
  EXPECT_EQ(pieces[6].p[0], uint8_t(7));
}

}  // namespace
}  // namespace qs
