#include "spotgrid/aws/xml.h"

#include <cstdint>
#include <string>

namespace spotgrid {
namespace {

// Deep enough for any AWS response; bounded so a hostile document cannot exhaust the stack.
constexpr int kMaxDepth = 256;

std::string_view LocalName(std::string_view qname) {
  auto colon = qname.rfind(':');
  return colon == std::string_view::npos ? qname : qname.substr(colon + 1);
}

bool IsNameChar(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == ':' || c == '-' || c == '.' || u >= 0x80;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

void AppendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view doc) : doc_(doc) {}

  Result<XmlElement> ParseDocument() {
    // A UTF-8 byte order mark may precede the prolog.
    if (doc_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
    if (!SkipMisc()) return Fail(error_);
    if (AtEnd() || Peek() != '<') return Fail("expected a root element");
    XmlElement root;
    if (!ParseElement(root, 0)) return Fail(error_);
    if (!SkipMisc()) return Fail(error_);
    if (!AtEnd()) return Fail("content after the root element");
    return root;
  }

 private:
  bool AtEnd() const { return pos_ >= doc_.size(); }
  char Peek() const { return doc_[pos_]; }
  bool StartsWith(std::string_view s) const { return doc_.substr(pos_, s.size()) == s; }

  Error Fail(std::string message) const {
    Error e;
    e.category = ErrorCategory::kInvalidInput;
    e.code = "MalformedXml";
    e.message = "XML parse error at offset " + std::to_string(pos_) + ": " + message;
    return e;
  }

  bool SetError(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  void SkipSpace() {
    while (!AtEnd() && IsSpace(Peek())) ++pos_;
  }

  // Skips whitespace, comments and processing instructions (including the XML declaration)
  // outside the root element. A DOCTYPE is refused: no DTDs means no entity expansion attacks.
  bool SkipMisc() {
    while (true) {
      SkipSpace();
      if (StartsWith("<?")) {
        if (!SkipPast("?>")) return SetError("unterminated processing instruction");
      } else if (StartsWith("<!--")) {
        if (!SkipComment()) return false;
      } else if (StartsWith("<!")) {
        return SetError("DTDs and declarations are not supported");
      } else {
        return true;
      }
    }
  }

  bool SkipPast(std::string_view terminator) {
    auto end = doc_.find(terminator, pos_);
    if (end == std::string_view::npos) return false;
    pos_ = end + terminator.size();
    return true;
  }

  bool SkipComment() {
    pos_ += 4;
    if (!SkipPast("-->")) return SetError("unterminated comment");
    return true;
  }

  bool ParseName(std::string& name) {
    std::size_t start = pos_;
    while (!AtEnd() && IsNameChar(Peek())) ++pos_;
    if (pos_ == start) return SetError("expected a name");
    name.assign(doc_.substr(start, pos_ - start));
    return true;
  }

  // Decodes one reference starting at '&'; appends its text to `out`.
  bool ParseReference(std::string& out) {
    auto semi = doc_.find(';', pos_);
    if (semi == std::string_view::npos || semi - pos_ > 12) {
      return SetError("unterminated entity reference");
    }
    std::string_view ref = doc_.substr(pos_ + 1, semi - pos_ - 1);
    if (ref == "lt") {
      out += '<';
    } else if (ref == "gt") {
      out += '>';
    } else if (ref == "amp") {
      out += '&';
    } else if (ref == "quot") {
      out += '"';
    } else if (ref == "apos") {
      out += '\'';
    } else if (ref.size() >= 2 && ref[0] == '#') {
      bool hex = ref[1] == 'x' || ref[1] == 'X';
      std::string_view digits = ref.substr(hex ? 2 : 1);
      if (digits.empty()) return SetError("empty character reference");
      std::uint32_t cp = 0;
      for (char c : digits) {
        int v;
        if (c >= '0' && c <= '9') {
          v = c - '0';
        } else if (hex && c >= 'a' && c <= 'f') {
          v = c - 'a' + 10;
        } else if (hex && c >= 'A' && c <= 'F') {
          v = c - 'A' + 10;
        } else {
          return SetError("bad character reference");
        }
        cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(v);
        if (cp > 0x10FFFF) return SetError("character reference out of range");
      }
      if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return SetError("character reference to an invalid code point");
      }
      AppendUtf8(out, cp);
    } else {
      return SetError("unknown entity &" + std::string(ref) + ";");
    }
    pos_ = semi + 1;
    return true;
  }

  bool ParseAttributeValue(std::string& value) {
    if (AtEnd() || (Peek() != '"' && Peek() != '\'')) return SetError("expected a quoted value");
    char quote = Peek();
    ++pos_;
    while (true) {
      if (AtEnd()) return SetError("unterminated attribute value");
      char c = Peek();
      if (c == quote) {
        ++pos_;
        return true;
      }
      if (c == '<') return SetError("'<' in attribute value");
      if (c == '&') {
        if (!ParseReference(value)) return false;
      } else {
        value += c;
        ++pos_;
      }
    }
  }

  bool ParseElement(XmlElement& element, int depth) {
    if (depth >= kMaxDepth) return SetError("elements nested too deeply");
    ++pos_;  // '<'
    std::string qname;
    if (!ParseName(qname)) return false;
    element.name.assign(LocalName(qname));
    // Attributes.
    while (true) {
      std::size_t before = pos_;
      SkipSpace();
      if (AtEnd()) return SetError("unterminated start tag");
      if (StartsWith("/>")) {
        pos_ += 2;
        return true;
      }
      if (Peek() == '>') {
        ++pos_;
        break;
      }
      if (pos_ == before) return SetError("expected whitespace before an attribute");
      std::string attr_name;
      if (!ParseName(attr_name)) return false;
      SkipSpace();
      if (AtEnd() || Peek() != '=') return SetError("expected '=' after attribute name");
      ++pos_;
      SkipSpace();
      std::string value;
      if (!ParseAttributeValue(value)) return false;
      // Namespace declarations carry no data for us: names are matched on their local part.
      if (attr_name == "xmlns" || attr_name.rfind("xmlns:", 0) == 0) continue;
      element.attributes.emplace_back(std::string(LocalName(attr_name)), std::move(value));
    }
    // Content.
    while (true) {
      if (AtEnd()) return SetError("unterminated element <" + qname + ">");
      char c = Peek();
      if (c == '<') {
        if (StartsWith("</")) {
          pos_ += 2;
          std::string end_name;
          if (!ParseName(end_name)) return false;
          if (end_name != qname) {
            return SetError("</" + end_name + "> does not close <" + qname + ">");
          }
          SkipSpace();
          if (AtEnd() || Peek() != '>') return SetError("expected '>' in end tag");
          ++pos_;
          return true;
        }
        if (StartsWith("<!--")) {
          if (!SkipComment()) return false;
        } else if (StartsWith("<![CDATA[")) {
          pos_ += 9;
          auto end = doc_.find("]]>", pos_);
          if (end == std::string_view::npos) return SetError("unterminated CDATA section");
          element.text.append(doc_.substr(pos_, end - pos_));
          pos_ = end + 3;
        } else if (StartsWith("<?")) {
          if (!SkipPast("?>")) return SetError("unterminated processing instruction");
        } else if (StartsWith("<!")) {
          return SetError("declarations are not allowed inside elements");
        } else {
          element.children.emplace_back();
          if (!ParseElement(element.children.back(), depth + 1)) return false;
        }
      } else if (c == '&') {
        if (!ParseReference(element.text)) return false;
      } else {
        std::size_t start = pos_;
        while (!AtEnd() && Peek() != '<' && Peek() != '&') ++pos_;
        element.text.append(doc_.substr(start, pos_ - start));
      }
    }
  }

  std::string_view doc_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace

const XmlElement* XmlElement::Child(std::string_view child_name) const {
  for (const auto& child : children) {
    if (child.name == child_name) return &child;
  }
  return nullptr;
}

std::vector<const XmlElement*> XmlElement::Children(std::string_view child_name) const {
  std::vector<const XmlElement*> out;
  for (const auto& child : children) {
    if (child.name == child_name) out.push_back(&child);
  }
  return out;
}

std::string XmlElement::ChildText(std::string_view child_name) const {
  const XmlElement* child = Child(child_name);
  return child ? child->text : std::string();
}

const XmlElement* XmlElement::Find(std::string_view wanted) const {
  if (name == wanted) return this;
  for (const auto& child : children) {
    if (const XmlElement* found = child.Find(wanted)) return found;
  }
  return nullptr;
}

Result<XmlElement> ParseXml(std::string_view document) { return Parser(document).ParseDocument(); }

std::string XmlEscape(std::string_view text, XmlEscapeFor target) {
  const bool quotes = target == XmlEscapeFor::kAttribute;
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += quotes ? "&quot;" : "\"";
        break;
      case '\'':
        out += quotes ? "&apos;" : "'";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace spotgrid
