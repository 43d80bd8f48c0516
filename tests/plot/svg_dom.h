// A small strict XML reader for the plot tests: parses an SVG document back into elements
// (name, attributes, children, text) and rejects anything that is not well-formed — one root,
// balanced and properly nested tags, quoted unique attributes without '<', known entity
// references, nothing but whitespace outside the root, valid UTF-8.
#pragma once
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace qs::testing_util {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::vector<std::unique_ptr<XmlElement>> children;
  std::string text;  // character data directly inside (entities decoded)

  std::string attr(const std::string& k) const {
    auto it = attrs.find(k);
    return it == attrs.end() ? std::string() : it->second;
  }
  bool has_class(const std::string& c) const { return (" " + attr("class") + " ").find(" " + c + " ") != std::string::npos; }
  // Every element below (and including) this one, in document order.
  void walk(std::vector<const XmlElement*>& out) const {
    out.push_back(this);
    for (const auto& c : children) c->walk(out);
  }
  std::vector<const XmlElement*> all(const std::string& tag = "", const std::string& cls = "") const {
    std::vector<const XmlElement*> v, o;
    walk(v);
    for (const auto* e : v)
      if ((tag.empty() || e->name == tag) && (cls.empty() || e->has_class(cls))) o.push_back(e);
    return o;
  }
  // Text of this element and everything below it.
  std::string all_text() const {
    std::string s = text;
    for (const auto& c : children) s += c->all_text();
    return s;
  }
};

struct XmlError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class XmlReader {
 public:
  static std::unique_ptr<XmlElement> parse(const std::string& s) { return XmlReader(s).document(); }

 private:
  explicit XmlReader(const std::string& s) : s_(s) {}
  [[noreturn]] void bad(const std::string& why) const { throw XmlError(why + " at byte " + std::to_string(i_)); }
  static bool name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.';
  }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  std::string name() {
    const size_t b = i_;
    while (i_ < s_.size() && name_char(s_[i_])) ++i_;
    if (i_ == b) bad("expected a name");
    return s_.substr(b, i_ - b);
  }
  std::string decode(size_t b, size_t e) {
    std::string o;
    for (size_t k = b; k < e; ++k) {
      if (s_[k] == '<') bad("'<' in text or attribute");
      if (s_[k] != '&') {
        o += s_[k];
        continue;
      }
      const size_t semi = s_.find(';', k);
      if (semi == std::string::npos || semi > e) bad("unterminated entity");
      const std::string ent = s_.substr(k + 1, semi - k - 1);
      static const std::map<std::string, std::string> named = {
          {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}};
      if (named.count(ent)) o += named.at(ent);
      else if (ent.size() > 1 && ent[0] == '#') o += '?';
      else bad("unknown entity &" + ent + ";");
      k = semi;
    }
    return o;
  }
  static void check_utf8(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
      const auto b = static_cast<unsigned char>(s[i]);
      const size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
      if (n == 0 || i + n > s.size()) throw XmlError("invalid UTF-8 at byte " + std::to_string(i));
      for (size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) throw XmlError("invalid UTF-8 at byte " + std::to_string(i));
      i += n;
    }
  }
  std::unique_ptr<XmlElement> document() {
    check_utf8(s_);
    if (s_.compare(0, 5, "<?xml") == 0) {
      i_ = s_.find("?>");
      if (i_ == std::string::npos) bad("unterminated XML declaration");
      i_ += 2;
    }
    skip_ws();
    if (i_ >= s_.size() || s_[i_] != '<') bad("no root element");
    auto root = element();
    skip_ws();
    if (i_ != s_.size()) bad("content after the root element");
    return root;
  }
  std::unique_ptr<XmlElement> element() {
    ++i_;  // '<'
    auto e = std::make_unique<XmlElement>();
    e->name = name();
    while (true) {
      skip_ws();
      if (i_ >= s_.size()) bad("unterminated tag <" + e->name);
      if (s_[i_] == '>') { ++i_; break; }
      if (s_.compare(i_, 2, "/>") == 0) { i_ += 2; return e; }
      const std::string an = name();
      if (e->attrs.count(an)) bad("duplicate attribute " + an);
      if (i_ >= s_.size() || s_[i_] != '=') bad("attribute " + an + " without a value");
      ++i_;
      if (i_ >= s_.size() || (s_[i_] != '"' && s_[i_] != '\'')) bad("unquoted attribute " + an);
      const char q = s_[i_];
      const size_t v1 = s_.find(q, i_ + 1);
      if (v1 == std::string::npos) bad("unterminated attribute " + an);
      e->attrs[an] = decode(i_ + 1, v1);
      i_ = v1 + 1;
    }
    while (true) {  // content
      const size_t lt = s_.find('<', i_);
      if (lt == std::string::npos) bad("unclosed <" + e->name + ">");
      e->text += decode(i_, lt);
      i_ = lt;
      if (s_.compare(i_, 4, "<!--") == 0) {
        const size_t end = s_.find("-->", i_);
        if (end == std::string::npos) bad("unterminated comment");
        i_ = end + 3;
      } else if (s_.compare(i_, 2, "</") == 0) {
        i_ += 2;
        const std::string n = name();
        skip_ws();
        if (n != e->name || i_ >= s_.size() || s_[i_] != '>') bad("</" + n + "> does not close <" + e->name + ">");
        ++i_;
        return e;
      } else {
        e->children.push_back(element());
      }
    }
  }
  const std::string& s_;
  size_t i_ = 0;
};

// "" when `svg` parses, else the problem.
inline std::string xml_problem(const std::string& svg) {
  try {
    XmlReader::parse(svg);
    return "";
  } catch (const XmlError& e) {
    return e.what();
  }
}

// Every number in a path's d attribute (commands are letters).
inline std::vector<double> path_numbers(const std::string& d) {
  std::vector<double> v;
  const char* p = d.c_str();
  while (*p) {
    if (std::isalpha(static_cast<unsigned char>(*p)) || *p == ' ' || *p == ',') {
      ++p;
      continue;
    }
    char* end = nullptr;
    v.push_back(std::strtod(p, &end));
    if (end == p) throw XmlError("bad number in path data: " + d);
    p = end;
  }
  return v;
}

}  // namespace qs::testing_util
