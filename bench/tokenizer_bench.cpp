// Tokenizer speed on shared/fixtures/tokenizer/bench/mixed_1mib.txt with the DeepSeek-V3 tokenizer.
// Reference (README of the fixtures, same kind of machine): HF tokenizers 1.1-1.6 MB/s encoding the
// whole file on one thread, 1.2-1.3 MB/s line by line, decode 4.8-5.1 M tokens/s.
//
//   build-*/bench/tokenizer_bench --benchmark_min_time=2s
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "qiusuo/tokenizer/tokenizer.h"

namespace {

const std::string kDir = std::string(QS_FIXTURES) + "/tokenizer";

const std::string& text() {
  static const std::string t = [] {
    std::ifstream f(kDir + "/bench/mixed_1mib.txt", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }();
  return t;
}

const std::vector<std::string>& lines() {
  static const std::vector<std::string> l = [] {
    std::vector<std::string> out;
    const std::string& t = text();
    size_t start = 0;
    while (start < t.size()) {
      size_t nl = t.find('\n', start);
      size_t end = nl == std::string::npos ? t.size() : nl + 1;
      out.push_back(t.substr(start, end - start));
      start = end;
    }
    return out;
  }();
  return l;
}

const qs::Tokenizer& tok() {
  static const qs::Tokenizer t = qs::Tokenizer::load(kDir + "/deepseek-v3");
  return t;
}

void set_rates(benchmark::State& state, size_t bytes, size_t tokens) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * tokens), benchmark::Counter::kIsRate);
  state.counters["tokens"] = static_cast<double>(tokens);
}

void BM_Load(benchmark::State& state) {
  for (auto _ : state) {
    auto t = qs::Tokenizer::load(kDir + "/deepseek-v3");
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_Load)->Unit(benchmark::kMillisecond)->MinTime(1.0);

// Whole 1 MiB text; the per-thread word cache stays warm across iterations.
void BM_EncodeWhole(benchmark::State& state) {
  const auto& t = tok();
  size_t n = 0;
  for (auto _ : state) {
    auto ids = t.encode(text());
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  set_rates(state, text().size(), n);
}
BENCHMARK(BM_EncodeWhole)->Unit(benchmark::kMillisecond);

// Same, with the word cache emptied before every iteration.
void BM_EncodeWholeColdCache(benchmark::State& state) {
  const auto& t = tok();
  size_t n = 0;
  for (auto _ : state) {
    qs::BpeModel::clear_thread_cache();
    auto ids = t.encode(text());
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  set_rates(state, text().size(), n);
}
BENCHMARK(BM_EncodeWholeColdCache)->Unit(benchmark::kMillisecond);

void BM_EncodePerLine(benchmark::State& state) {
  const auto& t = tok();
  size_t n = 0;
  for (auto _ : state) {
    n = 0;
    for (const auto& l : lines()) {
      auto ids = t.encode(l);
      n += ids.size();
      benchmark::DoNotOptimize(ids.data());
    }
  }
  set_rates(state, text().size(), n);
}
BENCHMARK(BM_EncodePerLine)->Unit(benchmark::kMillisecond);

// The general PCRE2 pre-tokenizer instead of the hand-compiled one.
void BM_EncodeWholePcre2(benchmark::State& state) {
  const auto slow = tok().without_fast_path();
  size_t n = 0;
  for (auto _ : state) {
    auto ids = slow.encode(text());
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  set_rates(state, text().size(), n);
}
BENCHMARK(BM_EncodeWholePcre2)->Unit(benchmark::kMillisecond);

void BM_PreTokenize(benchmark::State& state) {
  const auto& t = tok();
  const auto pt = state.range(0) ? t.pre_tokenizer() : t.pre_tokenizer().without_fast_path();
  struct Count : qs::PieceSink {
    size_t n = 0;
    void piece(std::string_view) override { ++n; }
  } c;
  for (auto _ : state) {
    c.n = 0;
    pt.pre_tokenize(text(), c);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
  state.counters["pieces"] = static_cast<double>(c.n);
  state.SetLabel(state.range(0) ? "fast path" : "pcre2");
}
BENCHMARK(BM_PreTokenize)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);

void BM_Decode(benchmark::State& state) {
  const auto& t = tok();
  auto ids = t.encode(text());
  for (auto _ : state) {
    auto s = t.decode(ids);
    benchmark::DoNotOptimize(s.data());
  }
  set_rates(state, text().size(), ids.size());
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

void BM_StreamDecode(benchmark::State& state) {
  const auto& t = tok();
  auto ids = t.encode(text());
  for (auto _ : state) {
    qs::StreamDecoder sd(t);
    size_t bytes = 0;
    for (int32_t id : ids) bytes += sd.push(id).size();
    bytes += sd.flush().size();
    benchmark::DoNotOptimize(bytes);
  }
  set_rates(state, text().size(), ids.size());
}
BENCHMARK(BM_StreamDecode)->Unit(benchmark::kMillisecond);

}  // namespace
