// How deep a JSON text nests, by a scan of its characters: the check before handing untrusted
// JSON (a token's claims, a key set, Jaeger's answers) to a parser, so that neither the parser's
// state nor a recursive consumer later (a destructor, dump()) grows with a hostile "[[[[...".
// The text need not be valid JSON; brackets inside strings do not count.
//
// Thread-safety: a pure function.
#pragma once

#include <string_view>

namespace ordertrace {

// Whether arrays and objects in `text` nest at most `max_depth` deep.
bool JsonNestingWithin(std::string_view text, int max_depth);

}  // namespace ordertrace
