// gzip compression of a request body (zlib), for the clients that send OTLP: the exporter that
// forwards upstream and the sample sender.
//
// Thread-safety: a free function with no shared state.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace ordertrace {

// `level` is zlib's 1 (fastest) .. 9 (smallest).  Internal on a zlib failure.
Result<std::string> GzipCompress(std::string_view in, int level);

}  // namespace ordertrace
