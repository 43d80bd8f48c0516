// Running the `qiusuo` command from the CLI tests.
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "qiusuo/io/file.h"
#include "test_util.h"

namespace qs::testing_util {

struct CmdResult {
  int code = -1;
  std::string out, err;
};

// Runs `qiusuo <args>` (args go through the shell) capturing its exit code, stdout and stderr.
inline CmdResult qiusuo(const std::string& args) {
  TempDir d("cli");
  const std::string cmd = std::string(QS_BINARY_DIR) + "/qiusuo " + args + " >" + (d / "out") + " 2>" + (d / "err");
  const int st = std::system(cmd.c_str());
  CmdResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = read_text_file(d / "out");
  r.err = read_text_file(d / "err");
  return r;
}

}  // namespace qs::testing_util
