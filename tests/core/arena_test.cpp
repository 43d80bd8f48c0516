// Arena: spans are aligned and disjoint while live; a Scope gives its allocations back (the next
// allocation reuses the same memory); reset() merges the chunks of a step into one of the
// step's peak, so the peak of a model step is one layer's scratch, not the sum over layers.
#include "qiusuo/core/arena.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace qs {
namespace {

TEST(Arena, ScopesReuseMemoryAndBoundThePeak) {
  Arena a;
  float* h = a.alloc(100);  // lives across the "layers"
  for (int i = 0; i < 100; ++i) h[i] = float(i);
  float* first = nullptr;
  for (int layer = 0; layer < 27; ++layer) {
    Arena::Scope s(a);
    float* x = a.alloc(1 << 20);  // more than the first chunk: a new chunk
    float* y = a.alloc(3000);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(x) % 64, 0u);
    EXPECT_TRUE(y >= x + (1 << 20) || y + 3000 <= x);
    x[0] = y[0] = 1.0f;
    if (layer == 0) first = x;
    else EXPECT_EQ(x, first) << "layer " << layer << " did not reuse the first layer's memory";
  }
  for (int i = 0; i < 100; ++i) ASSERT_EQ(h[i], float(i));
  // Peak: h plus one layer (each span rounded up to 16 floats), not 27 layers.
  EXPECT_EQ(a.peak_floats(), size_t(112 + (1 << 20) + 3008));
  a.reset();
  float* again = a.alloc(100);
  float* big = a.alloc((1 << 20) + 3000);  // fits the merged chunk: no new allocation needed
  EXPECT_EQ(big, again + 112);
}

TEST(Arena, RewindToAMarkInAnEarlierChunk) {
  Arena a;
  a.alloc(16);
  const Arena::Mark m = a.mark();
  float* p = a.alloc(1 << 18);  // second chunk
  a.alloc(1 << 19);             // third
  a.rewind(m);
  EXPECT_EQ(a.alloc(1 << 18), p);  // the kept second chunk
}

}  // namespace
}  // namespace qs
