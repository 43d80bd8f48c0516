#include "qiusuo/train/progress.h"

#include <unistd.h>

#include <cmath>
#include <csignal>

namespace qs {

std::string format_duration(double s) {
  char buf[32];
  if (!(s >= 0)) s = 0;
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(std::fmod(s, 3600) / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(std::fmod(s, 60)));
  else std::snprintf(buf, sizeof buf, "%.0fs", s);
  return buf;
}

ProgressLine::ProgressLine(bool enabled, std::FILE* out)
    : enabled_(enabled), tty_(enabled && isatty(fileno(out))), out_(out) {}

void ProgressLine::update(const std::string& line, bool milestone) {
  if (!enabled_) return;
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", line.c_str());
    drawn_ = true;
  } else if (milestone) {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void ProgressLine::note(const std::string& message) {
  if (drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
  std::fprintf(out_, "%s\n", message.c_str());
  std::fflush(out_);
}

void ProgressLine::finish() {
  if (drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
}

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }
}  // namespace

InterruptFlag::InterruptFlag() {
  g_interrupted = 0;
  previous_ = std::signal(SIGINT, on_sigint);
}

InterruptFlag::~InterruptFlag() { std::signal(SIGINT, previous_); }

bool InterruptFlag::raised() const { return g_interrupted != 0; }

}  // namespace qs
