// Fuzz target for the web UI's routes (src/ui/ui_routes.h): the input is split at newlines into
// the request path, Accept-Encoding and If-None-Match.  Whatever they hold, the answer is a
// redirect, a 304, a refusal (400/404) or one of the UI's own files; an asset path never gets
// index.html, a refused or missing file never gets a file's bytes, and every answer carries the
// Content-Security-Policy.
//
// Corpus: tests/fuzz/corpus/ui_request.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ui/assets.h"
#include "ui/ui_routes.h"

namespace {

const std::shared_ptr<const ordertrace::ui::UiAssets>& Assets() {
  static const std::shared_ptr<const ordertrace::ui::UiAssets> kAssets = [] {
    std::vector<ordertrace::ui::UiFile> files;
    files.push_back(
        ordertrace::ui::MakeUiFile("index.html", "<!doctype html>INDEX" + std::string(400, ' ')));
    files.push_back(ordertrace::ui::MakeUiFile("assets/app-1.js", std::string(2000, 'j')));
    files.push_back(ordertrace::ui::MakeUiFile("favicon.svg", "<svg/>"));
    return ordertrace::ui::UiAssets::Create(std::move(files), "fuzz").value();
  }();
  return kAssets;
}

std::string_view NextLine(std::string_view* in) {
  const size_t nl = in->find('\n');
  std::string_view line = in->substr(0, nl);
  in->remove_prefix(nl == std::string_view::npos ? in->size() : nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ordertrace::net::HttpRequest req;
  req.method = "GET";
  req.path = "/ui/" + std::string(NextLine(&in));
  req.headers.emplace_back("accept-encoding", std::string(NextLine(&in)));
  req.headers.emplace_back("if-none-match", std::string(NextLine(&in)));
  ordertrace::net::HttpResponse res;
  static const ordertrace::net::HttpHandler handler = [] {
    ordertrace::ui::UiRouteOptions o;
    o.assets = Assets();
    return ordertrace::ui::UiHandler(std::move(o));
  }();
  handler(req, res);

  bool csp = false;
  for (const auto& [name, value] : res.headers) {
    if (name == "Content-Security-Policy" && value == ordertrace::ui::kContentSecurityPolicy) {
      csp = true;
    }
  }
  if (!csp) std::abort();
  const bool index = res.body.find("INDEX") != std::string::npos;
  switch (res.status) {
    case 200:
      if (req.path.starts_with("/ui/assets/") && index) std::abort();
      break;
    case 302:
    case 304:
    case 400:
    case 404:
      if (index || res.body.find("jjjj") != std::string::npos) std::abort();
      break;
    default:
      std::abort();
  }
  return 0;
}
