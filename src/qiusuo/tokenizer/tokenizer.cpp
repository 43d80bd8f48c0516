#include "qiusuo/tokenizer/tokenizer.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "qiusuo/core/error.h"
#include "qiusuo/core/json_util.h"
#include "qiusuo/tokenizer/flat_map.h"
#include "qiusuo/tokenizer/unicode.h"

namespace qs {

namespace {

// One step of a post-processor template for a single sequence: either the sequence itself or
// fixed special-token ids.
struct PostItem {
  bool sequence = false;
  std::vector<int32_t> ids;
};
using PostTemplate = std::vector<PostItem>;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorKind::NotFound, "cannot open ", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(ErrorKind::Io, "cannot read ", path);
  return std::move(ss).str();
}

nlohmann::json parse_json(const std::string& text, const std::string& what) {
  return parse_json_file_text<nlohmann::json>(text, what);
}

// A special token in tokenizer_config.json: a string, an AddedToken dict {"content": ...}, or null.
std::string config_token(const nlohmann::json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return {};
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  if (v.is_null()) return {};
  fail(ErrorKind::Format, "tokenizer_config.json: \"", key, "\" must be a string, an AddedToken object or null");
}

// Streaming reader for tokenizer.json: builds a DOM for everything except model.vocab and
// model.merges, which go straight into BpeModel::Parts (a 128k-entry std::map would cost more
// than the rest of loading).
class TokenizerJsonReader {
 public:
  using json = nlohmann::json;
  json root;
  BpeModel::Parts parts;

  bool null() { return put(json(nullptr)); }
  bool boolean(bool v) { return put(json(v)); }
  bool number_integer(json::number_integer_t v) {
    if (skip_) return true;
    if (mode_ == Mode::Vocab) {
      parts.vocab.emplace_back(std::move(key_), v);
      return true;
    }
    return put(json(v));
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (skip_) return true;
    if (mode_ == Mode::Vocab) {
      parts.vocab.emplace_back(std::move(key_), v > INT64_MAX ? -1 : static_cast<int64_t>(v));
      return true;
    }
    return put(json(v));
  }
  bool number_float(json::number_float_t v, const std::string&) { return put(json(v)); }
  bool string(std::string& v) {
    if (skip_) return true;
    if (mode_ == Mode::Merges) {
      BpeModel::add_merge_string(parts, v);
      return true;
    }
    if (mode_ == Mode::MergePair) {
      pair_.push_back(std::move(v));
      return true;
    }
    return put(json(std::move(v)));
  }
  bool binary(json::binary_t&) { return put(json()); }
  bool key(std::string& k) {
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) {
    if (skip_ || mode_ == Mode::Vocab) return skip_open();
    if (in_model() && mode_ == Mode::Normal && key_ == "vocab") {
      mode_ = Mode::Vocab;
      parts.has_vocab = true;
      return true;
    }
    check_plain("an object");
    return open(json::object());
  }
  bool end_object() {
    if (skip_) return --skip_, true;
    if (mode_ == Mode::Vocab) {
      mode_ = Mode::Normal;
      return true;
    }
    return close();
  }
  bool start_array(std::size_t) {
    if (skip_ || mode_ == Mode::Vocab) return skip_open();
    if (in_model() && mode_ == Mode::Normal && key_ == "merges") {
      mode_ = Mode::Merges;
      return true;
    }
    if (mode_ == Mode::Merges) {
      mode_ = Mode::MergePair;
      pair_.clear();
      return true;
    }
    check_plain("an array");
    return open(json::array());
  }
  bool end_array() {
    if (skip_) return --skip_, true;
    if (mode_ == Mode::MergePair) {
      if (pair_.size() != 2)
        fail(ErrorKind::Format, "tokenizer.json: merge ", parts.merges.size(), " must be a \"a b\" string or an [a, b] pair");
      parts.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      mode_ = Mode::Merges;
      return true;
    }
    if (mode_ == Mode::Merges) {
      mode_ = Mode::Normal;
      return true;
    }
    return close();
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) {
    fail(ErrorKind::Format, "invalid JSON at byte ", pos, ": ", e.what());
  }

