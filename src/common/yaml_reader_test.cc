#include "common/yaml_reader.h"

#include <gtest/gtest.h>

namespace ordertrace {
namespace {

std::string Message(const Status& s) { return s.message(); }

TEST(YamlReader, InvalidYamlNamesTheLine) {
  YamlReader r("f.yaml");
  auto root = r.Load("a: 1\nb: [\n");
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(Message(root.status()).rfind("f.yaml:", 0), 0u) << root.status().message();
  EXPECT_NE(Message(root.status()).find("invalid YAML: "), std::string::npos);
}

TEST(YamlReader, EntriesInDocumentOrderWithLines) {
  YamlReader r("f.yaml");
  auto root = r.Load("a: 1\nb:\n  c: x\n");
  ASSERT_TRUE(root.ok());
  std::vector<YamlEntry> entries;
  ASSERT_TRUE(r.Entries(*root, "", {"a", "b"}, &entries).ok());
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].key, "a");
  EXPECT_EQ(entries[0].line, 1);
  EXPECT_EQ(entries[1].key, "b");
  EXPECT_EQ(entries[1].line, 2);
  EXPECT_EQ(r.Scalar(entries[0], "a").value(), "1");
  EXPECT_EQ(Message(r.Scalar(entries[1], "b").status()),
            "f.yaml:2: b: expected a single value, got a mapping");
}

TEST(YamlReader, RefusesDuplicateUnknownAndNonPlainKeys) {
  YamlReader r("f.yaml");
  std::vector<YamlEntry> entries;
  auto dup = r.Load("s:\n  a: 1\n  a: 2\n");
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(Message(r.Entries((*dup)["s"], "s", {}, &entries)),
            "f.yaml:3: s.a: duplicate key (first at line 2)");
  auto unknown = r.Load("levle: 1\n");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(Message(r.Entries(*unknown, "", {"level", "format"}, &entries)),
            "f.yaml:1: levle: unknown key (did you mean 'level'?)");
  auto complex = r.Load("? [a, b]\n: 1\n");
  ASSERT_TRUE(complex.ok());
  EXPECT_EQ(Message(r.Entries(*complex, "top", {}, &entries)),
            "f.yaml:1: top: keys must be plain names");
}

TEST(YamlReader, ForEachStopsAtTheVisitorsError) {
  YamlReader r("f.yaml");
  auto root = r.Load("a: 1\nb: 2\nc: 3\n");
  ASSERT_TRUE(root.ok());
  std::vector<std::string> seen;
  Status s = r.ForEach(*root, "", [&](const YamlEntry& e) {
    seen.push_back(e.key);
    return e.key == "b" ? r.Error(e.line, e.key, "no") : Status::Ok();
  });
  EXPECT_EQ(Message(s), "f.yaml:2: b: no");
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Message(r.Scalar(YamlEntry{"k", YAML::Node(), 4}, "k").status()),
            "f.yaml:4: k: expected a value");
}

}  // namespace
}  // namespace ordertrace
