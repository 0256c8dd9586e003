// The XML reader: what AWS responses need, and nothing that would let a document reach out
// (no DTDs, no external entities).
#include "spotgrid/aws/xml.h"

#include <gtest/gtest.h>

namespace spotgrid {
namespace {

TEST(XmlTest, ParsesNestedElementsAndStripsNamespaces) {
  Result<XmlElement> doc = ParseXml(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>bucket</Name><IsTruncated>false</IsTruncated>"
      "<Contents><Key>a.txt</Key><Size>1</Size></Contents>"
      "<Contents><Key>b.txt</Key><Size>22</Size></Contents>"
      "<s3:CommonPrefixes xmlns:s3=\"urn:x\"><s3:Prefix>dir/</s3:Prefix></s3:CommonPrefixes>"
      "</ListBucketResult>");
  ASSERT_TRUE(doc.ok()) << doc.error().ToString();
  EXPECT_EQ(doc->name, "ListBucketResult");
  EXPECT_TRUE(doc->attributes.empty());
  EXPECT_EQ(doc->ChildText("Name"), "bucket");
  EXPECT_EQ(doc->ChildText("Missing"), "");
  auto contents = doc->Children("Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(contents[1]->ChildText("Key"), "b.txt");
  EXPECT_EQ(contents[1]->ChildText("Size"), "22");
  ASSERT_NE(doc->Find("Prefix"), nullptr);
  EXPECT_EQ(doc->Find("Prefix")->text, "dir/");
  EXPECT_EQ(doc->Child("CommonPrefixes")->name, "CommonPrefixes");
  EXPECT_EQ(doc->Find("Nope"), nullptr);
}

TEST(XmlTest, DecodesEntitiesCharacterReferencesAndCdata) {
  Result<XmlElement> doc = ParseXml(
      "<r><t>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;</t>"
      "<n>&#65;&#x42;&#xe9;&#x1F600;</n>"
      "<c><![CDATA[<not> &amp; a tag]]>tail</c>"
      "<ws>  two  spaces  </ws></r>");
  ASSERT_TRUE(doc.ok()) << doc.error().ToString();
  EXPECT_EQ(doc->ChildText("t"), "a <b> & \"c\" 'd'");
  EXPECT_EQ(doc->ChildText("n"), "AB\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(doc->ChildText("c"), "<not> &amp; a tagtail");
  EXPECT_EQ(doc->ChildText("ws"), "  two  spaces  ");
}

TEST(XmlTest, ReadsAttributesAndSelfClosingElements) {
  Result<XmlElement> doc =
      ParseXml("<r a='1' b=\"x &amp; y\" xsi:type=\"CanonicalUser\"><e/><e x='2' /></r>");
  ASSERT_TRUE(doc.ok()) << doc.error().ToString();
  ASSERT_EQ(doc->attributes.size(), 3u);
  EXPECT_EQ(doc->attributes[1].second, "x & y");
  EXPECT_EQ(doc->attributes[2].first, "type");
  ASSERT_EQ(doc->Children("e").size(), 2u);
  EXPECT_EQ(doc->Children("e")[1]->attributes.at(0).second, "2");
}

TEST(XmlTest, SkipsCommentsAndProcessingInstructions) {
  Result<XmlElement> doc = ParseXml(
      "\xEF\xBB\xBF  <?xml version=\"1.0\"?><!-- before --><r><!-- in <x> -->"
      "<?pi data?><a>1</a></r><!-- after -->\n");
  ASSERT_TRUE(doc.ok()) << doc.error().ToString();
  EXPECT_EQ(doc->children.size(), 1u);
  EXPECT_EQ(doc->ChildText("a"), "1");
}

TEST(XmlTest, RefusesDtdsAndUnknownEntities) {
  Result<XmlElement> xxe = ParseXml(
      "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
      "<r>&x;</r>");
  ASSERT_FALSE(xxe.ok());
  EXPECT_EQ(xxe.error().code, "MalformedXml");
  EXPECT_FALSE(ParseXml("<r>&x;</r>").ok());
  EXPECT_FALSE(ParseXml("<r>&#0;</r>").ok());
  EXPECT_FALSE(ParseXml("<r>&#xD800;</r>").ok());
  EXPECT_FALSE(ParseXml("<r>&#x110000;</r>").ok());
}

TEST(XmlTest, RejectsMalformedDocuments) {
  for (const char* bad :
       {"", "   ", "text", "<r>", "<r></s>", "<r><a></r></a>", "<r a=1></r>", "<r></r><r></r>",
        "<r></r>junk", "<r><![CDATA[x</r>", "<r><!-- x</r>", "<r a='1'b='2'/>", "<r a='<'/>"}) {
    EXPECT_FALSE(ParseXml(bad).ok()) << bad;
  }
}

TEST(XmlTest, DeepNestingIsRejectedInsteadOfExhaustingTheStack) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  EXPECT_FALSE(ParseXml(deep).ok());
  std::string ok;
  for (int i = 0; i < 100; ++i) ok += "<a>";
  for (int i = 0; i < 100; ++i) ok += "</a>";
  EXPECT_TRUE(ParseXml(ok).ok());
}

TEST(XmlTest, EscapeRoundTripsThroughTheParser) {
  std::string text = "a<b>&\"c\"'d' \xC3\xA9";
  EXPECT_EQ(XmlEscape("<&>\"'"), "&lt;&amp;&gt;&quot;&apos;");
  Result<XmlElement> doc = ParseXml("<k v=\"" + XmlEscape(text) + "\">" + XmlEscape(text) + "</k>");
  ASSERT_TRUE(doc.ok()) << doc.error().ToString();
  EXPECT_EQ(doc->text, text);
  EXPECT_EQ(doc->attributes.at(0).second, text);
}

TEST(XmlTest, EscapeForTextKeepsQuotesAndKeepsCarriageReturns) {
  EXPECT_EQ(XmlEscape("\"etag\" it's <a&b>", XmlEscapeFor::kText), "\"etag\" it's &lt;a&amp;b&gt;");
  std::string key = "line1\r\nline2\r";
  EXPECT_EQ(XmlEscape(key, XmlEscapeFor::kText), "line1&#13;\nline2&#13;");
  Result<XmlElement> doc = ParseXml("<Key>" + XmlEscape(key, XmlEscapeFor::kText) + "</Key>");
  ASSERT_TRUE(doc.ok()) << doc.error().ToString();
  EXPECT_EQ(doc->text, key);
}

}  // namespace
}  // namespace spotgrid
