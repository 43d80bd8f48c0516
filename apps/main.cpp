// The `qiusuo` command: subcommands that parse flags and call the library, nothing more.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "commands.h"
#include "qiusuo/core/error.h"

int main(int argc, char** argv) {
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const qs::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qiusuo: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qiusuo: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
