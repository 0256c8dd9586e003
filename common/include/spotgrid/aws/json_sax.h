// A strict, fast JSON reader that reports what it reads to a handler (SAX style), for
// responses where only a few members matter and a nlohmann::json DOM (or nlohmann's own SAX
// lexer, which copies the text into token buffers byte by byte) would cost more than the
// HTTP call that brought them.
//
// It accepts exactly what nlohmann::json::parse accepts (RFC 8259: one value, optional UTF-8
// byte order mark, no comments, strings of valid UTF-8 with valid escapes, numbers that do
// not overflow a double), so a caller that switches to it keeps rejecting the same malformed
// bodies.
//
// Thread-safety: stateless; a handler is used by one call at a time.
#pragma once

#include <string>
#include <string_view>

namespace spotgrid {

class JsonSaxHandler {
 public:
  virtual ~JsonSaxHandler() = default;
  // Each returns false to stop the parse (which then fails).
  virtual bool Null() = 0;
  virtual bool Boolean(bool value) = 0;
  virtual bool Number(std::string_view token) = 0;  // the number as written
  // `value` holds the decoded string; the handler may move from it.
  virtual bool String(std::string& value) = 0;
  virtual bool Key(std::string& name) = 0;
  virtual bool StartObject() = 0;
  virtual bool EndObject() = 0;
  virtual bool StartArray() = 0;
  virtual bool EndArray() = 0;
};

// True when `text` is one well-formed JSON value and no handler call returned false.
bool ParseJsonSax(std::string_view text, JsonSaxHandler& handler);

}  // namespace spotgrid