 private:
  enum class Mode { Normal, Vocab, Merges, MergePair };
  Mode mode_ = Mode::Normal;
  std::vector<json*> stack_;
  std::vector<bool> is_model_;  // per open container: is it the top-level "model" object
  std::string key_;
  std::vector<std::string> pair_;
  int skip_ = 0;  // depth inside a malformed vocab value being skipped

  void vocab_error() {
    if (parts.vocab_error.empty())
      parts.vocab_error = "tokenizer.json: vocab entry \"" + key_ + "\" must have a non-negative integer id";
  }
  bool skip_open() {
    if (!skip_) vocab_error();
    ++skip_;
    return true;
  }
  bool in_model() const { return !is_model_.empty() && is_model_.back(); }
  void check_plain(const char* what) {
    if (mode_ != Mode::Normal) fail(ErrorKind::Format, "tokenizer.json: merge ", parts.merges.size(), " must be a \"a b\" string or an [a, b] pair, not ", what);
  }
  json* place(json&& v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_object()) {
      json& slot = top[key_];
      slot = std::move(v);
      return &slot;
    }
    top.push_back(std::move(v));
    return &top.back();
  }
  bool put(json&& v) {
    if (skip_) return true;
    if (mode_ == Mode::Vocab) {
      vocab_error();
      return true;
    }
    if (mode_ != Mode::Normal) fail(ErrorKind::Format, "tokenizer.json: merge ", parts.merges.size(), " must be a \"a b\" string or an [a, b] pair");
    place(std::move(v));
    return true;
  }
  bool open(json&& v) {
    // Deeper values would be copied recursively later (the DOM has no depth limit of its own).
    if (stack_.size() >= size_t(kMaxJsonDepth))
      fail(ErrorKind::Format, "tokenizer.json: JSON nested deeper than ", kMaxJsonDepth, " levels");
    bool model = stack_.size() == 1 && stack_.back()->is_object() && key_ == "model";
    stack_.push_back(place(std::move(v)));
    is_model_.push_back(model);
    return true;
  }
  bool close() {
    stack_.pop_back();
    is_model_.pop_back();
    return true;
  }
};

void check_normalizer(const nlohmann::json& n) {
  if (n.is_null()) return;
  if (!n.is_object() || !n.contains("type") || !n["type"].is_string())
    fail(ErrorKind::Format, "tokenizer.json: normalizer must be null or an object with a \"type\"");
  std::string type = n["type"].get<std::string>();
  if (type == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array())
      fail(ErrorKind::Format, "tokenizer.json: normalizer Sequence needs a \"normalizers\" array");
    for (const auto& s : n["normalizers"]) check_normalizer(s);
    return;
  }
  fail(ErrorKind::Unsupported, "tokenizer.json: unsupported normalizer type \"", type,
       "\" (only an empty normalizer is supported)");
}

// Returns true for a ByteLevel decoder, false for none (tokens joined with spaces).
bool parse_decoder(const nlohmann::json& d) {
  if (d.is_null()) return false;
  if (!d.is_object() || !d.contains("type") || !d["type"].is_string())
    fail(ErrorKind::Format, "tokenizer.json: decoder must be null or an object with a \"type\"");
  std::string type = d["type"].get<std::string>();
  if (type == "ByteLevel") return true;
  if (type == "Sequence" && d.contains("decoders") && d["decoders"].is_array() && d["decoders"].size() == 1)
    return parse_decoder(d["decoders"][0]);
  fail(ErrorKind::Unsupported, "tokenizer.json: unsupported decoder type \"", type,
       "\" (only ByteLevel is supported)");
}

int32_t json_id(const nlohmann::json& v, const char* what) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0)
    fail(ErrorKind::Format, "tokenizer.json: ", what, " must be a non-negative integer id, got ", json_excerpt(v));
  if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(kMaxTokenId) : v.get<int64_t>() > kMaxTokenId)
    fail(ErrorKind::Format, "tokenizer.json: ", what, " ", json_excerpt(v), " is above the bound ", kMaxTokenId);
  return static_cast<int32_t>(v.get<int64_t>());
}

