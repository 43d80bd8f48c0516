// Running test workers under mpirun: `mpirun -np N` on loopback, as root where the tests run as
// root, oversubscribed (more ranks than cores is fine), one thread per rank.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>

#include <fstream>
#include <sstream>
#include "test_util.h"

namespace qs::testing_util {

// The mpirun command, or "" when none is installed (then the MPI tests skip, saying so).
inline std::string mpirun_path() {
  for (const char* p : {"/usr/bin/mpirun", "/usr/local/bin/mpirun", "/usr/bin/mpiexec"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

// Why the MPI tests cannot run here ("" when they can).
inline std::string mpi_skip_reason() {
#ifndef QIUSUO_MPI
  return "built without MPI (QIUSUO_MPI=OFF)";
#else
  if (mpirun_path().empty()) return "mpirun not installed (scripts/install-deps.sh installs openmpi-bin)";
  return "";
#endif
}

#define QS_REQUIRE_MPI()                                                  \
  do {                                                                    \
    const std::string why = ::qs::testing_util::mpi_skip_reason();        \
    if (!why.empty()) GTEST_SKIP() << "no MPI tests: " << why;            \
  } while (0)

// "mpirun -np N <flags>" ready for a command to follow. One thread per rank; loopback only.
// This test binary's path (mpirun starts it again as the ranks' workers).
inline std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return std::string(buf, size_t(std::max<ssize_t>(n, 0)));
}

inline std::string mpirun_cmd(int np, const std::string& extra_env = "") {
  std::string c = mpirun_path() + " -np " + std::to_string(np) +
                  " --oversubscribe --bind-to none --mca btl self,vader,tcp --mca btl_tcp_if_include lo"
                  " --mca oob_tcp_if_include lo --mca btl_vader_single_copy_mechanism none"
                  " -x OMP_NUM_THREADS=1 -x GOMP_SPINCOUNT=2000 -x QIUSUO_DIST_TIMEOUT=120";
  if (getuid() == 0) c += " --allow-run-as-root";
  if (!extra_env.empty()) c += " " + extra_env;
  return c + " ";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RunResult {
  int code = -1;
  double seconds = 0;
  std::string out, err;
};

// Runs a shell command capturing exit code, stdout and stderr, killed after timeout_s.
inline RunResult run_shell(const std::string& cmd, int timeout_s = 300) {
  TempDir d("mpi");
  const std::string full = "timeout -k 5 " + std::to_string(timeout_s) + " " + cmd + " >" + (d / "out") + " 2>" + (d / "err");
  const auto t0 = std::chrono::steady_clock::now();
  const int st = std::system(full.c_str());
  RunResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(d / "out");
  r.err = slurp(d / "err");
  return r;
}

}  // namespace qs::testing_util
