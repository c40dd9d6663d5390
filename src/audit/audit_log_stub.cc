// TEMPORARY (branch signin only): lets ot_auth's tests link before the audit writer lands.
#include "audit/audit_log.h"

namespace ordertrace::audit {
struct AuditLog::Impl {};
AuditLog::~AuditLog() = default;
void AuditLog::Record(const AuditEvent&) {}
}  // namespace ordertrace::audit