void parse_post_processor(const nlohmann::json& p, std::vector<PostTemplate>& out) {
  if (p.is_null()) return;
  if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
    fail(ErrorKind::Format, "tokenizer.json: post_processor must be null or an object with a \"type\"");
  std::string type = p["type"].get<std::string>();
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    if (!p.contains("processors") || !p["processors"].is_array())
      fail(ErrorKind::Format, "tokenizer.json: post_processor Sequence needs a \"processors\" array");
    for (const auto& s : p["processors"]) parse_post_processor(s, out);
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto tok = [&](const char* key) {
      if (!p.contains(key) || !p[key].is_array() || p[key].size() != 2)
        fail(ErrorKind::Format, "tokenizer.json: ", type, ".", key, " must be a [token, id] pair");
      return json_id(p[key][1], (type + "." + key).c_str());
    };
    PostTemplate t;
    t.push_back({false, {tok("cls")}});
    t.push_back({true, {}});
    t.push_back({false, {tok("sep")}});
    out.push_back(std::move(t));
    return;
  }
  if (type == "TemplateProcessing") {
    if (!p.contains("single") || !p["single"].is_array())
      fail(ErrorKind::Format, "tokenizer.json: TemplateProcessing needs a \"single\" array");
    const nlohmann::json empty = nlohmann::json::object();
    const auto& specials = p.contains("special_tokens") && p["special_tokens"].is_object() ? p["special_tokens"] : empty;
    PostTemplate t;
    for (const auto& piece : p["single"]) {
      if (piece.contains("Sequence")) {
        const auto& s = piece["Sequence"];
        if (s.contains("id") && s["id"] != "A")
          fail(ErrorKind::Unsupported, "tokenizer.json: TemplateProcessing single template uses sequence ",
               json_excerpt(s["id"]));
        t.push_back({true, {}});
      } else if (piece.contains("SpecialToken")) {
        const auto& s = piece["SpecialToken"];
        if (!s.contains("id") || !s["id"].is_string())
          fail(ErrorKind::Format, "tokenizer.json: TemplateProcessing SpecialToken needs an \"id\" string");
        std::string name = s["id"].get<std::string>();
        if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array())
          fail(ErrorKind::Format, "tokenizer.json: TemplateProcessing special token \"", name,
               "\" is missing from special_tokens");
        PostItem item;
        for (const auto& id : specials[name]["ids"]) item.ids.push_back(json_id(id, "TemplateProcessing id"));
        t.push_back(std::move(item));
      } else {
        fail(ErrorKind::Format, "tokenizer.json: TemplateProcessing piece must be Sequence or SpecialToken");
      }
    }
    out.push_back(std::move(t));
    return;
  }
  fail(ErrorKind::Unsupported, "tokenizer.json: unsupported post_processor type \"", type,
       "\" (supported: ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence)");
}

bool llama_class(const std::string& cls) {
  for (const char* c : {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"})
    if (cls == c) return true;
  return false;
}

}  // namespace

struct Tokenizer::Impl {
  nlohmann::json normalizer_j, pre_j, post_j, decoder_j, config;
  PreTokenizer pre;
  BpeModel model;
  AddedVocabulary added;
  detail::StringIdMap added_map;  // content -> id
  std::vector<PostTemplate> post;
  bool config_mode = false, add_bos = false, add_eos = false;
  std::string bos, eos, pad, chat_template;
  int32_t bos_id = -1, eos_id = -1, pad_id = -1;
  bool byte_decoder = true;
  int32_t vocab_size = 0;
  std::vector<uint32_t> tok_off, dec_off;  // per id, size vocab_size + 1
  std::string tok_strs, dec_bytes;
  std::vector<uint8_t> flags;  // bit 0: id exists, bit 1: special
};

Tokenizer Tokenizer::load(const std::string& dir) {
  namespace fs = std::filesystem;
  std::string tj = (fs::path(dir) / "tokenizer.json").string();
  if (!fs::exists(tj)) fail(ErrorKind::NotFound, "tokenizer: ", tj, " not found");
  std::string text = read_file(tj);
  TokenizerJsonReader reader;
  try {
    nlohmann::json::sax_parse(text, &reader);
  } catch (const Error& e) {
    throw Error(e.kind(), tj + ": " + e.what());
  }
  text = std::string();
  nlohmann::json cfg;
  std::string cj = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(cj)) cfg = parse_json(read_file(cj), cj);
  try {
    const nlohmann::json& t = reader.root;
    if (!t.is_object()) fail(ErrorKind::Format, "tokenizer.json: top level must be an object");
    if (!t.contains("model")) fail(ErrorKind::Format, "tokenizer.json: missing \"model\"");
    if (!t["model"].is_object()) fail(ErrorKind::Format, "tokenizer.json: \"model\" must be an object");
    PreTokenizer pre = PreTokenizer::from_json(t.contains("pre_tokenizer") ? t["pre_tokenizer"] : nlohmann::json());
    BpeModel model = BpeModel::build(t["model"], std::move(reader.parts), pre.byte_level());
    return build(t, std::move(pre), std::move(model), cfg);
  } catch (const Error& e) {
    throw Error(e.kind(), std::string(e.what()) + " (in " + dir + ")");
  }
}

