// libqiusuo_mpi.so: the MPI calls qiusuo makes, behind the C table of mpi_api.h. Built only
// with QIUSUO_MPI=ON, against the system's MPI (Debian: libopenmpi-dev); loaded by
// dist/comm.cpp when the process was started by mpirun. Nothing else in qiusuo includes mpi.h.
#include <mpi.h>

#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "qiusuo/dist/mpi_api.h"

namespace {

std::mutex g_mu;
std::vector<MPI_Comm> g_comms;           // handle -> communicator (0: dup of MPI_COMM_WORLD)
std::map<int64_t, MPI_Datatype> g_types;  // unit_bytes -> contiguous datatype

MPI_Comm comm_of(int h) {
  std::lock_guard<std::mutex> lk(g_mu);
  return h >= 0 && size_t(h) < g_comms.size() ? g_comms[size_t(h)] : MPI_COMM_NULL;
}

int type_of(int64_t unit_bytes, MPI_Datatype* t) {
  if (unit_bytes <= 0 || unit_bytes > INT_MAX) return MPI_ERR_TYPE;
  std::lock_guard<std::mutex> lk(g_mu);
  auto it = g_types.find(unit_bytes);
  if (it != g_types.end()) {
    *t = it->second;
    return MPI_SUCCESS;
  }
  MPI_Datatype nt;
  int rc = MPI_Type_contiguous(int(unit_bytes), MPI_BYTE, &nt);
  if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&nt);
  if (rc != MPI_SUCCESS) return rc;
  g_types[unit_bytes] = nt;
  *t = nt;
  return MPI_SUCCESS;
}

// int64 counts/displacements -> int (MPI-3 interfaces); MPI_ERR_COUNT when one does not fit.
int to_int(const int64_t* v, int n, std::vector<int>& out) {
  out.resize(size_t(n));
  for (int i = 0; i < n; ++i) {
    if (v[i] < 0 || v[i] > INT_MAX) return MPI_ERR_COUNT;
    out[size_t(i)] = int(v[i]);
  }
  return MPI_SUCCESS;
}

int comm_size(MPI_Comm c) {
  int n = 0;
  MPI_Comm_size(c, &n);
  return n;
}

int p_init(int* rank, int* size, int* level) {
  int flag = 0;
  MPI_Initialized(&flag);
  int provided = MPI_THREAD_SINGLE;
  if (!flag) {
    int argc = 0;
    char** argv = nullptr;
    const int rc = MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) return rc;
  } else {
    MPI_Query_thread(&provided);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm w;
  const int rc = MPI_Comm_dup(MPI_COMM_WORLD, &w);
  if (rc != MPI_SUCCESS) return rc;
  MPI_Comm_set_errhandler(w, MPI_ERRORS_RETURN);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    g_comms.assign(1, w);
  }
  MPI_Comm_rank(w, rank);
  MPI_Comm_size(w, size);
  *level = provided == MPI_THREAD_MULTIPLE ? 3 : provided == MPI_THREAD_SERIALIZED ? 2 : provided == MPI_THREAD_FUNNELED ? 1 : 0;
  return MPI_SUCCESS;
}

int p_finalize() {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    for (auto& [k, t] : g_types) MPI_Type_free(&t);
    g_types.clear();
    for (MPI_Comm& c : g_comms)
      if (c != MPI_COMM_NULL) MPI_Comm_free(&c);
    g_comms.clear();
  }
  int fin = 0;
  MPI_Finalized(&fin);
  return fin ? MPI_SUCCESS : MPI_Finalize();
}

int p_dup(int h, int* out) {
  MPI_Comm c = comm_of(h), d;
  if (c == MPI_COMM_NULL) return MPI_ERR_COMM;
  const int rc = MPI_Comm_dup(c, &d);
  if (rc != MPI_SUCCESS) return rc;
  MPI_Comm_set_errhandler(d, MPI_ERRORS_RETURN);
  std::lock_guard<std::mutex> lk(g_mu);
  g_comms.push_back(d);
  *out = int(g_comms.size() - 1);
  return MPI_SUCCESS;
}

