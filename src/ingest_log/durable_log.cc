#include "ingest_log/durable_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "common/log.h"

namespace ordertrace::ingest_log {
namespace {

// ---------------------------------------------------------------------------------------------
// CRC32C (Castagnoli).  Debian 12 packages no standalone crc32c library (only copies vendored
// inside other projects), so it is implemented here: SSE4.2's crc32 instruction when the CPU
// has it (checked at run time), otherwise slicing-by-8 tables.  Check value: "123456789" ->
// 0xE3069283.

constexpr uint32_t kCrc32cPoly = 0x82F63B78;  // reflected

struct Crc32cTables {
  uint32_t t[8][256];
};

constexpr Crc32cTables MakeCrc32cTables() {
  Crc32cTables tables{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCrc32cPoly : c >> 1;
    tables.t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) {
      const uint32_t prev = tables.t[s - 1][i];
      tables.t[s][i] = (prev >> 8) ^ tables.t[0][prev & 0xff];
    }
  }
  return tables;
}

constexpr Crc32cTables kCrc32c = MakeCrc32cTables();

uint32_t Crc32cSoftware(uint32_t crc, const unsigned char* p, size_t n) {
  crc = ~crc;
  while (n >= 8) {
    const uint32_t lo =
        crc ^ (uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24);
    crc = kCrc32c.t[7][lo & 0xff] ^ kCrc32c.t[6][(lo >> 8) & 0xff] ^
          kCrc32c.t[5][(lo >> 16) & 0xff] ^ kCrc32c.t[4][lo >> 24] ^ kCrc32c.t[3][p[4]] ^
          kCrc32c.t[2][p[5]] ^ kCrc32c.t[1][p[6]] ^ kCrc32c.t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = (crc >> 8) ^ kCrc32c.t[0][(crc ^ *p++) & 0xff];
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t crc, const unsigned char* p,
                                                          size_t n) {
  uint64_t c = ~crc;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}
#endif

uint32_t Crc32c(std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return Crc32cHardware(0, p, data.size());
#endif
  return Crc32cSoftware(0, p, data.size());
}

// ---------------------------------------------------------------------------------------------
// Little-endian encoding and the on-disk layout.

constexpr char kMagic[4] = {'O', 'T', 'Q', '1'};
constexpr size_t kHeaderBytes = 20;  // magic | length | crc32c | id
constexpr char kCursorMagic[4] = {'O', 'T', 'Q', 'C'};
constexpr size_t kCursorBytes = 16;  // magic | id | crc32c(magic, id)
// The forwarder's cursor keeps the forward queue's name, so its old directories open as logs.
std::string CursorName(const std::string& consumer) {
  return consumer == "forward" ? "cursor" : "cursor-" + consumer;
}
// The consumer of a cursor file name ("" when it is not one).
std::string ConsumerOfCursor(const std::string& file) {
  if (file == "cursor") return "forward";
  if (file.size() > 7 && file.compare(0, 7, "cursor-") == 0 &&
      file.find('.') == std::string::npos) {
    return file.substr(7);
  }
  return "";
}
bool ValidConsumerName(const std::string& name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}
constexpr const char* kLockName = "lock";
constexpr uint64_t kMaxPayload = std::numeric_limits<uint32_t>::max();

void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

struct RecordHeader {
  uint32_t length = 0;
  uint32_t crc = 0;
  uint64_t id = 0;
  bool magic_ok = false;
};

void EncodeHeader(char* out, uint32_t length, uint32_t crc, uint64_t id) {
  std::memcpy(out, kMagic, 4);
  PutU32(out + 4, length);
  PutU32(out + 8, crc);
  PutU64(out + 12, id);
}

RecordHeader DecodeHeader(const char* in) {
  RecordHeader h;
  h.magic_ok = std::memcmp(in, kMagic, 4) == 0;
  h.length = GetU32(in + 4);
  h.crc = GetU32(in + 8);
  h.id = GetU64(in + 12);
  return h;
}

std::string SegmentName(uint64_t first_id) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "seg-%020llu.log", static_cast<unsigned long long>(first_id));
  return buf;
}

// Parses `seg-<20 digits>.log`.
bool ParseSegmentName(const std::string& name, uint64_t* first_id) {
  if (name.size() != 4 + 20 + 4 || name.compare(0, 4, "seg-") != 0 ||
      name.compare(24, 4, ".log") != 0) {
    return false;
  }
  const char* begin = name.data() + 4;
  const char* end = begin + 20;
  if (!std::all_of(begin, end, [](char c) { return c >= '0' && c <= '9'; })) return false;
  auto [ptr, ec] = std::from_chars(begin, end, *first_id);
  return ec == std::errc() && ptr == end;
}

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// An owned file descriptor.  Shared so that a group-commit leader can fdatasync a segment
// outside the lock while the segment is rolled or deleted.
struct Fd {
  Fd(int f, std::string p) : fd(f), path(std::move(p)) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int fd;
  std::string path;  // for error messages
};

// Writes every byte of `iov_in` (at most 2 buffers) at `offset`; returns 0 or an errno.
int PWriteAll(int fd, const struct iovec* iov_in, int iovcnt, off_t offset) {
  std::array<struct iovec, 2> iov{};
  std::copy(iov_in, iov_in + iovcnt, iov.begin());
  int i = 0;
  while (i < iovcnt) {
    const ssize_t n = ::pwritev(fd, iov.data() + i, iovcnt - i, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    offset += n;
    size_t left = static_cast<size_t>(n);
    while (i < iovcnt && left >= iov[i].iov_len) {
      left -= iov[i].iov_len;
      ++i;
    }
    if (i < iovcnt) {
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
  }
  return 0;
}

// Reads exactly n bytes at `offset`; returns 0, an errno, or -1 at end of file.
int PReadAll(int fd, char* out, size_t n, off_t offset) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, out, n, offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return -1;
    out += r;
    n -= static_cast<size_t>(r);
    offset += r;
  }
  return 0;
}

