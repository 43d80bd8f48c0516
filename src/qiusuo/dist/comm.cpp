#include "qiusuo/dist/comm.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "qiusuo/core/error.h"
#include "qiusuo/dist/mpi_api.h"

namespace qs {

// ---- collectives built on the primitives ---------------------------------------------------

namespace {
// Scratch bound of one ordered allreduce slice (elements): the sum goes in slices of this size
// (16 MB of F32: a data-parallel gradient bucket is one slice; every slice is two collectives,
// and on a busy host each collective waits for the peers to be scheduled).
constexpr int64_t kSlice = int64_t(1) << 22;
}  // namespace

template <typename T>
void Comm::ordered_sum(std::span<T> x) {
  const int N = size(), me = rank();
  if (N == 1 || x.empty()) return;
  const size_t NN = static_cast<size_t>(N);
  std::vector<int64_t> sc(NN), sd(NN), rc(NN), rd(NN);
  std::vector<T> scratch;
  for (int64_t off = 0; off < int64_t(x.size()); off += kSlice) {
    const int64_t m = std::min<int64_t>(kSlice, int64_t(x.size()) - off);
    T* p = x.data() + off;
    const int64_t b = m * me / N, len = m * (me + 1) / N - b;
    for (int r = 0; r < N; ++r) {
      sd[size_t(r)] = m * r / N;
      sc[size_t(r)] = m * (r + 1) / N - sd[size_t(r)];
      rc[size_t(r)] = len;
      rd[size_t(r)] = len * r;
    }
    scratch.resize(size_t(len * N));
    alltoallv(p, sc, sd, scratch.data(), rc, rd, sizeof(T));
    // Rank order: ((x_0 + x_1) + x_2) + ...
    T* out = p + b;
    std::copy_n(scratch.data(), len, out);
    for (int r = 1; r < N; ++r) {
      const T* s = scratch.data() + int64_t(r) * len;
      for (int64_t i = 0; i < len; ++i) out[i] += s[i];
    }
    allgatherv(nullptr, len, p, sc, sd, sizeof(T));
  }
}

void Comm::allreduce_sum(std::span<float> x) { ordered_sum(x); }
void Comm::allreduce_sum(std::span<double> x) { ordered_sum(x); }

void Comm::reduce_scatter_sum(std::span<const float> x, std::span<float> out) {
  const int N = size(), me = rank();
  const int64_t n = int64_t(x.size()), b = shard_begin(n, me), len = shard_begin(n, me + 1) - b;
  QS_CHECK(int64_t(out.size()) == len, "reduce_scatter_sum: the shard of rank ", me, " holds ", len,
           " elements, the output ", out.size());
  if (N == 1) {
    std::copy(x.begin(), x.end(), out.begin());
    return;
  }
  const size_t NN = static_cast<size_t>(N);
  std::vector<int64_t> sc(NN), sd(NN), rc(NN), rd(NN);
  for (int r = 0; r < N; ++r) {
    sd[size_t(r)] = shard_begin(n, r);
    sc[size_t(r)] = shard_begin(n, r + 1) - sd[size_t(r)];
    rc[size_t(r)] = len;
    rd[size_t(r)] = len * r;
  }
  std::vector<float> scratch(size_t(len * N));
  alltoallv(x.data(), sc, sd, scratch.data(), rc, rd, sizeof(float));
  std::copy_n(scratch.data(), len, out.data());
  for (int r = 1; r < N; ++r) {
    const float* s = scratch.data() + int64_t(r) * len;
    for (int64_t i = 0; i < len; ++i) out[size_t(i)] += s[i];
  }
}

void Comm::gather_shards_bytes(void* data, int64_t n, size_t elem) {
  const int N = size();
  if (N == 1) return;
  std::vector<int64_t> c(static_cast<size_t>(N)), d(static_cast<size_t>(N));
  for (int r = 0; r < N; ++r) {
    d[size_t(r)] = shard_begin(n, r);
    c[size_t(r)] = shard_begin(n, r + 1) - d[size_t(r)];
  }
  allgatherv(nullptr, c[size_t(rank())], data, c, d, elem);
}

void Comm::allgather_shards(std::span<float> x) { gather_shards_bytes(x.data(), int64_t(x.size()), sizeof(float)); }

void Comm::alltoall(std::span<const int64_t> send, std::span<int64_t> recv) {
  const int N = size();
  QS_CHECK(int64_t(send.size()) == N && int64_t(recv.size()) == N, "alltoall: one value per rank");
  std::vector<int64_t> ones(static_cast<size_t>(N), 1), displs(static_cast<size_t>(N));
  for (int r = 0; r < N; ++r) displs[size_t(r)] = r;
  alltoallv(send.data(), ones, displs, recv.data(), ones, displs, sizeof(int64_t));
}

void Comm::broadcast_string(std::string& s, int root) {
  int64_t n = int64_t(s.size());
  broadcast(&n, sizeof n, root);
  s.resize(size_t(n));
  if (n) broadcast(s.data(), size_t(n), root);
}

// ---- this process alone -----------------------------------------------------------------------

void SingleComm::alltoallv(const void* send, std::span<const int64_t> sc, std::span<const int64_t> sd, void* recv,
                           std::span<const int64_t> rc, std::span<const int64_t> rd, size_t unit) {
  QS_ASSERT(sc[0] == rc[0]);
  if (sc[0] > 0)
    std::memmove(static_cast<char*>(recv) + rd[0] * int64_t(unit), static_cast<const char*>(send) + sd[0] * int64_t(unit),
                 size_t(sc[0]) * unit);
}

void SingleComm::allgatherv(const void* send, int64_t count, void* recv, std::span<const int64_t>,
                            std::span<const int64_t> displs, size_t unit) {
  if (send && count > 0)
    std::memmove(static_cast<char*>(recv) + displs[0] * int64_t(unit), send, size_t(count) * unit);
}

void SingleComm::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

// ---- MPI through the plugin -----------------------------------------------------------------

namespace {

const QsMpiApi* g_api = nullptr;
int g_thread_level = 0;
std::string g_version;

// Seconds a collective may wait for the other ranks before the run is aborted
// (QIUSUO_DIST_TIMEOUT; a dead rank is normally noticed by mpirun at once, this catches hangs).
double collective_timeout_s() {
  static const double t = [] {
    const char* e = std::getenv("QIUSUO_DIST_TIMEOUT");
    const double v = e ? std::atof(e) : 0.0;
    return v > 0 ? v : 1800.0;
  }();
  return t;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class MpiComm;

// Watches the collectives in flight: one that waits longer than the timeout aborts the run with
// a message naming it.
class Watchdog {
 public:
  static Watchdog& get() {
    static Watchdog w;
    return w;
  }
  void add(MpiComm* c) {
    std::lock_guard<std::mutex> lk(mu_);
    comms_.push_back(c);
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  }
  void remove(MpiComm* c) {
    std::lock_guard<std::mutex> lk(mu_);
    comms_.erase(std::remove(comms_.begin(), comms_.end(), c), comms_.end());
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop();
  std::mutex mu_;
  std::vector<MpiComm*> comms_;
  std::thread thread_;
  bool stop_ = false;
};

class MpiComm final : public Comm {
 public:
  MpiComm(int handle, int rank, int size) : h_(handle), rank_(rank), size_(size) { Watchdog::get().add(this); }
  ~MpiComm() override { Watchdog::get().remove(this); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool is_mpi() const override { return true; }

  void barrier() override { check("MPI_Barrier", guard([&] { return g_api->barrier(h_); })); }
  void broadcast(void* data, size_t bytes, int root) override {
    check("MPI_Bcast", guard([&] { return g_api->bcast(h_, data, int64_t(bytes), root); }));
  }
  void alltoallv(const void* send, std::span<const int64_t> sc, std::span<const int64_t> sd, void* recv,
                 std::span<const int64_t> rc, std::span<const int64_t> rd, size_t unit) override {
    QS_ASSERT(int(sc.size()) == size_ && int(sd.size()) == size_ && int(rc.size()) == size_ && int(rd.size()) == size_);
    check("MPI_Alltoallv", guard([&] {
            return g_api->alltoallv(h_, send, sc.data(), sd.data(), recv, rc.data(), rd.data(), int64_t(unit));
          }));
  }
  void allgatherv(const void* send, int64_t count, void* recv, std::span<const int64_t> counts,
                  std::span<const int64_t> displs, size_t unit) override {
    check("MPI_Allgatherv", guard([&] {
            return g_api->allgatherv(h_, send, count, recv, counts.data(), displs.data(), int64_t(unit));
          }));
  }
  void allreduce(std::span<int64_t> v, ReduceOp op) override {
    const int o = op == ReduceOp::Sum ? 0 : op == ReduceOp::Max ? 1 : 2;
    check("MPI_Allreduce", guard([&] { return g_api->allreduce_i64(h_, v.data(), int64_t(v.size()), o); }));
  }
  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    g_api->abort(code);
    std::_Exit(code);
  }
  std::unique_ptr<Comm> duplicate() override {
    int d = 0;
    check("MPI_Comm_dup", g_api->dup(h_, &d));
    return std::make_unique<MpiComm>(d, rank_, size_);
  }

  // When the collective in flight started (0: none) and its name, for the watchdog.
  std::atomic<double> since{0};
  std::atomic<const char*> what{nullptr};

 private:
  template <typename F>
  int guard(F&& f) {
    since.store(now_s());
    const int rc = f();
    since.store(0);
    return rc;
  }
  void check(const char* name, int rc) {
    if (rc == 0) return;
    char buf[512];
    g_api->error_string(rc, buf, sizeof buf);
    fail(ErrorKind::Io, name, " failed on rank ", rank_, " of ", size_, ": ", buf);
  }
  int h_, rank_, size_;
};

void Watchdog::loop() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) return;
    const double t = now_s(), limit = collective_timeout_s();
    for (MpiComm* c : comms_) {
      const double s = c->since.load();
      if (s > 0 && t - s > limit) {
        std::fprintf(stderr,
                     "qiusuo: rank %d of %d: a collective has waited %.0f s for the other ranks (limit "
                     "QIUSUO_DIST_TIMEOUT = %.0f s): another rank is stuck or gone; aborting the run\n",
                     c->rank(), c->size(), t - s, limit);
        std::fflush(stderr);
        g_api->abort(3);
        std::_Exit(3);
      }
    }
  }
}

std::unique_ptr<Comm> g_world;
std::once_flag g_once;
bool g_finalized = false;

int env_int(const char* name, int fallback) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : fallback;
}

