// ORDERTRACE_UI=OFF: no web UI compiled in (ui.dir / --ui-dir can still serve one).
#include "ui/embedded.h"

namespace ordertrace::ui {

EmbeddedUiTable EmbeddedUiFiles() { return EmbeddedUiTable{}; }

}  // namespace ordertrace::ui