int FsyncFd(int fd) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

int FdatasyncFd(int fd) {
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct DurableLog::Impl {
  struct Segment {
    uint64_t first_id = 0;  // from the file name
    uint64_t last_id = 0;   // the highest record id in it; 0 while empty
    uint64_t size = 0;      // bytes of whole records; the next record goes here
    std::string name;
    std::shared_ptr<Fd> fd;  // the write descriptor, only while this is the active segment
  };
  // One record some consumer still needs: where it is, not what it is (payloads stay on disk).
  struct Entry {
    uint64_t id;
    uint64_t offset;  // of the record header in the segment
    int64_t appended_unix_ms;
    uint64_t bytes_before;  // `appended_bytes` before this record (lag in bytes by subtraction)
    std::shared_ptr<Segment> segment;
    uint32_t length;  // payload bytes
  };
  // A consumer's position.  `acked_id` and `handed_id` change on its own thread, under `mu`;
  // the read descriptor is its thread's alone.
  struct ConsumerState {
    std::unique_ptr<Consumer> handle;
    uint64_t acked_id = 0;                  // persisted in its cursor
    uint64_t handed_id = 0;                 // the last record handed out (>= acked_id)
    std::shared_ptr<Segment> read_segment;  // the segment `read_fd` is open on
    int read_fd = -1;
  };

  LogOptions opt;
  std::filesystem::path dir;
  int dir_fd = -1;
  int lock_fd = -1;

  mutable std::mutex mu;
  std::condition_variable append_cv;    // group commit; the destructor waiting for appends
  std::condition_variable consumer_cv;  // Next(): a record became durable, or Close()
  bool closed = false;
  int active_calls = 0;  // Append() calls in progress

  std::deque<std::shared_ptr<Segment>> segments;  // oldest first; the active one last
  std::shared_ptr<Segment> active;                // appended to; null until the first Append
  std::deque<Entry> entries;                      // records some consumer needs, oldest first
  uint64_t bytes = 0;                             // header + payload of `entries`
  uint64_t appended_bytes = 0;                    // header + payload of every record since Open
  uint64_t next_id = 1;
  uint64_t recovered_id = 0;       // the last record found on disk by Open(): when the ones up
                                   // to it were appended is not known (appended_unix_ms is the
                                   // segment's modification time)
  uint64_t written_id = 0;         // the last record written
  uint64_t durable_id = 0;         // every record <= this is synced (or fsync is off)
  uint64_t taken_back_upto = 0;    // records in (durable_id, this] were taken back (sync failed)
  std::shared_ptr<Fd> written_fd;  // the segment holding `written_id`
  bool syncing = false;            // a group-commit leader is in fdatasync
  Status sticky_error;             // the log cannot go on until a restart (see TakeBack())
  uint64_t syncs = 0;
  uint64_t appends = 0;
  Refusals refused;
  // The metrics' counters (RegisterMetrics), bumped with the fields above; null before.
  metrics::Counter* appends_total = nullptr;
  metrics::Counter* syncs_total = nullptr;
  metrics::Family<metrics::Counter>* refused_total = nullptr;
  void CountRefused(uint64_t* field, const char* reason) {
    ++*field;
    if (refused_total != nullptr) refused_total->With({reason}).Inc();
  }
  void CountSync() {
    ++syncs;
    if (syncs_total != nullptr) syncs_total->Inc();
  }
  void CountAppend() {
    ++appends;
    if (appends_total != nullptr) appends_total->Inc();
  }
  std::atomic<bool> io_error_logged{false};  // also touched by Ack() outside `mu`
  // Test faults (InjectFaultForTest), under `mu`.
  int fault_write_err = 0, fault_write_times = 0, fault_sync_err = 0, fault_sync_times = 0;

  std::vector<ConsumerState> consumers;

  ~Impl() {
    for (ConsumerState& c : consumers) {
      if (c.read_fd >= 0) ::close(c.read_fd);
    }
    if (dir_fd >= 0) ::close(dir_fd);
    if (lock_fd >= 0) ::close(lock_fd);  // releases the flock
  }

  std::string Path(const std::string& name) const { return (dir / name).string(); }

  // An I/O failure: logged once per run of failures (the next success re-arms the log).  The
  // message names the file and the error, never a record's content.
  std::string IoMessage(const std::string& what, const std::string& file, int err) {
    std::string message = what + " " + file + ": " + ErrnoText(err);
    if (!io_error_logged.exchange(true)) {
      log::Error(opt.what + " I/O error", {{"error", message}});
    }
    return opt.what + ": " + message;
  }
  Status IoError(const std::string& what, const std::string& file, int err) {
    return Status::Internal(IoMessage(what, file, err));
  }
  // A failed append: Unavailable with the retry delay, counted by reason.  Called with `mu`.
  Status Refuse(const std::string& what, const std::string& file, int err) {
    if (err == ENOSPC || err == EDQUOT) {
      CountRefused(&refused.disk_full, "disk_full");
    } else {
      CountRefused(&refused.io, "io");
    }
    return Status::Unavailable(IoMessage(what, file, err),
                               static_cast<int>(opt.retry_after.count()));
  }

  int TakeFault(Fault f) {
    int& times = f == Fault::kWrite ? fault_write_times : fault_sync_times;
    if (times <= 0) return 0;
    --times;
    return f == Fault::kWrite ? fault_write_err : fault_sync_err;
  }

  // A failed fdatasync of the segment holding the records after `durable_id`.  Linux may have
  // dropped the dirty pages it could not write, so a retry could report success for data that
  // is gone (PostgreSQL's fsync lesson): the records written since the last good sync are taken
  // back instead (none was acknowledged; their appends fail), the segment is cut to the last
  // durable record and retired, and the next append starts a new segment.  If even the cut
  // fails the log refuses appends until a restart re-reads what is really on disk.  With `mu`.
  Status TakeBack(const std::string& what, const std::string& file, int err) {
    Status s = Refuse(what, file, err);
    taken_back_upto = std::max(taken_back_upto, written_id);
    size_t keep = entries.size();
    while (keep > 0 && entries[keep - 1].id > durable_id) --keep;
    if (keep < entries.size()) {
      const Entry& first = entries[keep];
      std::shared_ptr<Segment> seg = first.segment;
      const int fd = seg->fd ? seg->fd->fd : -1;
      if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(first.offset)) != 0) {
        sticky_error = Status::Unavailable(
            s.message() +
                " (and the segment could not be cut back: appends refused until "
                "restart)",
            static_cast<int>(opt.retry_after.count()));
      }
      seg->size = first.offset;
      seg->last_id = durable_id >= seg->first_id ? durable_id : 0;
      while (entries.size() > keep) {
        const uint64_t b = kHeaderBytes + entries.back().length;
        bytes -= b;
        appended_bytes -= b;
        entries.pop_back();
      }
    }
    written_id = durable_id;
    if (active) {
      active->fd.reset();
      active.reset();
    }
    append_cv.notify_all();
    return s;
  }

  Status SyncDir() {
    if (!opt.fsync) return Status::Ok();
    if (int err = FsyncFd(dir_fd); err != 0) return Refuse("fsync", dir.string(), err);
    return Status::Ok();
  }

  // Makes `active` a segment with room for a record of `record_bytes` (a record larger than
  // segment_bytes gets a segment of its own).  Called with `mu` held.
  Status PrepareSegment(uint64_t record_bytes) {
    if (active && active->size > 0 && active->size + record_bytes > opt.segment_bytes) {
      if (opt.fsync && durable_id < written_id) {
        CountSync();
        int err = TakeFault(Fault::kSync);
        if (err == 0) err = FdatasyncFd(active->fd->fd);
        if (err != 0) return TakeBack("fdatasync", active->fd->path, err);
        durable_id = written_id;
        append_cv.notify_all();
        consumer_cv.notify_all();
      }
      active->fd.reset();  // a leader syncing it holds its own reference
      active.reset();
    }
    if (active) return Status::Ok();
    auto seg = std::make_shared<Segment>();
    seg->first_id = next_id;
    seg->name = SegmentName(next_id);
    const int fd = ::openat(dir_fd, seg->name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return Refuse("create", Path(seg->name), errno);
    seg->fd = std::make_shared<Fd>(fd, Path(seg->name));
    if (Status s = SyncDir(); !s.ok()) {
      ::unlinkat(dir_fd, seg->name.c_str(), 0);
      return s;
    }
    segments.push_back(seg);
    active = std::move(seg);
    return Status::Ok();
  }

  Status WriteCursor(const std::string& consumer, uint64_t id) {
    const std::string name = CursorName(consumer);
    const std::string temp = name + ".tmp";
    char buf[kCursorBytes];
    std::memcpy(buf, kCursorMagic, 4);
    PutU64(buf + 4, id);
    PutU32(buf + 12, Crc32c(std::string_view(buf, 12)));
    const int fd = ::openat(dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("create", Path(temp), errno);
    Fd closer(fd, Path(temp));
    struct iovec iov = {buf, sizeof buf};
    if (int err = PWriteAll(fd, &iov, 1, 0); err != 0) return IoError("write", Path(temp), err);
    if (opt.fsync) {
      if (int err = FdatasyncFd(fd); err != 0) return IoError("fdatasync", Path(temp), err);
    }
    if (::renameat(dir_fd, temp.c_str(), dir_fd, name.c_str()) != 0) {
      return IoError("rename", Path(temp), errno);
    }
    if (opt.fsync) {
      if (int err = FsyncFd(dir_fd); err != 0) return IoError("fsync", dir.string(), err);
    }
    return Status::Ok();
  }

  // The id in a consumer's cursor: nullopt when missing; 0 and a warning when unreadable
  // (everything still on disk is handed out again: duplicates, never loss).
  Result<std::optional<uint64_t>> ReadCursor(const std::string& consumer) {
    const std::string name = CursorName(consumer);
    const int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return std::optional<uint64_t>();
      return IoError("open", Path(name), errno);
    }
    Fd closer(fd, Path(name));
    char buf[kCursorBytes + 1];
    ssize_t n;
    do {
      n = ::read(fd, buf, sizeof buf);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return IoError("read", Path(name), errno);
    if (static_cast<size_t>(n) != kCursorBytes || std::memcmp(buf, kCursorMagic, 4) != 0 ||
        GetU32(buf + 12) != Crc32c(std::string_view(buf, 12))) {
      log::Warn(opt.what +
                    " cursor unreadable; the consumer reads everything on disk again "
                    "(duplicates, no loss)",
                {{"file", Path(name)}, {"bytes", static_cast<int64_t>(n)}});
      return std::optional<uint64_t>(0);
    }
    return std::optional<uint64_t>(GetU64(buf + 4));
  }

  uint64_t MinAcked() const {
    uint64_t m = std::numeric_limits<uint64_t>::max();
    for (const ConsumerState& c : consumers) m = std::min(m, c.acked_id);
    return m;
  }

  // The first entry after `id` (entries are in id order).
  size_t IndexAfter(uint64_t id) const {
    return static_cast<size_t>(
        std::upper_bound(entries.begin(), entries.end(), id,
                         [](uint64_t v, const Entry& e) { return v < e.id; }) -
        entries.begin());
  }

  Status Recover(RecoveryReport* report);
  Status ScanSegment(const std::shared_ptr<Segment>& seg, uint64_t floor, uint64_t* prev_id,
                     RecoveryReport* report);
};

// Replays one segment: loads the records after `floor` (the lowest cursor) into `entries`;
// truncates it at the first record that does not check out.
Status DurableLog::Impl::ScanSegment(const std::shared_ptr<Segment>& seg, uint64_t floor,
                                     uint64_t* prev_id, RecoveryReport* report) {
  const std::string path = Path(seg->name);
  const int fd = ::openat(dir_fd, seg->name.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return IoError("open", path, errno);
  Fd closer(fd, path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return IoError("stat", path, errno);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  const int64_t mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 +
                           static_cast<int64_t>(st.st_mtim.tv_nsec) / 1000000;

  uint64_t off = 0;
  const char* bad = nullptr;
  std::string payload;
  while (off < file_size) {
    if (file_size - off < kHeaderBytes) {
      bad = "incomplete header";
      break;
    }
    char hbuf[kHeaderBytes];
    int err = PReadAll(fd, hbuf, kHeaderBytes, static_cast<off_t>(off));
    if (err > 0) return IoError("read", path, err);
    if (err < 0) {  // shrank while we read: treat as a tail
      bad = "incomplete header";
      break;
    }
    const RecordHeader h = DecodeHeader(hbuf);
    if (!h.magic_ok) {
      bad = "bad magic";
      break;
    }
    if (h.length > file_size - off - kHeaderBytes) {
      bad = "length past the end of the file";
      break;
    }
    payload.resize(h.length);
    err = PReadAll(fd, payload.data(), h.length, static_cast<off_t>(off + kHeaderBytes));
    if (err > 0) return IoError("read", path, err);
    if (err < 0) {
      bad = "length past the end of the file";
      break;
    }
    if (Crc32c(payload) != h.crc) {
      bad = "checksum mismatch";
      break;
    }
    if (h.id <= *prev_id || h.id < seg->first_id) {
      bad = "record id out of order";
      break;
    }
    *prev_id = h.id;
    seg->last_id = h.id;
    if (h.id > floor) {
      entries.push_back(Entry{h.id, off, mtime_ms, appended_bytes, seg, h.length});
      bytes += kHeaderBytes + h.length;
      appended_bytes += kHeaderBytes + h.length;
    }
    off += kHeaderBytes + h.length;
  }
  seg->size = off;
  if (off < file_size) {
    ++report->torn_records;
    report->torn_bytes += file_size - off;
    log::Warn(
        opt.what + ": segment cut at a torn or corrupt record",
        {{"file", path}, {"offset", off}, {"dropped_bytes", file_size - off}, {"reason", bad}});
    if (::ftruncate(fd, static_cast<off_t>(off)) != 0) return IoError("truncate", path, errno);
    if (opt.fsync) {
      if (int err = FsyncFd(fd); err != 0) return IoError("fsync", path, err);
    }
  }
  return Status::Ok();
}

Status DurableLog::Impl::Recover(RecoveryReport* report) {
  // Cursors: of the configured consumers (missing: new), and of consumers no longer configured.
  std::vector<std::optional<uint64_t>> cursors;
  for (ConsumerState& c : consumers) {
    const std::string& name = c.handle->name();
    if (::unlinkat(dir_fd, (CursorName(name) + ".tmp").c_str(), 0) != 0 && errno != ENOENT) {
      return IoError("remove", Path(CursorName(name) + ".tmp"), errno);
    }
    Result<std::optional<uint64_t>> cursor = ReadCursor(name);
    if (!cursor.ok()) return cursor.status();
    cursors.push_back(*cursor);
  }
  std::vector<std::string> dropped;  // cursor files of consumers no longer configured
  std::vector<std::shared_ptr<Segment>> found;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    uint64_t first_id = 0;
    const std::string name = it->path().filename().string();
    if (const std::string c = ConsumerOfCursor(name); !c.empty()) {
      const bool configured =
          std::any_of(consumers.begin(), consumers.end(),
                      [&](const ConsumerState& s) { return s.handle->name() == c; });
      if (!configured) dropped.push_back(name);
      continue;
    }
    if (!ParseSegmentName(name, &first_id)) continue;
    auto seg = std::make_shared<Segment>();
    seg->first_id = first_id;
    seg->name = name;
    found.push_back(std::move(seg));
  }
  if (ec) return IoError("list", dir.string(), ec.value());
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a->first_id < b->first_id; });

  // Records are loaded from the lowest cursor of the consumers that have one; a new consumer
  // starts at the end, so it needs none of them.
  uint64_t floor = std::numeric_limits<uint64_t>::max();
  bool any_cursor = false;
  for (const auto& c : cursors) {
    if (c) {
      floor = std::min(floor, *c);
      any_cursor = true;
    }
  }
  if (!any_cursor) floor = std::numeric_limits<uint64_t>::max();

  uint64_t prev_id = 0;
  uint64_t max_name_id = 0;
  bool deleted = false;
  for (auto& seg : found) {
    max_name_id = std::max(max_name_id, seg->first_id);
    if (Status s = ScanSegment(seg, floor, &prev_id, report); !s.ok()) return s;
    if (seg->last_id == 0 || seg->last_id <= floor) {  // empty, or every consumer passed it
      if (::unlinkat(dir_fd, seg->name.c_str(), 0) != 0) {
        return IoError("remove", Path(seg->name), errno);
      }
      deleted = true;
      continue;
    }
    segments.push_back(seg);
  }
  // Ids never go backwards: past every id seen, every segment name and every cursor (which
  // keep the floor when every segment was deleted).
  uint64_t last = std::max(prev_id, max_name_id);
  for (const auto& c : cursors) {
    if (c) last = std::max(last, *c);
  }
  next_id = last + 1;
  written_id = durable_id = last;
  recovered_id = entries.empty() ? 0 : entries.back().id;

  for (size_t i = 0; i < consumers.size(); ++i) {
    ConsumerState& c = consumers[i];
    if (cursors[i]) {
      c.acked_id = c.handed_id = *cursors[i];
      continue;
    }
    // New: from the end, persisted now so that a crash cannot move it back later.
    c.acked_id = c.handed_id = last;
    if (Status s = WriteCursor(c.handle->name(), last); !s.ok()) return s;
    if (last > 0) {
      log::Info(opt.what + ": new consumer starts at the end of the log",
                {{"consumer", c.handle->name()}, {"after_id", last}});
    }
  }
  // Entries below the new floor (a consumer's records the dropped ones alone needed) go now.
  const uint64_t min_acked = MinAcked();
  for (const std::string& name : dropped) {
    log::Warn(opt.what +
                  ": consumer no longer configured; its cursor is removed and the records only "
                  "it still needed are deleted",
              {{"cursor", name}});
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return IoError("remove", Path(name), errno);
    }
    deleted = true;
  }
  while (!entries.empty() && entries.front().id <= min_acked) {
    bytes -= kHeaderBytes + entries.front().length;
    entries.pop_front();
  }
  while (!segments.empty() && segments.front()->last_id <= min_acked) {
    if (::unlinkat(dir_fd, segments.front()->name.c_str(), 0) != 0) {
      return IoError("remove", Path(segments.front()->name), errno);
    }
    segments.pop_front();
    deleted = true;
  }
  if (deleted && opt.fsync) {
    if (int err = FsyncFd(dir_fd); err != 0) return IoError("fsync", dir.string(), err);
  }
  report->records = entries.size();
  report->bytes = bytes;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------

