// ConninfoWith: a node's conninfo pointed at another node with the same
// credentials (how an agent on a standby reaches its primary).
#include <gtest/gtest.h>

#include "pg/connection.h"

namespace sb {
namespace {

TEST(ConninfoWithTest, ReplacesAndAddsKeywords) {
  auto c = ConninfoWith("host=10.0.0.2 port=5433 user=smartbackup dbname=postgres",
                        {{"host", "10.0.0.1"}, {"port", "5432"}, {"application_name", "smartbackup:standby:x:main"}});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_NE(c->find("host='10.0.0.1'"), std::string::npos) << *c;
  EXPECT_NE(c->find("port='5432'"), std::string::npos) << *c;
  EXPECT_NE(c->find("user='smartbackup'"), std::string::npos) << *c;
  EXPECT_NE(c->find("application_name='smartbackup:standby:x:main'"), std::string::npos) << *c;
  EXPECT_EQ(c->find("10.0.0.2"), std::string::npos) << *c;
}

TEST(ConninfoWithTest, AcceptsUrisQuotesValuesAndRemovesEmptyOverrides) {
  auto c = ConninfoWith("postgresql://u@h1:5433/db?hostaddr=10.0.0.2&password=it%27s",
                        {{"host", "h2"}, {"hostaddr", ""}});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_NE(c->find("host='h2'"), std::string::npos) << *c;
  EXPECT_EQ(c->find("hostaddr"), std::string::npos) << *c;
  EXPECT_NE(c->find("password='it\\'s'"), std::string::npos) << *c;
  EXPECT_NE(c->find("dbname='db'"), std::string::npos) << *c;
}

TEST(ConninfoWithTest, UnparsableConninfoQuotesNothingOfIt) {
  auto c = ConninfoWith("host=x password='secret", {{"host", "y"}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message().find("secret"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace sb
