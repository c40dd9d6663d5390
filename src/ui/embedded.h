// The web UI's files as compiled into the binary: a table generated from `ui/build`'s output by
// embed_ui.cmake (ORDERTRACE_UI=ON), or an empty one (embedded_off.cc, ORDERTRACE_UI=OFF).  The
// library that defines EmbeddedUiFiles() is chosen at link time (ot_ui_embedded), so a test can
// link its own table.
//
// Thread-safety: constant data.
#pragma once

#include <cstddef>

namespace ordertrace::ui {

struct EmbeddedUiFile {
  const char* path;           // relative to the build's out_dir, '/'-separated: "assets/x.js"
  const unsigned char* data;  // `size` bytes
  size_t size;
  const unsigned char* gzip;  // gzip of data when that is smaller, else null
  size_t gzip_size;
  const char* sha256;  // 64 lower-case hex digits of data
};

struct EmbeddedUiTable {
  bool built_in = false;  // false: built with ORDERTRACE_UI=OFF
  const EmbeddedUiFile* files = nullptr;
  size_t count = 0;
};

EmbeddedUiTable EmbeddedUiFiles();

}  // namespace ordertrace::ui