DurableLog::DurableLog() : impl_(std::make_unique<Impl>()) {}

DurableLog::~DurableLog() {
  Close();
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->append_cv.wait(lock, [this] { return impl_->active_calls == 0; });
}

Result<std::unique_ptr<DurableLog>> DurableLog::Open(const LogOptions& options,
                                                     RecoveryReport* report) {
  if (options.dir.empty()) return Status::InvalidArgument(options.what + ": no directory");
  if (options.segment_bytes == 0 || options.max_bytes == 0) {
    return Status::InvalidArgument(options.what + ": max_bytes and segment_bytes must be > 0");
  }
  if (options.consumers.empty()) return Status::InvalidArgument(options.what + ": no consumer");
  for (size_t i = 0; i < options.consumers.size(); ++i) {
    const std::string& name = options.consumers[i];
    if (!ValidConsumerName(name) ||
        std::find(options.consumers.begin(), options.consumers.begin() + i, name) !=
            options.consumers.begin() + i) {
      return Status::InvalidArgument(options.what + ": bad or repeated consumer name '" + name +
                                     "'");
    }
  }
  RecoveryReport local_report;
  if (report == nullptr) report = &local_report;
  *report = RecoveryReport{};

  std::unique_ptr<DurableLog> q(new DurableLog());
  Impl& d = *q->impl_;
  d.opt = options;
  d.dir = options.dir;
  for (size_t i = 0; i < options.consumers.size(); ++i) {
    Impl::ConsumerState c;
    c.handle.reset(new Consumer(&d, options.consumers[i], i));
    d.consumers.push_back(std::move(c));
  }
  std::error_code ec;
  std::filesystem::create_directories(d.dir, ec);
  if (ec) {
    return Status::Internal(options.what + ": create directory " + d.dir.string() + ": " +
                            ec.message());
  }
  d.dir_fd = ::open(d.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.dir_fd < 0) return d.IoError("open", d.dir.string(), errno);
  d.lock_fd = ::openat(d.dir_fd, kLockName, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (d.lock_fd < 0) return d.IoError("create", d.Path(kLockName), errno);
  if (::flock(d.lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status::Internal(options.what + ": " + d.dir.string() +
                              " is in use by another process (another gateway?)");
    }
    return d.IoError("lock", d.Path(kLockName), errno);
  }
  if (Status s = d.Recover(report); !s.ok()) return s;
  log::Info(options.what + " opened", {{"dir", d.dir.string()},
                                       {"records", report->records},
                                       {"bytes", report->bytes},
                                       {"torn_records", report->torn_records},
                                       {"next_id", d.next_id},
                                       {"fsync", d.opt.fsync}});
  return q;
}

Status DurableLog::Append(std::string_view payload) {
  Impl& d = *impl_;
  if (payload.size() > kMaxPayload) {
    return Status::TooLarge("record of " + std::to_string(payload.size()) +
                            " bytes is over the log's 4 GiB record limit");
  }
  const uint32_t crc = Crc32c(payload);  // outside the lock: it is most of the CPU work
  std::unique_lock<std::mutex> lock(d.mu);
  ++d.active_calls;
  struct Exit {
    Impl& d;
    ~Exit() {  // runs with `mu` held (declared after `lock`)
      if (--d.active_calls == 0) d.append_cv.notify_all();
    }
  } exit{d};

  const int retry_ms = static_cast<int>(d.opt.retry_after.count());
  if (d.closed) {
    d.CountRefused(&d.refused.closed, "closed");
    return Status::Unavailable(d.opt.what + " closed", retry_ms);
  }
  if (!d.sticky_error.ok()) {
    d.CountRefused(&d.refused.io, "io");
    return d.sticky_error;
  }
  const uint64_t record_bytes = kHeaderBytes + payload.size();
  if (!d.entries.empty() && d.bytes + record_bytes > d.opt.max_bytes) {
    d.CountRefused(&d.refused.full, "full");
    return Status::ResourceExhausted(d.opt.what + " full (" + std::to_string(d.bytes) + " of " +
                                         std::to_string(d.opt.max_bytes) + " bytes)",
                                     retry_ms);
  }
  if (Status s = d.PrepareSegment(record_bytes); !s.ok()) return s;

  Impl::Segment& seg = *d.active;
  const uint64_t id = d.next_id++;  // burnt if the write fails: ids need not be dense
  char header[kHeaderBytes];
  EncodeHeader(header, static_cast<uint32_t>(payload.size()), crc, id);
  struct iovec iov[2] = {{header, kHeaderBytes},
                         {const_cast<char*>(payload.data()), payload.size()}};
  int err = d.TakeFault(Fault::kWrite);
  if (err != 0) {
    // As a full disk does: part of the record reaches the file, then the error.
    struct iovec part = {header, kHeaderBytes / 2};
    (void)PWriteAll(seg.fd->fd, &part, 1, static_cast<off_t>(seg.size));
  } else {
    err = PWriteAll(seg.fd->fd, iov, payload.empty() ? 1 : 2, static_cast<off_t>(seg.size));
  }
  if (err != 0) {
    // Drop whatever part was written so the next record starts at a clean boundary (it would
    // be overwritten anyway: writes go at `seg.size`, not at the end of the file).
    if (::ftruncate(seg.fd->fd, static_cast<off_t>(seg.size)) != 0) {
      log::Debug(d.opt.what + ": truncate after a failed write failed",
                 {{"file", d.Path(seg.name)}, {"error", ErrnoText(errno)}});
    }
    return d.Refuse("write", d.Path(seg.name), err);
  }
  d.entries.push_back(Impl::Entry{id, seg.size, NowUnixMs(), d.appended_bytes, d.active,
                                  static_cast<uint32_t>(payload.size())});
  seg.size += record_bytes;
  seg.last_id = id;
  d.bytes += record_bytes;
  d.appended_bytes += record_bytes;
  d.written_id = id;
  d.written_fd = seg.fd;

  if (!d.opt.fsync) {
    d.durable_id = id;
    d.CountAppend();
    d.io_error_logged = false;
    d.consumer_cv.notify_all();
    return Status::Ok();
  }
  // Group commit: one thread at a time syncs everything written so far; the others wait for
  // a sync that covers their record.
  while (d.durable_id < id) {
    if (id <= d.taken_back_upto) {  // a failed sync took it back (TakeBack)
      d.CountRefused(&d.refused.io, "io");
      return Status::Unavailable(d.opt.what + ": the disk failed a sync; retry", retry_ms);
    }
    if (d.syncing) {
      d.append_cv.wait(lock);
      continue;
    }
    d.syncing = true;
    const uint64_t target = d.written_id;
    std::shared_ptr<Fd> fd = d.written_fd;
    d.CountSync();
    const int fault = d.TakeFault(Fault::kSync);
    lock.unlock();
    const int sync_err = fault != 0 ? fault : FdatasyncFd(fd->fd);
    lock.lock();
    d.syncing = false;
    if (sync_err != 0) {
      d.append_cv.notify_all();
      if (target > d.durable_id) return d.TakeBack("fdatasync", fd->path, sync_err);
      continue;
    }
    if (target > d.durable_id) {
      d.durable_id = target;
      d.consumer_cv.notify_all();
    }
    d.append_cv.notify_all();
  }
  d.CountAppend();
  d.io_error_logged = false;
  return Status::Ok();
}

DurableLog::Consumer* DurableLog::consumer(std::string_view name) const {
  for (const Impl::ConsumerState& c : impl_->consumers) {
    if (c.handle->name() == name) return c.handle.get();
  }
  return nullptr;
}

std::vector<LogRecord> DurableLog::Consumer::Next(uint64_t max_bytes,
                                                  std::chrono::milliseconds wait, bool within) {
  Impl& d = *log_;
  Impl::ConsumerState& c = d.consumers[index_];
  wait = std::clamp(wait, std::chrono::milliseconds(0),
                    std::chrono::milliseconds(std::chrono::hours(24)));  // no clock overflow
  std::unique_lock<std::mutex> lock(d.mu);
  const auto available = [&d, &c] {
    if (d.closed) return true;
    const size_t i = d.IndexAfter(c.handed_id);
    return i < d.entries.size() && d.entries[i].id <= d.durable_id;
  };
  d.consumer_cv.wait_for(lock, wait, available);
  if (d.closed || !available()) return {};

  std::vector<Impl::Entry> batch;
  uint64_t total = 0;
  for (size_t i = d.IndexAfter(c.handed_id);
       i < d.entries.size() && d.entries[i].id <= d.durable_id; ++i) {
    const Impl::Entry& e = d.entries[i];
    if ((within || !batch.empty()) && total + e.length > max_bytes) break;
    batch.push_back(e);
    total += e.length;
  }
  lock.unlock();

  // Read back outside the lock: the records are durable and immutable, and no segment holding
  // a record after this consumer's cursor is deleted (segments go when every consumer passed
  // them; the batch holds its segments).
  std::vector<LogRecord> out;
  out.reserve(batch.size());
  uint64_t consumed_id = 0;
  bool read_failed = false;
  for (const Impl::Entry& e : batch) {
    if (c.read_segment != e.segment) {
      if (c.read_fd >= 0) ::close(c.read_fd);
      c.read_segment.reset();
      c.read_fd = ::openat(d.dir_fd, e.segment->name.c_str(), O_RDONLY | O_CLOEXEC);
      if (c.read_fd < 0) {
        (void)d.IoError("open", d.Path(e.segment->name), errno);  // logged; read_failed retries
        read_failed = true;
        break;
      }
      c.read_segment = e.segment;
    }
    LogRecord r;
    r.id = e.id;
    r.appended_unix_ms = e.appended_unix_ms;
    r.payload.resize(e.length);
    char header[kHeaderBytes];
    struct iovec iov[2] = {{header, kHeaderBytes}, {r.payload.data(), e.length}};
    const ssize_t n = ::preadv(c.read_fd, iov, e.length == 0 ? 1 : 2, static_cast<off_t>(e.offset));
    if (n < 0 || static_cast<size_t>(n) != kHeaderBytes + e.length) {
      (void)d.IoError("read", d.Path(e.segment->name), n < 0 ? errno : EIO);  // logged; retried
      read_failed = true;
      break;
    }
    consumed_id = e.id;
    const RecordHeader h = DecodeHeader(header);
    if (!h.magic_ok || h.id != e.id || h.length != e.length || Crc32c(r.payload) != h.crc) {
      // Corrupted on disk after it was written and checked: never handed out.
      log::Error(d.opt.what + ": record corrupted on disk, skipped",
                 {{"file", d.Path(e.segment->name)}, {"offset", e.offset}, {"id", e.id}});
      continue;
    }
    out.push_back(std::move(r));
  }

  lock.lock();
  if (consumed_id > c.handed_id) c.handed_id = consumed_id;
  if (out.empty() && read_failed) {
    // Do not let the consumer spin on a disk error: it gets nothing for `wait`.
    d.consumer_cv.wait_for(lock, wait, [&d] { return d.closed; });
  }
  return out;
}

void DurableLog::Consumer::Rewind() {
  std::lock_guard<std::mutex> lock(log_->mu);
  Impl::ConsumerState& c = log_->consumers[index_];
  c.handed_id = c.acked_id;
}

Status DurableLog::Consumer::Ack(uint64_t id) {
  Impl& d = *log_;
  Impl::ConsumerState& c = d.consumers[index_];
  std::unique_lock<std::mutex> lock(d.mu);
  const uint64_t upto = std::min(id, d.durable_id);  // never past what could be handed out
  const size_t after_acked = d.IndexAfter(c.acked_id);
  const size_t after_upto = d.IndexAfter(upto);
  if (after_upto <= after_acked) return Status::Ok();  // nothing new acknowledged
  const uint64_t last = d.entries[after_upto - 1].id;
  lock.unlock();

  // Only this consumer's thread moves its cursor: `last` is still a record it may acknowledge.
  if (Status s = d.WriteCursor(name_, last); !s.ok()) return s;

  lock.lock();
  c.acked_id = last;
  c.handed_id = std::max(c.handed_id, last);
  const uint64_t floor = d.MinAcked();
  while (!d.entries.empty() && d.entries.front().id <= floor) {
    d.bytes -= kHeaderBytes + d.entries.front().length;
    d.entries.pop_front();
  }
  std::vector<std::shared_ptr<Impl::Segment>> dead;
  while (!d.segments.empty() && d.segments.front() != d.active &&
         d.segments.front()->last_id <= floor) {
    dead.push_back(std::move(d.segments.front()));
    d.segments.pop_front();
  }
  if (!dead.empty() && c.read_segment && c.read_segment->last_id <= floor) {
    ::close(c.read_fd);
    c.read_fd = -1;
    c.read_segment.reset();
  }
  lock.unlock();

  if (dead.empty()) return Status::Ok();
  for (const auto& seg : dead) {
    if (::unlinkat(d.dir_fd, seg->name.c_str(), 0) != 0 && errno != ENOENT) {
      // Acknowledged already: the next Open() deletes it.  Logged, nothing to return to.
      (void)d.IoError("remove", d.Path(seg->name), errno);
    }
  }
  if (d.opt.fsync) {
    if (int err = FsyncFd(d.dir_fd); err != 0) {
      log::Warn(d.opt.what + ": directory fsync after deleting segments failed",
                {{"dir", d.dir.string()}, {"error", ErrnoText(err)}});
    }
  }
  return Status::Ok();
}

uint64_t DurableLog::Consumer::acked_id() const {
  std::lock_guard<std::mutex> lock(log_->mu);
  return log_->consumers[index_].acked_id;
}

uint64_t DurableLog::Consumer::lag_records() const {
  std::lock_guard<std::mutex> lock(log_->mu);
  const Impl& d = *log_;
  return d.entries.size() - d.IndexAfter(d.consumers[index_].acked_id);
}

uint64_t DurableLog::Consumer::lag_bytes() const {
  std::lock_guard<std::mutex> lock(log_->mu);
  const Impl& d = *log_;
  const size_t i = d.IndexAfter(d.consumers[index_].acked_id);
  return i < d.entries.size() ? d.appended_bytes - d.entries[i].bytes_before : 0;
}

int64_t DurableLog::Consumer::lag_age_ms() const {
  std::lock_guard<std::mutex> lock(log_->mu);
  const Impl& d = *log_;
  const size_t i = d.IndexAfter(d.consumers[index_].acked_id);
  if (i >= d.entries.size()) return 0;
  return std::max<int64_t>(0, NowUnixMs() - d.entries[i].appended_unix_ms);
}

int64_t DurableLog::Consumer::horizon_unix_ms() const {
  std::lock_guard<std::mutex> lock(log_->mu);
  const Impl& d = *log_;
  const size_t i = d.IndexAfter(d.consumers[index_].acked_id);
  if (i >= d.entries.size()) return kCaughtUp;
  if (d.entries[i].id <= d.recovered_id) return kHorizonUnknown;
  return d.entries[i].appended_unix_ms;
}

void DurableLog::Close() {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mu);
  if (d.closed) return;
  d.closed = true;
  if (!d.opt.fsync && d.written_fd) {
    // A clean shutdown leaves everything on disk even without per-append syncs.
    d.CountSync();
    if (int err = FdatasyncFd(d.written_fd->fd); err != 0) {
      // Logged; at shutdown the next Open() re-reads what really reached the disk.
      (void)d.IoError("fdatasync", d.written_fd->path, err);
    }
  }
  d.consumer_cv.notify_all();
  d.append_cv.notify_all();
}

