// Collectives among the processes of one run, behind a small interface: the MPI world when the
// command was started by `mpirun` (Open MPI, loaded as a plugin: dist/mpi_api.h), or this
// process alone. Data and expert parallelism (train/data_parallel.h, dist/expert_parallel.h)
// are written against Comm only.
//
// Every rank calls the collectives of one communicator in the same order (MPI's rule). The
// floating-point sums are computed in a fixed order that does not depend on the MPI library's
// algorithms or on timing: element i is reduced by one rank as ((x_0 + x_1) + x_2) + ... in
// rank order, and the result sent to everyone (a reduce-scatter by all-to-all, then an
// all-gather) — so every rank holds bitwise the same sum, and a rerun gives the same bits.
//
// Start-up (apps/main.cpp calls init_world() first): a process whose environment shows that
// mpirun started it (OMPI_COMM_WORLD_SIZE, or PMIX_RANK + PMIX_SIZE... of Open MPI's launcher)
// loads libqiusuo_mpi.so and calls MPI_Init_thread; any other process never touches an MPI
// library (a binary built with MPI needs no MPI runtime then). A binary built without MPI,
// or one that cannot load the plugin, refuses to run as one of several ranks with a clear
// error — it must never run N independent copies that look like one distributed run.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace qs {

enum class ReduceOp { Sum, Max, Min };

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual bool is_mpi() const = 0;  // an MPI communicator (possibly of size 1)

  // ---- primitives (the MPI plugin implements these) ----
  virtual void barrier() = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Rows of unit_bytes bytes: send_counts[r] rows from send + send_displs[r] rows go to rank r;
  // recv_counts[r] rows from rank r land at recv + recv_displs[r] rows.
  virtual void alltoallv(const void* send, std::span<const int64_t> send_counts,
                         std::span<const int64_t> send_displs, void* recv, std::span<const int64_t> recv_counts,
                         std::span<const int64_t> recv_displs, size_t unit_bytes) = 0;
  // Every rank's `count` rows, rank r's at recv + displs[r] rows (counts[r] == rank r's count);
  // send == nullptr: in place (this rank's rows already sit at recv + displs[rank()]).
  virtual void allgatherv(const void* send, int64_t count, void* recv, std::span<const int64_t> counts,
                          std::span<const int64_t> displs, size_t unit_bytes) = 0;
  virtual void allreduce(std::span<int64_t> values, ReduceOp op) = 0;  // exact, in place
  // Ends every process of the run (MPI_Abort) with `code`; this process exits.
  [[noreturn]] virtual void abort(int code) = 0;
  // A communicator over the same ranks whose collectives never match this one's (for a
  // communication thread).
  virtual std::unique_ptr<Comm> duplicate() = 0;

  // ---- built on the primitives ----
  // In-place sums in rank order (above); identical on every rank.
  void allreduce_sum(std::span<float> x);
  void allreduce_sum(std::span<double> x);
  // Reduce-scatter in rank order: `x` (the full buffer, n elements, on every rank) is summed over
  // the ranks; rank r receives the elements [shard_begin(n, r), shard_begin(n, r + 1)) of the
  // sum in `out`. Its inverse, allgather_shards, fills every rank's full buffer from the shards.
  void reduce_scatter_sum(std::span<const float> x, std::span<float> out);
  void allgather_shards(std::span<float> x);
  template <typename T>
  void allgather_shards_of(std::span<T> x) {
    gather_shards_bytes(x.data(), int64_t(x.size()), sizeof(T));
  }
  // Element range of rank r when n elements are split into size() contiguous shards.
  int64_t shard_begin(int64_t n, int r) const { return n * r / size(); }
  // One int64 per rank to every rank: recv[r] = what rank r put in send[rank()].
  void alltoall(std::span<const int64_t> send, std::span<int64_t> recv);
  void broadcast_string(std::string& s, int root);
  template <typename T>
  void broadcast_vector(std::vector<T>& v, int root) {
    int64_t n = int64_t(v.size());
    broadcast(&n, sizeof n, root);
    v.resize(size_t(n));
    if (n) broadcast(v.data(), size_t(n) * sizeof(T), root);
  }
  template <typename T>
  void broadcast_value(T& v, int root) {
    broadcast(&v, sizeof v, root);
  }

 private:
  template <typename T>
  void ordered_sum(std::span<T> x);
  void gather_shards_bytes(void* data, int64_t n, size_t elem);
};

// This process alone: rank 0 of 1; collectives copy.
class SingleComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  bool is_mpi() const override { return false; }
  void barrier() override {}
  void broadcast(void*, size_t, int) override {}
  void alltoallv(const void* send, std::span<const int64_t> send_counts, std::span<const int64_t> send_displs,
                 void* recv, std::span<const int64_t> recv_counts, std::span<const int64_t> recv_displs,
                 size_t unit_bytes) override;
  void allgatherv(const void* send, int64_t count, void* recv, std::span<const int64_t> counts,
                  std::span<const int64_t> displs, size_t unit_bytes) override;
  void allreduce(std::span<int64_t>, ReduceOp) override {}
  [[noreturn]] void abort(int code) override;
  std::unique_ptr<Comm> duplicate() override { return std::make_unique<SingleComm>(); }
};

// How this process was started.
struct Launch {
  bool mpirun = false;  // the environment names an MPI launcher
  int env_size = 1;     // ranks it says the run has
  int env_rank = 0;
};
Launch detect_launch();

// Sets up the world communicator (see the top of this file). Throws qs::Error when the process
// was started as one of several ranks but cannot join them. Idempotent.
void init_world();
// The world: MPI after init_world() under mpirun, else this process alone.
Comm& world();
// MPI_Finalize when MPI was initialized (at exit otherwise).
void finalize_world();
// One line saying how this process runs ("rank 0 of 2 (Open MPI v4.1.4 ...)" / "1 process").
std::string world_description();
// True when this binary can run under mpirun (built with QIUSUO_MPI and the plugin found).
bool mpi_available();
// True when MPI allows collectives from several threads at once (MPI_THREAD_MULTIPLE): a
// communication thread may then run beside the main thread's collectives.
bool mpi_thread_multiple();

}  // namespace qs
