// Pieces of a training loop's user interface, shared by pretraining, SFT, GRPO and
// distillation: the live progress line and the Ctrl-C flag.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace qs {

// "42s", "3m07s", "1h05m".
std::string format_duration(double seconds);

// One status line on a stream (stderr): on a terminal it is redrawn in place ("\r", erase
// line) at every update; otherwise only milestone updates are printed, one line each, so that
// a log file gets a readable trace. note() prints a message on a line of its own (also when
// the live line is disabled: the caller decides whether to say it) after ending the live line;
// finish() ends the live line.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled, std::FILE* out = stderr);
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine() { finish(); }

  void update(const std::string& line, bool milestone);
  void note(const std::string& message);
  void finish();
  bool enabled() const { return enabled_; }
  bool terminal() const { return tty_; }

 private:
  bool enabled_, tty_;
  std::FILE* out_;
  bool drawn_ = false;  // a live line is on the terminal
};

// True from the first SIGINT on, while an object lives (the previous handler is restored by
// the destructor). A loop checks it between steps and saves before it stops.
class InterruptFlag {
 public:
  InterruptFlag();
  InterruptFlag(const InterruptFlag&) = delete;
  InterruptFlag& operator=(const InterruptFlag&) = delete;
  ~InterruptFlag();
  bool raised() const;

 private:
  void (*previous_)(int);
};

}  // namespace qs
