// The `qiusuo` command: subcommands that parse flags and call the library, nothing more.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "commands.h"
#include "dist_cli.h"
#include "qiusuo/core/error.h"

// libgomp reads its spin policy when it is loaded, before main(). Its default spins up to 300k
// iterations at every barrier, which on a busy machine (more runnable threads than cores) turns
// each of the thousands of short parallel regions of a step into a timeslice of spinning. Unless
// the user chose a policy, re-run once with a short spin (a few microseconds).
static void set_default_omp_spin(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("QIUSUO_OMP_SET")) return;
  setenv("GOMP_SPINCOUNT", "2000", 1);
  setenv("QIUSUO_OMP_SET", "1", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then go on with the default
}

int main(int argc, char** argv) {
  set_default_omp_spin(argv);
  CLI::App app{
      "qiusuo (求索): run, train and serve DeepSeek-family models (MLA, DeepSeekMoE, FP8) on CPU.\n"
      "Run `qiusuo <command> --help` for the options of each command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "qiusuo 0.1.0");
  qs::cli::register_model_commands(app);
  qs::cli::register_text_commands(app);
  qs::cli::register_generate_commands(app);
  qs::cli::register_bench_command(app);
  qs::cli::register_data_commands(app);
  qs::cli::register_train_commands(app);
  qs::cli::register_serve_command(app);
  qs::cli::register_rl_commands(app);
  qs::cli::register_quantize_command(app);
  // Under mpirun with several ranks an error on one rank ends the whole run (the others may be
  // waiting for it in a collective).
  auto failed = [](int code) {
    if (qs::world().size() > 1) qs::world().abort(code);
    return code;
  };
  try {
    qs::cli::init_distributed(argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code ? failed(code) : 0;
  } catch (const qs::Error& e) {
    std::fflush(stdout);
    if (qs::world().size() > 1)
      std::fprintf(stderr, "qiusuo: error (rank %d of %d): %s\n", qs::world().rank(), qs::world().size(), e.what());
    else
      std::fprintf(stderr, "qiusuo: error: %s\n", e.what());
    return failed(1);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qiusuo: error: %s\n", e.what());
    return failed(1);
  }
  qs::finalize_world();
  return 0;
}
