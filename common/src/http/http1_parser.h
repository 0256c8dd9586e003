// An incremental parser for one HTTP/1.1 response (private to spotgrid_common).
//
// The transport receives into its own buffer and hands the parser whatever bytes it has; the
// parser consumes what it can and says how much, so nothing is copied on the way in except
// header names and values (into the response's header vector) and body bytes (into the sink).
// Head lines are only consumed whole, so a caller keeps the unconsumed tail of its buffer and
// appends to it; body bytes are always consumed. It skips interim 1xx responses, frames the
// body by Content-Length, chunked transfer coding (extensions ignored, trailers added to the
// headers as curl does) or connection close, and knows which responses have no body (HEAD,
// 1xx, 204, 304). Any malformed input is an error; the caller closes the connection.
//
// Thread-safety: one parser belongs to one exchange on one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "spotgrid/http/http.h"

namespace spotgrid {

// Receives body bytes as they are decoded. The parser's status() and headers are final by the
// time the first call comes.
class Http1BodySink {
 public:
  virtual ~Http1BodySink() = default;
  // Returns false to abort parsing (e.g. a local write failed); the caller knows why.
  virtual bool OnBody(std::string_view data) = 0;
};

class Http1ResponseParser {
 public:
  // The most bytes a response head (status line and headers, trailers included) may have.
  static constexpr std::size_t kMaxHeadBytes = 64 * 1024;

  // `head_request`: the request was HEAD, so the response has no body whatever it says.
  // Headers are appended to `headers` (names lower-cased, optional whitespace trimmed).
  Http1ResponseParser(bool head_request, Headers* headers);

  // Consumes a prefix of `data` and returns its length (possibly 0 when a head line is not
  // complete yet), or -1 when the input is malformed or the sink refused a body piece
  // (error() says which). After done(), consumes nothing more.
  std::ptrdiff_t Feed(std::string_view data, Http1BodySink& sink);

  // The peer closed the connection: completes a body delimited by close; false (with error())
  // when the response was cut short.
  bool FinishAtEof();

  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  int status() const { return status_; }
  // Whether the connection may carry another exchange once done(): HTTP/1.1 unless the server
  // said `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`, never for a body
  // delimited by close.
  bool keep_alive() const { return keep_alive_; }
  // Why Feed/FinishAtEof failed ("" for a sink refusal).
  const std::string& error() const { return error_; }

 private:
  enum class State {
    kStatusLine,
    kHeaders,
    kBodyLength,  // `remaining_` bytes left
    kBodyUntilClose,
    kChunkSize,
    kChunkData,     // `remaining_` bytes of the chunk left
    kChunkDataEnd,  // the CRLF after a chunk's data
    kTrailers,
    kDone,
    kError,
  };

  // Parses one complete head line (without its line ending).
  bool StatusLine(std::string_view line);
  bool HeaderLine(std::string_view line);
  bool EndOfHead();
  bool ChunkSizeLine(std::string_view line);
  std::ptrdiff_t Fail(std::string message);

  bool head_request_;
  Headers* headers_;
  State state_ = State::kStatusLine;
  int status_ = 0;
  int minor_version_ = 1;
  bool keep_alive_ = true;
  std::uint64_t remaining_ = 0;
  std::size_t head_bytes_ = 0;  // bytes of the current head (or trailers) consumed so far
  std::string error_;
};

}  // namespace spotgrid
