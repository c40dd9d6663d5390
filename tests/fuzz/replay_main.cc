// The main() of the fuzz targets' replay binaries (<target>_fuzz_replay): built with any
// compiler, without libFuzzer, it feeds LLVMFuzzerTestOneInput every file given on the command
// line (or every file of a directory given), and every prefix of each, so that ctest replays the
// checked-in corpora (tests/fuzz/corpus/<target>/) in the GCC and ASan builds.  A failing input
// aborts (or trips a sanitizer) like it would under libFuzzer.
//
// Thread-safety: a program's main; single-threaded.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  size_t runs = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else {
      files.push_back(p);
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      // A copy of exactly the input's size, so ASan sees a read past its end.
      std::vector<uint8_t> copy(bytes.begin(), bytes.end());
      LLVMFuzzerTestOneInput(copy.data(), copy.size());
      ++runs;
      // Every prefix too: truncation is the commonest real-world corruption.
      for (size_t n = 0; n < bytes.size(); n += 1 + bytes.size() / 64) {
        std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
        LLVMFuzzerTestOneInput(prefix.data(), prefix.size());
        ++runs;
      }
    }
  }
  std::printf("%s: %zu inputs, no failure\n", argc > 0 ? argv[0] : "replay", runs);
  return runs > 0 ? 0 : 1;
}
