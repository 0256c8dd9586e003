// core/digest against published test vectors (FIPS 180-2, RFC 1321, RFC 4231, RFC 4648).
#include "spotgrid/core/digest.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "spotgrid/core/file_io.h"
#include "support/test_env.h"

namespace spotgrid {
namespace {

TEST(DigestTest, Sha256MatchesFips180Vectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(DigestTest, HmacSha256MatchesRfc4231Case2) {
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(DigestTest, Md5MatchesRfc1321Vectors) {
  EXPECT_EQ(HexEncode(Md5("")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(HexEncode(Md5("abc")), "900150983cd24fb0d6963f7d28e17f72");
}

TEST(DigestTest, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
}

TEST(DigestTest, FileDigestsEqualTheDigestsOfTheBytes) {
  const testing::ScopedTempDir scoped("digest");
  const std::filesystem::path dir = scoped.path();
  std::string data;
  for (int i = 0; i < 200000; ++i) data.push_back(static_cast<char>(i * 7));
  ASSERT_TRUE(WriteFileAtomically(dir / "f", data).ok());
  EXPECT_EQ(*Md5HexOfFile((dir / "f").string()), HexEncode(Md5(data)));
  EXPECT_EQ(*Sha256HexOfFile((dir / "f").string(), 70001, 100000),
            Sha256Hex(std::string_view(data).substr(70001, 100000)));
  EXPECT_FALSE(Sha256HexOfFile((dir / "f").string(), data.size() - 10, 11).ok());
  EXPECT_FALSE(Md5HexOfFile((dir / "missing").string()).ok());
}

}  // namespace
}  // namespace spotgrid