int p_barrier(int h) {
  MPI_Comm c = comm_of(h);
  return c == MPI_COMM_NULL ? MPI_ERR_COMM : MPI_Barrier(c);
}

int p_bcast(int h, void* buf, int64_t bytes, int root) {
  MPI_Comm c = comm_of(h);
  if (c == MPI_COMM_NULL) return MPI_ERR_COMM;
  // In pieces of at most 1 GiB (int counts).
  char* p = static_cast<char*>(buf);
  const int64_t piece = int64_t(1) << 30;
  for (int64_t off = 0; off < bytes; off += piece) {
    const int n = int(bytes - off < piece ? bytes - off : piece);
    const int rc = MPI_Bcast(p + off, n, MPI_BYTE, root, c);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

int p_alltoallv(int h, const void* send, const int64_t* sc, const int64_t* sd, void* recv, const int64_t* rc_,
                const int64_t* rd, int64_t unit) {
  MPI_Comm c = comm_of(h);
  if (c == MPI_COMM_NULL) return MPI_ERR_COMM;
  MPI_Datatype t;
  int rc = type_of(unit, &t);
  if (rc != MPI_SUCCESS) return rc;
  const int n = comm_size(c);
  std::vector<int> a, b, x, y;
  if ((rc = to_int(sc, n, a)) != MPI_SUCCESS || (rc = to_int(sd, n, b)) != MPI_SUCCESS ||
      (rc = to_int(rc_, n, x)) != MPI_SUCCESS || (rc = to_int(rd, n, y)) != MPI_SUCCESS)
    return rc;
  return MPI_Alltoallv(send, a.data(), b.data(), t, recv, x.data(), y.data(), t, c);
}

int p_allgatherv(int h, const void* send, int64_t scount, void* recv, const int64_t* rcounts, const int64_t* rdispls,
                 int64_t unit) {
  MPI_Comm c = comm_of(h);
  if (c == MPI_COMM_NULL) return MPI_ERR_COMM;
  MPI_Datatype t;
  int rc = type_of(unit, &t);
  if (rc != MPI_SUCCESS) return rc;
  if (scount < 0 || scount > INT_MAX) return MPI_ERR_COUNT;
  const int n = comm_size(c);
  std::vector<int> x, y;
  if ((rc = to_int(rcounts, n, x)) != MPI_SUCCESS || (rc = to_int(rdispls, n, y)) != MPI_SUCCESS) return rc;
  if (!send) return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv, x.data(), y.data(), t, c);
  return MPI_Allgatherv(send, int(scount), t, recv, x.data(), y.data(), t, c);
}

int p_allreduce_i64(int h, int64_t* buf, int64_t n, int op) {
  MPI_Comm c = comm_of(h);
  if (c == MPI_COMM_NULL) return MPI_ERR_COMM;
  if (n < 0 || n > INT_MAX) return MPI_ERR_COUNT;
  const MPI_Op o = op == 1 ? MPI_MAX : op == 2 ? MPI_MIN : MPI_SUM;
  return MPI_Allreduce(MPI_IN_PLACE, buf, int(n), MPI_INT64_T, o, c);
}

void p_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void p_error_string(int code, char* buf, int len) {
  char s[MPI_MAX_ERROR_STRING];
  int n = 0;
  if (MPI_Error_string(code, s, &n) != MPI_SUCCESS) std::strcpy(s, "unknown MPI error");
  std::strncpy(buf, s, size_t(len - 1));
  buf[len - 1] = 0;
}

void p_library_version(char* buf, int len) {
  char s[MPI_MAX_LIBRARY_VERSION_STRING];
  int n = 0;
  MPI_Get_library_version(s, &n);
  std::strncpy(buf, s, size_t(len - 1));
  buf[len - 1] = 0;
}

const QsMpiApi kApi = {QS_MPI_ABI,     p_init,     p_finalize,      p_dup,   p_barrier,       p_bcast,
                       p_alltoallv,    p_allgatherv, p_allreduce_i64, p_abort, p_error_string, p_library_version};

}  // namespace

extern "C" __attribute__((visibility("default"))) const QsMpiApi* qs_mpi_api(void) { return &kApi; }
