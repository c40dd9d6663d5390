// The ETag helper (api/etag.h) on its own: tags and If-None-Match as RFC 9110 has them.
#include "api/etag.h"

#include <gtest/gtest.h>

#include <set>

namespace ordertrace::api {
namespace {

TEST(ETagTest, TagsDifferByEveryPartAndTheTarget) {
  const std::string a = MakeETag({1, 2}, "/api/v1/orders?stuck=true");
  EXPECT_EQ(a.size(), 34u);
  EXPECT_EQ(a.front(), '"');
  EXPECT_EQ(a.back(), '"');
  EXPECT_EQ(a, MakeETag({1, 2}, "/api/v1/orders?stuck=true"));  // stable within a process
  std::set<std::string> tags = {a};
  for (const std::string& t :
       {MakeETag({1, 3}, "/api/v1/orders?stuck=true"),
        MakeETag({2, 2}, "/api/v1/orders?stuck=true"),
        MakeETag({1, 2}, "/api/v1/orders?stuck=false"),
        MakeETag({1, 2, 0}, "/api/v1/orders?stuck=true"),
        MakeETag({1}, "/api/v1/orders?stuck=true"), MakeETag({1, 2}, "/api/v1/orders/A")}) {
    EXPECT_TRUE(tags.insert(t).second) << t;
  }
  net::HttpRequest req;
  req.path = "/api/v1/orders/A";
  req.query = "include=";
  EXPECT_EQ(MakeETag({4}, req), MakeETag({4}, "/api/v1/orders/A?include="));
}

TEST(ETagTest, IfNoneMatchListsWeakTagsAndStar) {
  const std::string tag = MakeETag({7}, "/x");
  EXPECT_TRUE(IfNoneMatchMatches(tag, tag));
  EXPECT_TRUE(IfNoneMatchMatches(" " + tag + " ", tag));
  EXPECT_TRUE(IfNoneMatchMatches("W/" + tag, tag));  // weak comparison
  EXPECT_TRUE(IfNoneMatchMatches("\"a\", W/\"b\",\t" + tag, tag));
  EXPECT_TRUE(IfNoneMatchMatches("*", tag));
  EXPECT_FALSE(IfNoneMatchMatches("", tag));
  EXPECT_FALSE(IfNoneMatchMatches("\"a\", \"b\"", tag));
  EXPECT_FALSE(IfNoneMatchMatches(tag.substr(1, 32), tag));  // unquoted
  EXPECT_FALSE(IfNoneMatchMatches("w/" + tag, tag));         // W/ is case-sensitive
  EXPECT_FALSE(IfNoneMatchMatches("\"\"", tag));
  EXPECT_FALSE(IfNoneMatchMatches(",,,", tag));
  EXPECT_FALSE(IfNoneMatchMatches(tag, "not quoted"));
}

TEST(ETagTest, AnswerNotModifiedSetsTheHeadersAndA304) {
  const std::string tag = MakeETag({1}, "/s");
  net::HttpRequest req;
  net::HttpResponse res;
  EXPECT_FALSE(AnswerNotModified(req, res, tag));
  EXPECT_EQ(res.status, 200);
  ASSERT_EQ(res.headers.size(), 2u);
  EXPECT_EQ(res.headers[0], (std::pair<std::string, std::string>("ETag", tag)));
  EXPECT_EQ(res.headers[1], (std::pair<std::string, std::string>("Cache-Control", "no-cache")));
  req.headers.emplace_back("if-none-match", "W/" + tag);
  net::HttpResponse not_modified;
  not_modified.body = "x";
  EXPECT_TRUE(AnswerNotModified(req, not_modified, tag));
  EXPECT_EQ(not_modified.status, 304);
  EXPECT_TRUE(not_modified.body.empty());
  EXPECT_TRUE(not_modified.content_type.empty());
}

}  // namespace
}  // namespace ordertrace::api
