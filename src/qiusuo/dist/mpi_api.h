// The C interface between qiusuo and its MPI plugin (libqiusuo_mpi.so, built from
// mpi_plugin.cpp against Debian's Open MPI when QIUSUO_MPI=ON). qiusuo itself links no MPI
// library: a process started by mpirun loads the plugin with dlopen (dist/comm.cpp), so a
// binary built with MPI runs without any MPI runtime when it is not started by mpirun.
//
// Every function returns 0 or an MPI error code (error_string() turns it into text).
// Communicators are small integers: 0 is the plugin's duplicate of MPI_COMM_WORLD, dup()
// gives others (a communication thread gets its own, so that its collectives never match
// those of the main thread). Counts are in units of `unit_bytes` bytes (a contiguous MPI
// datatype), displacements in the same units.
#pragma once
#include <stdint.h>

#define QS_MPI_ABI 1

extern "C" {

struct QsMpiApi {
  int abi;  // QS_MPI_ABI
  // MPI_Init_thread(MPI_THREAD_MULTIPLE) with errors returned, not fatal. thread_level: the
  // level provided (MPI_THREAD_* values mapped to 0 single .. 3 multiple).
  int (*init)(int* rank, int* size, int* thread_level);
  int (*finalize)(void);
  int (*dup)(int comm, int* out);
  int (*barrier)(int comm);
  int (*bcast)(int comm, void* buf, int64_t bytes, int root);
  int (*alltoallv)(int comm, const void* send, const int64_t* send_counts, const int64_t* send_displs, void* recv,
                   const int64_t* recv_counts, const int64_t* recv_displs, int64_t unit_bytes);
  // send == NULL: in place (this rank's rows already sit at recv + recv_displs[rank]).
  int (*allgatherv)(int comm, const void* send, int64_t send_count, void* recv, const int64_t* recv_counts,
                    const int64_t* recv_displs, int64_t unit_bytes);
  // In place over int64 values: op 0 = sum, 1 = max, 2 = min (exact in any order).
  int (*allreduce_i64)(int comm, int64_t* buf, int64_t n, int op);
  void (*abort)(int code);
  // Text of an error code into buf (NUL-terminated), and the library's version string.
  void (*error_string)(int code, char* buf, int len);
  void (*library_version)(char* buf, int len);
};

// The plugin's one exported symbol.
const QsMpiApi* qs_mpi_api(void);
typedef const QsMpiApi* (*QsMpiApiFn)(void);

}  // extern "C"
