// The web UI's files, held in memory: the build's out_dir (index.html + assets/ with hashed
// names) either compiled in (EmbeddedUi(), CMake option ORDERTRACE_UI) or read once from a
// directory at start (LoadUiDir, config ui.dir / `ordertrace serve --ui-dir`).  Each file carries
// its content type, a strong ETag (its SHA-256) and a gzip copy when that is smaller; nothing
// touches the file system after loading.
//
// Thread-safety: a UiAssets is immutable after creation; share it freely.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ui/embedded.h"

namespace ordertrace::ui {

struct UiFile {
  std::string path;          // relative, '/'-separated: "index.html", "assets/index-3f2a.js"
  std::string content_type;  // ContentTypeOf(path)
  std::string body;
  std::string gzip;       // "" when gzip would not be smaller (or the type does not compress)
  std::string etag;       // "\"<sha256 hex>\"" of body
  std::string gzip_etag;  // "\"<sha256 hex>-gz\"": the gzip copy is another representation
};

// The Content-Type for a file name, by its extension ("application/octet-stream" unknown).
std::string ContentTypeOf(std::string_view path);

// Whether `path` is a name the UI routes can serve: letters, digits, '.', '_', '-' and '/'
// separated segments, none empty, "." or "..".
bool IsServableName(std::string_view path);

class UiAssets {
 public:
  // InvalidArgument when `files` has no index.html.  `source` says where they came from
  // ("embedded", or the directory), for logs.
  static Result<std::shared_ptr<const UiAssets>> Create(std::vector<UiFile> files,
                                                        std::string source);

  const UiFile* Find(std::string_view path) const;  // exact path, nullptr when absent
  const UiFile& index() const { return *index_; }
  const std::string& source() const { return source_; }
  size_t file_count() const { return files_.size(); }
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  UiAssets() = default;
  std::map<std::string, UiFile, std::less<>> files_;
  const UiFile* index_ = nullptr;
  std::string source_;
  uint64_t total_bytes_ = 0;
};

// A UiFile from its bytes: content type, ETags and (for text-like types) the gzip copy.
// `sha256_hex` "" computes it; `gzip` "" computes it when the type compresses.
UiFile MakeUiFile(std::string path, std::string body, std::string sha256_hex = "",
                  std::string gzip = "");

// Reads every regular file under `dir` (symbolic links and names IsServableName refuses are
// skipped) into memory.  InvalidArgument naming the directory when it is not one, has no
// index.html, or holds more than `max_bytes` (a wrong directory, not a UI build).
Result<std::shared_ptr<const UiAssets>> LoadUiDir(const std::string& dir,
                                                  uint64_t max_bytes = uint64_t{256} << 20);

// The files compiled in (from `table`, by default the binary's own EmbeddedUiFiles()); null
// when built with ORDERTRACE_UI=OFF.
std::shared_ptr<const UiAssets> EmbeddedUi(const EmbeddedUiTable& table);
std::shared_ptr<const UiAssets> EmbeddedUi();

}  // namespace ordertrace::ui