// mpirun stops the surviving ranks with SIGTERM when one of them dies: say so before going.
int g_sig_rank = 0, g_sig_size = 1;
void on_sigterm(int) {
  char msg[200];
  const int n = std::snprintf(msg, sizeof msg,
                              "qiusuo: rank %d of %d: stopped by SIGTERM (mpirun ends the run when another rank "
                              "fails; checkpoints are written atomically, the last complete one is intact)\n",
                              g_sig_rank, g_sig_size);
  if (n > 0) {
    ssize_t w = write(2, msg, size_t(n));
    (void)w;
  }
  std::signal(SIGTERM, SIG_DFL);
  std::raise(SIGTERM);
}

std::string plugin_dir_of_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string p(buf, size_t(n));
  return p.substr(0, p.rfind('/'));
}

const QsMpiApi* load_plugin(std::string& tried) {
  std::vector<std::string> paths;
  const char* env = std::getenv("QIUSUO_MPI_PLUGIN");  // set: the only place looked at
  if (env && *env) paths.push_back(env);
  const std::string exe = env && *env ? std::string() : plugin_dir_of_exe();
  if (!exe.empty()) {
    paths.push_back(exe + "/libqiusuo_mpi.so");
    paths.push_back(exe + "/../lib/qiusuo/libqiusuo_mpi.so");
  }
#ifdef QS_MPI_PLUGIN_DIR
  if (!env || !*env) paths.push_back(std::string(QS_MPI_PLUGIN_DIR) + "/libqiusuo_mpi.so");
#endif
  for (const std::string& p : paths) {
    if (access(p.c_str(), R_OK) != 0) {
      tried += "\n  " + p + ": not found";
      continue;
    }
    // RTLD_GLOBAL: Open MPI's own components resolve libmpi's symbols.
    void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
      tried += "\n  " + p + ": " + dlerror();
      continue;
    }
    auto fn = reinterpret_cast<QsMpiApiFn>(dlsym(h, "qs_mpi_api"));
    const QsMpiApi* api = fn ? fn() : nullptr;
    if (!api || api->abi != QS_MPI_ABI) {
      tried += "\n  " + p + ": not a qiusuo MPI plugin of this version";
      continue;
    }
    return api;
  }
  return nullptr;
}