Tokenizer Tokenizer::from_json(const nlohmann::json& t, const nlohmann::json& cfg) {
  if (!t.is_object()) fail(ErrorKind::Format, "tokenizer.json: top level must be an object");
  if (!t.contains("model")) fail(ErrorKind::Format, "tokenizer.json: missing \"model\"");
  PreTokenizer pre = PreTokenizer::from_json(t.contains("pre_tokenizer") ? t["pre_tokenizer"] : nlohmann::json());
  BpeModel model = BpeModel::from_json(t["model"], pre.byte_level());
  return build(t, std::move(pre), std::move(model), cfg);
}

Tokenizer Tokenizer::build(const nlohmann::json& t, PreTokenizer pre, BpeModel model, const nlohmann::json& cfg) {
  auto impl = std::make_shared<Impl>();
  auto field = [&](const char* k) { return t.contains(k) ? t[k] : nlohmann::json(); };
  impl->normalizer_j = field("normalizer");
  impl->pre_j = field("pre_tokenizer");
  impl->post_j = field("post_processor");
  impl->decoder_j = field("decoder");
  check_normalizer(impl->normalizer_j);
  impl->pre = std::move(pre);
  impl->model = std::move(model);
  parse_post_processor(impl->post_j, impl->post);
  impl->byte_decoder = parse_decoder(impl->decoder_j);

  // Added tokens.
  std::vector<AddedToken> added;
  if (t.contains("added_tokens") && !t["added_tokens"].is_null()) {
    if (!t["added_tokens"].is_array()) fail(ErrorKind::Format, "tokenizer.json: added_tokens must be an array");
    for (const auto& a : t["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content") || !a["content"].is_string())
        fail(ErrorKind::Format, "tokenizer.json: each added token needs \"id\" and \"content\"");
      AddedToken at;
      at.id = json_id(a["id"], "added token id");
      at.content = a["content"].get<std::string>();
      auto flag = [&](const char* k, bool def) {
        if (!a.contains(k) || a[k].is_null()) return def;
        if (!a[k].is_boolean()) fail(ErrorKind::Format, "tokenizer.json: added token ", at.id, ".", k, " must be a boolean");
        return a[k].get<bool>();
      };
      at.single_word = flag("single_word", false);
      at.lstrip = flag("lstrip", false);
      at.rstrip = flag("rstrip", false);
      at.normalized = flag("normalized", true);
      at.special = flag("special", false);
      if (at.content.empty()) continue;
      if (unicode::find_invalid_utf8(at.content) != std::string_view::npos)
        fail(ErrorKind::Format, "tokenizer.json: added token ", at.id, " is not valid UTF-8");
      added.push_back(std::move(at));
    }
  }
  impl->added = AddedVocabulary(added);

  // Per-id tables.
  int32_t max_id = impl->model.max_id();
  for (const auto& a : added) max_id = std::max(max_id, a.id);
  impl->vocab_size = max_id + 1;
  size_t n = static_cast<size_t>(impl->vocab_size);
  std::vector<const AddedToken*> added_by_id(n, nullptr);
  for (const auto& a : impl->added.tokens()) {
    added_by_id[a.id] = &a;
    impl->added_map.insert(a.content, a.id);
  }
  detail::StringIdMap special_set;
  for (const auto& a : impl->added.tokens())
    if (a.special) special_set.insert(a.content, 1);
  impl->tok_off.assign(n + 1, 0);
  impl->dec_off.assign(n + 1, 0);
  impl->flags.assign(n, 0);
  std::string raw;
  for (size_t id = 0; id < n; ++id) {
    impl->tok_off[id] = static_cast<uint32_t>(impl->tok_strs.size());
    impl->dec_off[id] = static_cast<uint32_t>(impl->dec_bytes.size());
    std::string_view tok;
    bool exists = false;
    if (added_by_id[id]) {
      tok = added_by_id[id]->content;
      exists = true;
    } else {
      tok = impl->model.id_to_token(static_cast<int32_t>(id));
      exists = !tok.empty();
    }
    if (!exists) continue;
    impl->flags[id] = 1;
    // tokenizers skips by token string: any id whose token is a special added token's content.
    if (special_set.find(tok) >= 0) impl->flags[id] |= 2;
    impl->tok_strs.append(tok);
    if (impl->byte_decoder && byte_level::decode(tok, raw))
      impl->dec_bytes.append(raw);
    else
      impl->dec_bytes.append(tok);  // ByteLevel keeps tokens with non-alphabet chars verbatim
  }
  impl->tok_off[n] = static_cast<uint32_t>(impl->tok_strs.size());
  impl->dec_off[n] = static_cast<uint32_t>(impl->dec_bytes.size());

  // tokenizer_config.json.
  impl->config = cfg;
  if (!cfg.is_null()) {
    if (!cfg.is_object()) fail(ErrorKind::Format, "tokenizer_config.json: top level must be an object");
    impl->bos = config_token(cfg, "bos_token");
    impl->eos = config_token(cfg, "eos_token");
    impl->pad = config_token(cfg, "pad_token");
    std::string cls = cfg.contains("tokenizer_class") && cfg["tokenizer_class"].is_string()
                          ? cfg["tokenizer_class"].get<std::string>()
                          : "";
    bool llama = llama_class(cls);
    auto cfg_bool = [&](const char* k, bool def) {
      if (!cfg.contains(k) || cfg[k].is_null()) return def;
      if (!cfg[k].is_boolean()) fail(ErrorKind::Format, "tokenizer_config.json: \"", k, "\" must be a boolean");
      return cfg[k].get<bool>();
    };
    impl->config_mode = llama || cfg.contains("add_bos_token") || cfg.contains("add_eos_token");
    impl->add_bos = cfg_bool("add_bos_token", llama);
    impl->add_eos = cfg_bool("add_eos_token", false);
    if (cfg.contains("chat_template")) {
      const auto& ct = cfg["chat_template"];
      if (ct.is_string()) {
        impl->chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {  // [{"name": ..., "template": ...}]: the "default" one, else the first
        for (const auto& e : ct)
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
            impl->chat_template = e["template"].get<std::string>();
        if (impl->chat_template.empty() && !ct.empty() && ct[0].is_object() && ct[0].contains("template") &&
            ct[0]["template"].is_string())
          impl->chat_template = ct[0]["template"].get<std::string>();
      }
    }
  }
  Tokenizer tk;
  tk.impl_ = impl;
  impl->bos_id = impl->bos.empty() ? -1 : tk.token_to_id(impl->bos);
  impl->eos_id = impl->eos.empty() ? -1 : tk.token_to_id(impl->eos);
  impl->pad_id = impl->pad.empty() ? -1 : tk.token_to_id(impl->pad);
  if (impl->config_mode && impl->add_bos && impl->bos_id < 0)
    fail(ErrorKind::Format, "tokenizer_config.json: add_bos_token is true but bos_token \"", impl->bos,
         "\" is not a token");
  if (impl->config_mode && impl->add_eos && impl->eos_id < 0)
    fail(ErrorKind::Format, "tokenizer_config.json: add_eos_token is true but eos_token \"", impl->eos,
         "\" is not a token");
  return tk;
}

