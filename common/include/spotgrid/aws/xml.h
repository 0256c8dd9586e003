// A small, namespace-agnostic XML reader for AWS responses (S3, EC2, Auto Scaling, errors).
//
// It parses elements, text, the five predefined entities, numeric character references and
// CDATA; attributes are read but namespaces are ignored (names are matched on their local
// part). It is not a general XML parser: no DTDs, no external entities (so no XXE).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spotgrid/core/status.h"

namespace spotgrid {

struct XmlElement {
  std::string name;  // local name, prefix stripped
  std::string text;  // concatenated character data directly inside this element
  std::vector<std::pair<std::string, std::string>> attributes;
  std::vector<XmlElement> children;

  // First direct child with this name, or nullptr.
  const XmlElement* Child(std::string_view name) const;
  // All direct children with this name.
  std::vector<const XmlElement*> Children(std::string_view name) const;
  // Text of the first direct child with this name, or "" when absent.
  std::string ChildText(std::string_view name) const;
  // Depth-first search for the first descendant (or self) with this name.
  const XmlElement* Find(std::string_view name) const;
};

Result<XmlElement> ParseXml(std::string_view document);

// Where escaped text goes. Quotes need escaping only inside attribute values; element text
// keeps them as they are (S3 ETags are sent with their quotes, as the SDKs send them).
enum class XmlEscapeFor { kAttribute, kText };

// Escapes '&', '<', '>' (and quotes for kAttribute). '\r' always becomes "&#13;": a receiving
// parser would normalise a literal CR to '\n', changing e.g. an S3 key.
std::string XmlEscape(std::string_view text, XmlEscapeFor target = XmlEscapeFor::kAttribute);

}  // namespace spotgrid
