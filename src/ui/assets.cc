#include "ui/assets.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

#include "auth/session.h"
#include "common/gzip.h"
#include "common/text_format.h"

namespace ordertrace::ui {
namespace {

std::string Extension(std::string_view path) {
  const size_t slash = path.rfind('/');
  const size_t dot = path.rfind('.');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) return "";
  return AsciiLower(path.substr(dot + 1));
}

// Text-like types that gzip well; images and fonts are compressed already.
bool Compressible(std::string_view path) {
  const std::string ext = Extension(path);
  for (const char* e :
       {"html", "js", "mjs", "css", "json", "svg", "txt", "map", "webmanifest", "wasm"}) {
    if (ext == e) return true;
  }
  return false;
}

}  // namespace

std::string ContentTypeOf(std::string_view path) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {"html", "text/html; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"webmanifest", "application/manifest+json"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"avif", "image/avif"},
      {"ico", "image/x-icon"},
      {"woff2", "font/woff2"},
      {"woff", "font/woff"},
      {"ttf", "font/ttf"},
      {"otf", "font/otf"},
      {"wasm", "application/wasm"},
      {"txt", "text/plain; charset=utf-8"},
  };
  const std::string ext = Extension(path);
  for (const auto& [e, type] : kTypes) {
    if (ext == e) return type;
  }
  return "application/octet-stream";
}

bool IsServableName(std::string_view path) {
  if (path.empty()) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    for (char c : segment) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

UiFile MakeUiFile(std::string path, std::string body, std::string sha256_hex, std::string gzip) {
  UiFile f;
  f.content_type = ContentTypeOf(path);
  if (sha256_hex.empty()) sha256_hex = auth::Sha256Hex(body);
  f.etag = "\"" + sha256_hex + "\"";
  f.gzip_etag = "\"" + sha256_hex + "-gz\"";
  if (gzip.empty() && Compressible(path) && body.size() > 256) {
    auto compressed = GzipCompress(body, 9);
    if (compressed.ok() && compressed->size() < body.size()) gzip = std::move(compressed).value();
  }
  f.gzip = std::move(gzip);
  f.path = std::move(path);
  f.body = std::move(body);
  return f;
}

Result<std::shared_ptr<const UiAssets>> UiAssets::Create(std::vector<UiFile> files,
                                                         std::string source) {
  std::shared_ptr<UiAssets> a(new UiAssets());
  a->source_ = std::move(source);
  for (UiFile& f : files) {
    a->total_bytes_ += f.body.size() + f.gzip.size();
    std::string key = f.path;
    a->files_.insert_or_assign(std::move(key), std::move(f));
  }
  auto index = a->files_.find("index.html");
  if (index == a->files_.end()) {
    return Status::InvalidArgument(a->source_ + " has no index.html (not a built web UI)");
  }
  a->index_ = &index->second;
  return std::shared_ptr<const UiAssets>(std::move(a));
}

const UiFile* UiAssets::Find(std::string_view path) const {
  auto it = files_.find(path);
  return it == files_.end() ? nullptr : &it->second;
}

Result<std::shared_ptr<const UiAssets>> LoadUiDir(const std::string& dir, uint64_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::InvalidArgument("ui.dir " + dir + " is not a directory");
  }
  if (!fs::is_regular_file(fs::path(dir) / "index.html", ec)) {
    return Status::InvalidArgument("ui.dir " + dir +
                                   " has no index.html (expected the output of ui/build)");
  }
  std::vector<UiFile> files;
  uint64_t total = 0;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return Status::InvalidArgument("ui.dir " + dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Status::InvalidArgument("ui.dir " + dir + ": " + ec.message());
    const fs::file_status st = it->symlink_status(ec);
    if (ec || !fs::is_regular_file(st)) continue;  // directories, links, devices
    const std::string rel = it->path().lexically_relative(dir).generic_string();
    if (!IsServableName(rel)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      return Status::InvalidArgument("ui.dir: cannot read " + it->path().string());
    }
    total += body.size();
    if (total > max_bytes) {
      return Status::InvalidArgument("ui.dir " + dir + " holds more than " +
                                     std::to_string(max_bytes >> 20) +
                                     " MiB (not a built web UI?)");
    }
    files.push_back(MakeUiFile(rel, std::move(body)));
  }
  return UiAssets::Create(std::move(files), dir);
}

std::shared_ptr<const UiAssets> EmbeddedUi(const EmbeddedUiTable& table) {
  if (!table.built_in) return nullptr;
  std::vector<UiFile> files;
  files.reserve(table.count);
  for (size_t i = 0; i < table.count; ++i) {
    const EmbeddedUiFile& e = table.files[i];
    std::string gzip;
    if (e.gzip != nullptr) gzip.assign(reinterpret_cast<const char*>(e.gzip), e.gzip_size);
    files.push_back(MakeUiFile(e.path, std::string(reinterpret_cast<const char*>(e.data), e.size),
                               e.sha256, std::move(gzip)));
  }
  auto assets = UiAssets::Create(std::move(files), "embedded");
  return assets.ok() ? std::move(assets).value() : nullptr;
}

std::shared_ptr<const UiAssets> EmbeddedUi() {
  static const std::shared_ptr<const UiAssets> kEmbedded = EmbeddedUi(EmbeddedUiFiles());
  return kEmbedded;
}

}  // namespace ordertrace::ui