void do_init() {
  const Launch l = detect_launch();
  if (!l.mpirun) {
    g_world = std::make_unique<SingleComm>();
    return;
  }
#ifndef QIUSUO_MPI
  if (l.env_size > 1)
    fail(ErrorKind::Unsupported, "this qiusuo was built without MPI (QIUSUO_MPI=OFF) but mpirun started it as rank ",
         l.env_rank, " of ", l.env_size, ": rebuild with -DQIUSUO_MPI=ON (Debian: libopenmpi-dev), or run it without mpirun");
  g_world = std::make_unique<SingleComm>();
  return;
#else
  std::string tried;
  g_api = load_plugin(tried);
  if (!g_api) {
    if (l.env_size <= 1) {  // mpirun -np 1 with no MPI at hand: one process is what was asked for
      g_world = std::make_unique<SingleComm>();
      return;
    }
    fail(ErrorKind::NotFound, "mpirun started this process as rank ", l.env_rank, " of ", l.env_size,
         " but the MPI plugin libqiusuo_mpi.so could not be loaded (install Open MPI: libopenmpi3; or set "
         "QIUSUO_MPI_PLUGIN to the plugin's path). Tried:",
         tried);
  }
  int rank = 0, size = 1;
  const int rc = g_api->init(&rank, &size, &g_thread_level);
  if (rc != 0) {
    char buf[512];
    g_api->error_string(rc, buf, sizeof buf);
    fail(ErrorKind::Io, "MPI_Init_thread failed: ", buf);
  }
  char ver[256];
  g_api->library_version(ver, sizeof ver);
  g_version = ver;
  if (const size_t nl = g_version.find_first_of("\n,"); nl != std::string::npos) g_version.resize(nl);
  g_world = std::make_unique<MpiComm>(0, rank, size);
  if (size > 1) {
    g_sig_rank = rank;
    g_sig_size = size;
    std::signal(SIGTERM, on_sigterm);
  }
  std::atexit([] { finalize_world(); });
#endif
}

}  // namespace