// ---- encode ----------------------------------------------------------------------------------

namespace {
struct BpeSink final : PieceSink {
  const BpeModel& model;
  std::vector<int32_t>& out;
  BpeSink(const BpeModel& m, std::vector<int32_t>& o) : model(m), out(o) {}
  void piece(std::string_view p) override { model.encode_piece(p, out); }
};
}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  size_t bad = unicode::find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(text[bad])));
    fail(ErrorKind::Invalid, "tokenizer: input text is not valid UTF-8 (byte ", hex, " at byte offset ", bad, ")");
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  BpeSink sink(m.model, ids);
  if (m.added.empty()) {
    m.pre.pre_tokenize(text, sink);
  } else {
    m.added.split(text, [&](std::string_view piece, int32_t id) {
      if (id >= 0)
        ids.push_back(id);
      else
        m.pre.pre_tokenize(piece, sink);
    });
  }
  if (!add_special_tokens) return ids;
  if (m.config_mode) {
    if (m.add_bos) ids.insert(ids.begin(), m.bos_id);
    if (m.add_eos) ids.push_back(m.eos_id);
    return ids;
  }
  for (const auto& tmpl : m.post) {
    std::vector<int32_t> next;
    next.reserve(ids.size() + 4);
    for (const auto& item : tmpl) {
      if (item.sequence)
        next.insert(next.end(), ids.begin(), ids.end());
      else
        next.insert(next.end(), item.ids.begin(), item.ids.end());
    }
    ids.swap(next);
  }
  return ids;
}

