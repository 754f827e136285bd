// The one Base64 and hex implementation (common/encoding.h): RFC 4648 test
// vectors, strict refusal of malformed input, and the padding rules callers
// choose between.
#include "common/encoding.h"

#include <gtest/gtest.h>

#include <string>

namespace sb {
namespace {

TEST(Base64Test, EncodesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode(std::string("\xff\xfe\x00", 3)), "//4A");
}

TEST(Base64Test, RoundTripsEveryLengthAndByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= all.size(); n += 7) {
    auto back = Base64Decode(Base64Encode(all.substr(0, n)), Base64Padding::kRequired);
    ASSERT_TRUE(back.ok()) << n;
    EXPECT_EQ(*back, all.substr(0, n));
  }
}

TEST(Base64Test, RefusesMalformedInputWithoutQuotingIt) {
  for (const char* bad : {"Zm9v!mFy", "Zm8=x", "Z", "Zm9vY===", "Zg=a", "Zm\n9v"}) {
    auto r = Base64Decode(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().message().find(bad), std::string::npos) << r.status().ToString();
  }
}

TEST(Base64Test, PaddingIsOptionalUnlessRequired) {
  auto loose = Base64Decode("Zm8");
  ASSERT_TRUE(loose.ok());
  EXPECT_EQ(*loose, "fo");
  EXPECT_EQ(Base64Decode("Zm8", Base64Padding::kRequired).status().code(), StatusCode::kInvalidArgument);
  auto strict = Base64Decode("Zm8=", Base64Padding::kRequired);
  ASSERT_TRUE(strict.ok());
  EXPECT_EQ(*strict, "fo");
}

TEST(HexTest, RoundTripsAndAcceptsEitherCase) {
  EXPECT_EQ(HexEncode(std::string("\x00\x7f\xab\xff", 4)), "007fabff");
  auto back = HexDecode("007FabFF");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, std::string("\x00\x7f\xab\xff", 4));
  EXPECT_EQ(HexDecode("abc").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(HexDecode("zz").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(HexDecode("+1").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sb
