// oneDNN matmul with a bounded primitive cache, and dnnl_sgemm (see onednn.h). Compiled to
// nothing without QIUSUO_ONEDNN.
#ifdef QIUSUO_ONEDNN
#include "qiusuo/kernels/onednn.h"

#include <omp.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "qiusuo/core/buffer.h"

namespace qs::onednn {
namespace {
using dt = dnnl::memory::data_type;

struct Key {
  bool bf16, ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  uint32_t alpha, beta;  // bit patterns
  int threads;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(uint64_t(k.bf16) | uint64_t(k.ta) << 1 | uint64_t(k.tb) << 2 | uint64_t(k.threads) << 3);
    for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc}) mix(uint64_t(v));
    mix(uint64_t(k.alpha) << 32 | k.beta);
    return size_t(h);
  }
};

struct Entry {
  bool ok = false;
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, scratch;
  uint64_t last_use = 0;
};

const dnnl::engine& engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

class Cache {
 public:
  std::shared_ptr<Entry> get(const Key& key) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = map_.find(key);
      if (it != map_.end()) {
        ++hits_;
        it->second->last_use = ++clock_;
        return it->second;
      }
      ++misses_;
    }
    auto e = create(key);  // outside the lock: creation is slow
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.size() >= kCacheCapacity) evict_oldest();
    e->last_use = ++clock_;
    map_.emplace(key, e);  // a racing thread may have inserted it first: keep theirs
    return e;
  }
  CacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {map_.size(), hits_, misses_};
  }

 private:
  static std::shared_ptr<Entry> create(const Key& k) {
    auto e = std::make_shared<Entry>();
    const dt t = k.bf16 ? dt::bf16 : dt::f32;
    using dims = dnnl::memory::dims;
    e->a = dnnl::memory::desc({k.M, k.K}, t, k.ta ? dims{1, k.lda} : dims{k.lda, 1});
    e->b = dnnl::memory::desc({k.K, k.N}, t, k.tb ? dims{1, k.ldb} : dims{k.ldb, 1});
    e->c = dnnl::memory::desc({k.M, k.N}, dt::f32, dims{k.ldc, 1});
    float alpha, beta;
    std::memcpy(&alpha, &k.alpha, 4);
    std::memcpy(&beta, &k.beta, 4);
    try {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
      if (beta != 0.0f) {
        dnnl::post_ops po;
        po.append_sum(beta);
        attr.set_post_ops(po);
      }
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(e->a, e->b, e->c), attr, engine());
      // oneDNN's reference implementations ("ref:any", e.g. BF16 on CPUs without AVX-512)
      // are far slower than the own blocked kernel: decline them.
      const char* impl = pd.impl_info_str();
      if (std::strncmp(impl, "ref", 3) == 0) return e;
      e->scratch = pd.scratchpad_desc();
      e->prim = dnnl::matmul(pd);
      e->ok = true;
    } catch (const dnnl::error&) {
      e->ok = false;  // remembered: no retry for this key
    }
    return e;
  }
  void evict_oldest() {
    auto oldest = map_.begin();
    for (auto it = map_.begin(); it != map_.end(); ++it)
      if (it->second->last_use < oldest->second->last_use) oldest = it;
    map_.erase(oldest);
  }

  std::mutex mu_;
  std::unordered_map<Key, std::shared_ptr<Entry>, KeyHash> map_;
  uint64_t clock_ = 0;
  size_t hits_ = 0, misses_ = 0;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: usable from other static destructors
  return *c;
}
}  // namespace

bool matmul(bool bf16, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
            const void* A, int64_t lda, const void* B, int64_t ldb, float beta, float* C,
            int64_t ldc) {
  Key key{bf16, trans_a, trans_b, M, N, K, lda, ldb, ldc, 0, 0, omp_get_max_threads()};
  std::memcpy(&key.alpha, &alpha, 4);
  std::memcpy(&key.beta, &beta, 4);
  const std::shared_ptr<Entry> e = cache().get(key);
  if (!e->ok) return false;

  thread_local dnnl::stream stream(engine());
  thread_local Buffer<uint8_t> scratch;
  const size_t sbytes = e->scratch.get_size();
  scratch.reserve(sbytes);
  const dnnl::engine& eng = engine();
  dnnl::memory am(e->a, eng, const_cast<void*>(A));
  dnnl::memory bm(e->b, eng, const_cast<void*>(B));
  dnnl::memory cm(e->c, eng, C);
  dnnl::memory sm(e->scratch, eng, sbytes ? scratch.data() : nullptr);
  e->prim.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm},
                           {DNNL_ARG_SCRATCHPAD, sm}});
  stream.wait();
  return true;
}

bool sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  return dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta,
                    C, ldc) == dnnl_success;
}

CacheStats cache_stats() { return cache().stats(); }

}  // namespace qs::onednn
#endif  // QIUSUO_ONEDNN