uint64_t DurableLog::bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->bytes;
}

uint64_t DurableLog::records() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->entries.size();
}

int64_t DurableLog::oldest_age_ms() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->entries.empty()) return 0;
  return std::max<int64_t>(0, NowUnixMs() - impl_->entries.front().appended_unix_ms);
}

uint64_t DurableLog::syncs() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->syncs;
}

uint64_t DurableLog::appends() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->appends;
}

Refusals DurableLog::refused() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->refused;
}

void DurableLog::InjectFaultForTest(Fault fault, int err, int times) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (fault == Fault::kWrite) {
    impl_->fault_write_err = err;
    impl_->fault_write_times = times;
  } else {
    impl_->fault_sync_err = err;
    impl_->fault_sync_times = times;
  }
}

void DurableLog::RegisterMetrics(metrics::Registry& registry) {
  DurableLog* log = this;
  registry.AddCallbackGauge("ordertrace_ingest_log_bytes",
                            "Bytes of the records some consumer of the ingest log still needs "
                            "(what ingest_log.max_bytes bounds).",
                            [log] { return static_cast<double>(log->bytes()); });
  registry.AddCallbackGauge("ordertrace_ingest_log_records",
                            "Records some consumer of the ingest log still needs.",
                            [log] { return static_cast<double>(log->records()); });
  auto& appends = registry
                      .AddCounter("ordertrace_ingest_log_appends_total",
                                  "Batches made durable in the ingest log.")
                      .With({});
  auto& syncs = registry
                    .AddCounter("ordertrace_ingest_log_syncs_total",
                                "fdatasync calls on ingest log segments (group commit makes it "
                                "far fewer than appends).")
                    .With({});
  auto& refused = registry.AddCounter(
      "ordertrace_ingest_log_refused_total",
      "Batches the ingest log refused: full (over ingest_log.max_bytes, 429), disk_full "
      "(ENOSPC/EDQUOT, 503), io (another write or sync error, 503), closed (shutting down, 503).",
      {"reason"});
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    appends.Inc(impl_->appends);
    syncs.Inc(impl_->syncs);
    const Refusals& r = impl_->refused;
    for (const auto& [reason, n] : {std::pair<const char*, uint64_t>{"full", r.full},
                                    {"disk_full", r.disk_full},
                                    {"io", r.io},
                                    {"closed", r.closed}}) {
      refused.With({reason}).Inc(n);  // every reason listed, at 0 too
    }
    impl_->appends_total = &appends;
    impl_->syncs_total = &syncs;
    impl_->refused_total = &refused;
  }
  const auto per_consumer = [log](std::function<double(const Consumer&)> f) {
    return [log, f] {
      metrics::Registry::LabelledValues out;
      for (const Impl::ConsumerState& c : log->impl_->consumers) {
        out.emplace_back(c.handle->name(), f(*c.handle));
      }
      return out;
    };
  };
  registry.AddCallbackGauge(
      "ordertrace_ingest_log_consumer_lag_records",
      "Records in the ingest log a consumer (forward, journeys) has not acknowledged yet.",
      "consumer",
      per_consumer([](const Consumer& c) { return static_cast<double>(c.lag_records()); }));
  registry.AddCallbackGauge(
      "ordertrace_ingest_log_consumer_lag_bytes",
      "Bytes of the records in the ingest log a consumer has not acknowledged yet.", "consumer",
      per_consumer([](const Consumer& c) { return static_cast<double>(c.lag_bytes()); }));
  registry.AddCallbackGauge(
      "ordertrace_ingest_log_consumer_lag_seconds",
      "Age of the oldest record in the ingest log a consumer has not acknowledged yet (0: none).",
      "consumer", per_consumer([](const Consumer& c) { return c.lag_age_ms() / 1000.0; }));
}

