#include "ui/assets.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/gzip.h"

namespace ordertrace::ui {
namespace {

namespace fs = std::filesystem;

class UiDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ordertrace-ui-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& rel, const std::string& body) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel, std::ios::binary) << body;
  }
  fs::path dir_;
};

TEST(ContentTypeOf, KnownAndUnknownExtensions) {
  EXPECT_EQ(ContentTypeOf("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeOf("assets/index-3f2a.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeOf("assets/index-3f2a.CSS"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeOf("assets/logo.svg"), "image/svg+xml");
  EXPECT_EQ(ContentTypeOf("assets/font.woff2"), "font/woff2");
  EXPECT_EQ(ContentTypeOf("assets/x.map"), "application/json");
  EXPECT_EQ(ContentTypeOf("assets/noext"), "application/octet-stream");
  EXPECT_EQ(ContentTypeOf("a.dir/noext"), "application/octet-stream");
}

TEST(IsServableName, PlainNamesOnly) {
  EXPECT_TRUE(IsServableName("index.html"));
  EXPECT_TRUE(IsServableName("assets/index-3f_2a.js"));
  for (const char* bad :
       {"", "/x", "x/", "a//b", "../x", "a/../b", "./a", "a b", "a%2fb", "a\\b", "é.js"}) {
    EXPECT_FALSE(IsServableName(bad)) << bad;
  }
}

TEST_F(UiDirTest, LoadsFilesWithTypesETagsAndGzip) {
  const std::string js(4000, 'x');
  Write("index.html", "<!doctype html><title>t</title>");
  Write("assets/index-1.js", js);
  Write("assets/logo-2.png", std::string(1000, 'p'));
  auto assets = LoadUiDir(dir_.string());
  ASSERT_TRUE(assets.ok()) << assets.status().message();
  EXPECT_EQ((*assets)->file_count(), 3u);
  const UiFile* f = (*assets)->Find("assets/index-1.js");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->body, js);
  EXPECT_EQ(f->content_type, "text/javascript; charset=utf-8");
  ASSERT_FALSE(f->gzip.empty());
  std::string back;
  ASSERT_TRUE(Inflate(f->gzip, InflateFormat::kGzip, 1 << 20, "gzip", &back).ok());
  EXPECT_EQ(back, js);
  EXPECT_EQ(f->etag.size(), 66u);
  EXPECT_NE(f->etag, f->gzip_etag);
  // Images are compressed already; a tiny index.html does not shrink.
  EXPECT_TRUE((*assets)->Find("assets/logo-2.png")->gzip.empty());
  EXPECT_TRUE((*assets)->index().gzip.empty());
  EXPECT_EQ((*assets)->Find("index.html"), &(*assets)->index());
  EXPECT_EQ((*assets)->Find("assets/missing.js"), nullptr);
}

TEST_F(UiDirTest, RefusesADirectoryWithoutIndexHtml) {
  Write("assets/index-1.js", "x");
  auto assets = LoadUiDir(dir_.string());
  ASSERT_FALSE(assets.ok());
  EXPECT_NE(assets.status().message().find("index.html"), std::string::npos);
  EXPECT_FALSE(LoadUiDir((dir_ / "nope").string()).ok());
}

TEST_F(UiDirTest, RefusesAnOversizedDirectory) {
  Write("index.html", std::string(2000, 'i'));
  EXPECT_FALSE(LoadUiDir(dir_.string(), 1000).ok());
}

TEST_F(UiDirTest, SkipsSymbolicLinksAndOddNames) {
  Write("index.html", "<html></html>");
  Write("outside/secret.txt", "secret");
  Write("assets/odd name.js", "x");
  fs::create_symlink(dir_ / "outside" / "secret.txt", dir_ / "assets" / "link.txt");
  auto assets = LoadUiDir(dir_.string());
  ASSERT_TRUE(assets.ok());
  EXPECT_EQ((*assets)->Find("assets/link.txt"), nullptr);
  EXPECT_EQ((*assets)->Find("assets/odd name.js"), nullptr);
}

// The fixture out_dir (src/ui/CMakeLists.txt) embedded by embed_ui.cmake and linked into this
// test: the generated table serves the same bytes as the directory, with the same ETags, and its
// gzip copies inflate to the files.
TEST(EmbeddedUi, GeneratedTableMatchesTheDirectory) {
  std::shared_ptr<const UiAssets> embedded = EmbeddedUi();
  ASSERT_NE(embedded, nullptr);
  EXPECT_EQ(embedded->source(), "embedded");
  auto disk = LoadUiDir(ORDERTRACE_UI_FIXTURE);
  ASSERT_TRUE(disk.ok()) << disk.status().message();
  EXPECT_EQ(embedded->file_count(), 4u);
  EXPECT_EQ(embedded->file_count(), (*disk)->file_count());
  for (const char* path :
       {"index.html", "assets/index-3f2a9c.js", "assets/tiny-77aa.css", "favicon.svg"}) {
    const UiFile* e = embedded->Find(path);
    const UiFile* d = (*disk)->Find(path);
    ASSERT_NE(e, nullptr) << path;
    ASSERT_NE(d, nullptr) << path;
    EXPECT_EQ(e->body, d->body) << path;
    EXPECT_EQ(e->etag, d->etag) << path;
    EXPECT_EQ(e->content_type, d->content_type) << path;
    EXPECT_EQ(e->gzip.empty(), d->gzip.empty()) << path;
    if (!e->gzip.empty()) {
      std::string back;
      ASSERT_TRUE(Inflate(e->gzip, InflateFormat::kGzip, 1 << 20, "gzip", &back).ok()) << path;
      EXPECT_EQ(back, e->body) << path;
      EXPECT_LT(e->gzip.size(), e->body.size()) << path;
    }
  }
}

TEST(EmbeddedUi, NotBuiltInGivesNull) { EXPECT_EQ(EmbeddedUi(EmbeddedUiTable{}), nullptr); }

}  // namespace
}  // namespace ordertrace::ui