// ---- decode ----------------------------------------------------------------------------------

bool Tokenizer::has_id(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && (impl_->flags[id] & 1);
}
bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && (impl_->flags[id] & 2);
}

std::string_view Tokenizer::id_to_bytes(int32_t id) const {
  if (!has_id(id)) return {};
  return std::string_view(impl_->dec_bytes).substr(impl_->dec_off[id], impl_->dec_off[id + 1] - impl_->dec_off[id]);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  bool first = true;
  for (int32_t id : ids) {
    if (!has_id(id) || (skip_special_tokens && (m.flags[id] & 2))) continue;
    if (!m.byte_decoder && !first) bytes.push_back(' ');
    first = false;
    bytes.append(id_to_bytes(id));
  }
  if (!m.byte_decoder) return bytes;  // token strings are valid UTF-8
  return unicode::utf8_lossy(bytes);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (!has_id(id)) fail(ErrorKind::NotFound, "tokenizer: id ", id, " has no token (vocab size ", impl_->vocab_size, ")");
  return impl_->tok_strs.substr(impl_->tok_off[id], impl_->tok_off[id + 1] - impl_->tok_off[id]);
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  int32_t id = impl_->added_map.find(token);
  return id >= 0 ? id : impl_->model.token_to_id(token);
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
int32_t Tokenizer::bos_id() const { return impl_->bos_id; }
int32_t Tokenizer::eos_id() const { return impl_->eos_id; }
int32_t Tokenizer::pad_id() const { return impl_->pad_id; }
bool Tokenizer::add_bos_token() const { return impl_->config_mode && impl_->add_bos; }
bool Tokenizer::add_eos_token() const { return impl_->config_mode && impl_->add_eos; }
const std::string& Tokenizer::bos_token() const { return impl_->bos; }
const std::string& Tokenizer::eos_token() const { return impl_->eos; }
const std::string& Tokenizer::pad_token() const { return impl_->pad; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
const nlohmann::json& Tokenizer::config_json() const { return impl_->config; }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added.tokens(); }
bool Tokenizer::byte_level_decoder() const { return impl_->byte_decoder; }
const PreTokenizer& Tokenizer::pre_tokenizer() const { return impl_->pre; }
const BpeModel& Tokenizer::model() const { return impl_->model; }

Tokenizer Tokenizer::without_fast_path() const {
  auto impl = std::make_shared<Impl>(*impl_);
  impl->pre = impl_->pre.without_fast_path();
  Tokenizer t;
  t.impl_ = impl;
  return t;
}

// ---- save ------------------------------------------------------------------------------------

std::string Tokenizer::to_json_string() const {
  const Impl& m = *impl_;
  using json = nlohmann::json;
  auto q = [](std::string_view s) { return json(std::string(s)).dump(); };
  std::string o;
  o.reserve(8 << 20);
  o += "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [";
  std::vector<const AddedToken*> added;
  for (const auto& a : m.added.tokens()) added.push_back(&a);
  std::stable_sort(added.begin(), added.end(), [](auto* a, auto* b) { return a->id < b->id; });
  for (size_t i = 0; i < added.size(); ++i) {
    const AddedToken& a = *added[i];
    o += i ? ",\n    " : "\n    ";
    // Field order as tokenizers writes it.
    o += "{\"id\": " + std::to_string(a.id) + ", \"content\": " + q(a.content) +
         ", \"single_word\": " + (a.single_word ? "true" : "false") + ", \"lstrip\": " + (a.lstrip ? "true" : "false") +
         ", \"rstrip\": " + (a.rstrip ? "true" : "false") + ", \"normalized\": " + (a.normalized ? "true" : "false") +
         ", \"special\": " + (a.special ? "true" : "false") + "}";
  }
  o += added.empty() ? "],\n" : "\n  ],\n";
  o += "  \"normalizer\": " + m.normalizer_j.dump() + ",\n";
  o += "  \"pre_tokenizer\": " + m.pre_j.dump() + ",\n";
  o += "  \"post_processor\": " + m.post_j.dump() + ",\n";
  o += "  \"decoder\": " + m.decoder_j.dump() + ",\n";
  const BpeModel& bm = m.model;
  o += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": ";
  o += bm.unk_token().empty() ? std::string("null") : q(bm.unk_token());
  o += ",\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
       "    \"byte_fallback\": false,\n";
  if (bm.ignore_merges()) o += "    \"ignore_merges\": true,\n";
  o += "    \"vocab\": {";
  bool first = true;
  for (int32_t id = 0; id <= bm.max_id(); ++id) {
    std::string_view tok = bm.id_to_token(id);
    if (tok.empty()) continue;
    o += first ? "\n      " : ",\n      ";
    first = false;
    o += q(tok) + ": " + std::to_string(id);
  }
  o += "\n    },\n    \"merges\": [";
  bool pairs = false;
  for (const auto& [a, b] : bm.merges())
    if (bm.id_to_token(a).find(' ') != std::string_view::npos || bm.id_to_token(b).find(' ') != std::string_view::npos)
      pairs = true;
  first = true;
  for (const auto& [a, b] : bm.merges()) {
    o += first ? "\n      " : ",\n      ";
    first = false;
    if (pairs)
      o += "[" + q(bm.id_to_token(a)) + ", " + q(bm.id_to_token(b)) + "]";
    else
      o += q(std::string(bm.id_to_token(a)) + " " + std::string(bm.id_to_token(b)));
  }
  o += "\n    ]\n  }\n}\n";
  return o;
}

void Tokenizer::save(const std::string& dir) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ErrorKind::Io, "tokenizer: cannot create directory ", dir, ": ", ec.message());
  auto write = [&](const std::string& name, const std::string& text) {
    std::string path = (fs::path(dir) / name).string();
    std::string tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      if (!f) fail(ErrorKind::Io, "tokenizer: cannot write ", tmp);
      f << text;
      if (!f) fail(ErrorKind::Io, "tokenizer: cannot write ", tmp);
    }
    fs::rename(tmp, path, ec);
    if (ec) fail(ErrorKind::Io, "tokenizer: cannot rename ", tmp, " to ", path, ": ", ec.message());
  };
  write("tokenizer.json", to_json_string());
  if (!impl_->config.is_null()) write("tokenizer_config.json", impl_->config.dump(2) + "\n");
}

// ---- streaming -------------------------------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tok_(&tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  std::string out;
  if (!tok_->has_id(id) || (skip_special_ && tok_->is_special(id))) return out;
  if (!tok_->byte_level_decoder()) {
    if (!first_) out.push_back(' ');
    first_ = false;
    out.append(tok_->id_to_bytes(id));
    return out;
  }
  first_ = false;
  pending_.append(tok_->id_to_bytes(id));
  size_t used = unicode::append_lossy(out, pending_, false);
  pending_.erase(0, used);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  unicode::append_lossy(out, pending_, true);
  pending_.clear();
  return out;
}

void StreamDecoder::reset() {
  pending_.clear();
  first_ = true;
}

}  // namespace qs