Result<uint64_t> ImportForwardQueue(const std::filesystem::path& old_dir, DurableLog& into) {
  std::error_code ec;
  if (!std::filesystem::is_directory(old_dir, ec)) return uint64_t{0};
  LogOptions o;
  o.dir = old_dir;
  o.max_bytes = std::numeric_limits<uint64_t>::max();
  o.consumers = {"forward"};
  o.what = "old forward queue";
  auto opened = DurableLog::Open(o);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<DurableLog> old = std::move(opened).value();
  DurableLog::Consumer* c = old->consumer("forward");
  uint64_t moved = 0;
  while (true) {
    std::vector<LogRecord> records = c->Next(uint64_t{16} << 20, std::chrono::milliseconds(0));
    if (records.empty()) break;
    for (const LogRecord& r : records) {
      if (Status s = into.Append(r.payload); !s.ok()) {
        (void)c->Ack(r.id - 1);  // what was moved stays moved
        return Status(s.code(), "moving the old forward queue " + old_dir.string() +
                                    " into the ingest log: " + s.message());
      }
      ++moved;
    }
    if (Status s = c->Ack(records.back().id); !s.ok()) return s;
  }
  old.reset();  // closes it and releases its lock
  std::filesystem::remove_all(old_dir, ec);
  if (ec) {
    return Status::Internal("removing the old forward queue " + old_dir.string() + ": " +
                            ec.message());
  }
  if (moved > 0) {
    log::Info("old forward queue moved into the ingest log",
              {{"dir", old_dir.string()}, {"records", moved}});
  }
  return moved;
}

}  // namespace ordertrace::ingest_log
