// ParseJsonSax against nlohmann::json::parse, the reference it must match: the same texts
// accepted and rejected, the same values read.
#include "spotgrid/aws/json_sax.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace spotgrid {
namespace {

using nlohmann::json;

// Rebuilds a DOM from the events, to compare with json::parse.
class DomBuilder : public JsonSaxHandler {
 public:
  bool Null() override { return Put(nullptr); }
  bool Boolean(bool value) override { return Put(value); }
  bool Number(std::string_view token) override { return Put(json::parse(token)); }
  bool String(std::string& value) override { return Put(value); }
  bool Key(std::string& name) override {
    key_ = name;
    return true;
  }
  bool StartObject() override { return Open(json::object()); }
  bool EndObject() override { return Close(); }
  bool StartArray() override { return Open(json::array()); }
  bool EndArray() override { return Close(); }

  const json& root() const { return root_; }

 private:
  json* Place(json value) {
    if (open_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    json& top = *open_.back();
    if (top.is_array()) {
      top.push_back(std::move(value));
      return &top.back();
    }
    top[key_] = std::move(value);
    return &top[key_];
  }
  bool Put(json value) {
    Place(std::move(value));
    return true;
  }
  bool Open(json container) {
    open_.push_back(Place(std::move(container)));
    return true;
  }
  bool Close() {
    open_.pop_back();
    return true;
  }

  json root_;
  std::vector<json*> open_;
  std::string key_;
};

std::string Printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

// Same verdict as json::accept, and when accepted, the same document as json::parse.
void ExpectSameAsNlohmann(const std::string& text) {
  DomBuilder builder;
  bool ours = ParseJsonSax(text, builder);
  ASSERT_EQ(ours, json::accept(text)) << Printable(text);
  if (ours) {
    EXPECT_EQ(builder.root(), json::parse(text)) << Printable(text);
  }
}

TEST(JsonSaxTest, AcceptsAndRejectsTheEdgeCasesAsJsonParseDoes) {
  const std::vector<std::string> texts = {
      "", " ", "{}", " {} ", "{}x", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":}", "{1:2}", "[01]",
      "[-]", "[-0]", "[1.]", "[.5]", "[+1]", "[1e]", "[1e+]", "[1E-5]", "[-3.25e+10]", "[1e400]",
      "[-1e400]", "[1e-400]", "[18446744073709551615]", "[18446744073709551616]",
      "[-9223372036854775809]", "[" + std::string(400, '9') + "]", "[true,false,null]", "[tru]",
      "[nul]", "[nulll]", "[true false]", "\"x\"", "1",
      // A UTF-8 byte order mark may lead; a partial one may not.
      "\xef\xbb\xbf{}", "\xef\xbb{}", "\xef{}",
      // Escapes and surrogates.
      "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", "[\"\\x\"]", "[\"\\u0041\\u00e9\"]", "[\"\\u0000\"]",
      "[\"\\ud83d\\ude00\"]", "[\"\\ud83d\"]", "[\"\\ude00\"]", "[\"\\uD800\\u0041\"]",
      "[\"\\uDBFF\\uDFFF\"]", "[\"\\u12\"]", "[\"\\u12G4\"]",
      // Raw UTF-8: well-formed, overlong, surrogate, beyond U+10FFFF, truncated.
      "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]", "[\"\xc0\xaf\"]", "[\"\xe0\x80\xaf\"]",
      "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xf4\x8f\xbf\xbf\"]",
      "[\"\xf4\x8f\xbf\"]", "[\"\x80\"]", "[\"\xff\"]", "[\"\x7f\"]", "[\"\x01\"]",
      "[\"unterminated]",
      // A NUL byte where a token may start ends the text, as in nlohmann's lexer.
      std::string("[1]\0garbage", 11), std::string("[\"\0\"]", 5), std::string("[1\0]", 4),
      std::string("{\0}", 3)};
  for (const std::string& text : texts) ExpectSameAsNlohmann(text);
}

TEST(JsonSaxTest, RandomAndMutatedTextsGetTheSameVerdictAndValuesAsJsonParse) {
  std::mt19937_64 rng(20240601);  // fixed: the same texts every run
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const std::vector<std::string> atoms = {"0",
                                          "-0",
                                          "12.5",
                                          "1e5",
                                          "-3.25e+10",
                                          "1e400",
                                          "123456789012345678901234567890",
                                          "true",
                                          "false",
                                          "null",
                                          "\"\"",
                                          "\"abc\"",
                                          "\"a\\\"b\"",
                                          "\"\\u00e9\"",
                                          "\"\\ud83d\\ude00\"",
                                          "\"\\ud83d\"",
                                          "\"\xc3\xa9\"",
                                          "\"\xed\xa0\x80\"",
                                          "01",
                                          "1.",
                                          "-",
                                          "tru"};
  std::function<std::string(int)> gen = [&](int depth) -> std::string {
    int kind = pick(depth > 3 ? 1 : 3);
    if (kind == 0) return atoms[static_cast<std::size_t>(pick(static_cast<int>(atoms.size())))];
    std::string out(1, kind == 1 ? '[' : '{');
    for (int i = 0, n = pick(4); i < n; ++i) {
      if (i > 0) out += pick(2) ? "," : " , ";
      if (kind == 2) out += pick(2) ? "\"Id\":" : "\"k\" :";
      out += gen(depth + 1);
    }
    return out + (kind == 1 ? ']' : '}');
  };
  const char kPool[] = "{}[]\",:\\u0eE+-.9 \xc3\xa9\xef\xbb\xbf\xed";
  const std::string pool = std::string(kPool, sizeof kPool - 1) + '\0';
  for (int i = 0; i < 20000; ++i) {
    std::string text = gen(0);
    for (int m = pick(4); m > 0 && !text.empty(); --m) {
      std::size_t pos = rng() % text.size();
      char c = pool[static_cast<std::size_t>(pick(static_cast<int>(pool.size())))];
      switch (pick(3)) {
        case 0:
          text.insert(text.begin() + static_cast<std::ptrdiff_t>(pos), c);
          break;
        case 1:
          text.erase(pos, 1);
          break;
        default:
          text[pos] = c;
      }
    }
    ExpectSameAsNlohmann(text);
    if (HasFatalFailure()) return;
  }
}

class StopAtSecondString : public DomBuilder {
 public:
  bool String(std::string& value) override { return ++strings_ < 2 && DomBuilder::String(value); }

 private:
  int strings_ = 0;
};

TEST(JsonSaxTest, FailsWhenTheHandlerStopsIt) {
  StopAtSecondString handler;
  EXPECT_FALSE(ParseJsonSax(R"(["a","b","c"])", handler));
}

}  // namespace
}  // namespace spotgrid