Launch detect_launch() {
  Launch l;
  // Open MPI's launcher (mpirun / orterun / prterun) sets these in every rank's environment.
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) {
    l.mpirun = true;
    l.env_size = env_int("OMPI_COMM_WORLD_SIZE", 1);
    l.env_rank = env_int("OMPI_COMM_WORLD_RANK", 0);
  } else if (std::getenv("PMIX_RANK") && std::getenv("PMIX_SIZE")) {
    l.mpirun = true;
    l.env_size = env_int("PMIX_SIZE", 1);
    l.env_rank = env_int("PMIX_RANK", 0);
  } else if (std::getenv("PMI_SIZE") && std::getenv("PMI_RANK")) {  // MPICH's Hydra
    l.mpirun = true;
    l.env_size = env_int("PMI_SIZE", 1);
    l.env_rank = env_int("PMI_RANK", 0);
  }
  return l;
}

void init_world() {
  std::exception_ptr err;
  std::call_once(g_once, [&] {
    try {
      do_init();
    } catch (...) {
      g_world = std::make_unique<SingleComm>();
      err = std::current_exception();
    }
  });
  if (err) std::rethrow_exception(err);
}

Comm& world() {
  if (!g_world) init_world();
  return *g_world;
}

void finalize_world() {
  if (g_finalized || !g_api) return;
  g_finalized = true;
  Watchdog::get().stop();
  g_world = std::make_unique<SingleComm>();  // nothing runs collectives after this
  g_api->finalize();
}

std::string world_description() {
  Comm& w = world();
  if (!w.is_mpi()) return "1 process";
  return str("rank ", w.rank(), " of ", w.size(), " (", g_version, ")");
}

bool mpi_thread_multiple() { return g_api && g_thread_level >= 3; }

bool mpi_available() {
#ifdef QIUSUO_MPI
  std::string tried;
  return g_api || load_plugin(tried);
#else
  return false;
#endif
}

}  // namespace qs
