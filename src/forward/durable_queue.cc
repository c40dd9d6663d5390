#include "forward/durable_queue.h"

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
#include <limits>
#include <mutex>
#include <system_error>
#include <utility>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "common/log.h"

namespace ordertrace::forward {
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
constexpr const char* kCursorName = "cursor";
constexpr const char* kCursorTempName = "cursor.tmp";
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

struct DurableQueue::Impl {
  struct Segment {
    uint64_t first_id = 0;  // from the file name
    uint64_t last_id = 0;   // the highest record id in it; 0 while empty
    uint64_t size = 0;      // bytes of whole records; the next record goes here
    std::string name;
    std::shared_ptr<Fd> fd;  // the write descriptor, only while this is the active segment
  };
  // One unacknowledged record: where it is, not what it is (payloads stay on disk).
  struct Entry {
    uint64_t id;
    uint64_t offset;  // of the record header in the segment
    int64_t appended_unix_ms;
    Segment* segment;
    uint32_t length;  // payload bytes
  };

  DurableQueueOptions opt;
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
  std::deque<Entry> entries;                      // unacknowledged records, oldest first
  uint64_t bytes = 0;                             // header + payload of `entries`
  uint64_t next_id = 1;
  uint64_t written_id = 0;         // the last record written
  uint64_t durable_id = 0;         // every record <= this is synced (or fsync is off)
  std::shared_ptr<Fd> written_fd;  // the segment holding `written_id`
  bool syncing = false;            // a group-commit leader is in fdatasync
  Status sync_error;               // sticky: see SyncFailed()
  uint64_t syncs = 0;
  std::atomic<bool> io_error_logged{false};  // also touched by Ack() outside `mu`

  // Consumer state (Next/Ack/Rewind run on one thread).
  size_t handed = 0;  // entries [0, handed) were handed out since the last Rewind
  uint64_t acked_id = 0;
  Segment* read_segment = nullptr;  // the segment `read_fd` is open on
  int read_fd = -1;

  ~Impl() {
    if (read_fd >= 0) ::close(read_fd);
    if (dir_fd >= 0) ::close(dir_fd);
    if (lock_fd >= 0) ::close(lock_fd);  // releases the flock
  }

  std::string Path(const std::string& name) const { return (dir / name).string(); }

  // An I/O failure: logged once per run of failures (the next success re-arms the log).
  Status IoError(const std::string& what, const std::string& file, int err) {
    std::string message = what + " " + file + ": " + ErrnoText(err);
    if (!io_error_logged.exchange(true)) {
      log::Error("durable queue I/O error", {{"error", message}});
    }
    return Status::Internal("durable queue: " + message);
  }

  // A failed fdatasync/fsync.  Linux may have dropped the dirty pages it could not write, so
  // a retry could report success for data that is gone: the queue stops accepting appends
  // until a restart re-reads what is really on disk (PostgreSQL's answer to the same problem).
  Status SyncFailed(const std::string& what, const std::string& file, int err) {
    Status s = IoError(what, file, err);
    sync_error = Status::Internal(s.message() + " (appends refused until restart)");
    append_cv.notify_all();
    return sync_error;
  }

  Status SyncDir() {
    if (!opt.fsync) return Status::Ok();
    if (int err = FsyncFd(dir_fd); err != 0) return SyncFailed("fsync", dir.string(), err);
    return Status::Ok();
  }

  // Makes `active` a segment with room for a record of `record_bytes` (a record larger than
  // segment_bytes gets a segment of its own).  Called with `mu` held.
  Status PrepareSegment(uint64_t record_bytes) {
    if (active && active->size > 0 && active->size + record_bytes > opt.segment_bytes) {
      if (opt.fsync) {
        ++syncs;
        if (int err = FdatasyncFd(active->fd->fd); err != 0) {
          return SyncFailed("fdatasync", active->fd->path, err);
        }
        durable_id = std::max(durable_id, active->last_id);
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
    if (fd < 0) return IoError("create", Path(seg->name), errno);
    seg->fd = std::make_shared<Fd>(fd, Path(seg->name));
    if (Status s = SyncDir(); !s.ok()) {
      ::unlinkat(dir_fd, seg->name.c_str(), 0);
      return s;
    }
    segments.push_back(seg);
    active = std::move(seg);
    return Status::Ok();
  }

  Status WriteCursor(uint64_t id) {
    char buf[kCursorBytes];
    std::memcpy(buf, kCursorMagic, 4);
    PutU64(buf + 4, id);
    PutU32(buf + 12, Crc32c(std::string_view(buf, 12)));
    const int fd =
        ::openat(dir_fd, kCursorTempName, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("create", Path(kCursorTempName), errno);
    Fd closer(fd, Path(kCursorTempName));
    struct iovec iov = {buf, sizeof buf};
    if (int err = PWriteAll(fd, &iov, 1, 0); err != 0) {
      return IoError("write", Path(kCursorTempName), err);
    }
    if (opt.fsync) {
      if (int err = FdatasyncFd(fd); err != 0) {
        return IoError("fdatasync", Path(kCursorTempName), err);
      }
    }
    if (::renameat(dir_fd, kCursorTempName, dir_fd, kCursorName) != 0) {
      return IoError("rename", Path(kCursorTempName), errno);
    }
    if (opt.fsync) {
      if (int err = FsyncFd(dir_fd); err != 0) return IoError("fsync", dir.string(), err);
    }
    return Status::Ok();
  }

  // The id in `cursor`: 0 when missing; 0 and a warning when unreadable (everything still on
  // disk is handed out again: duplicates, never loss).
  Result<uint64_t> ReadCursor() {
    const int fd = ::openat(dir_fd, kCursorName, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return uint64_t{0};
      return IoError("open", Path(kCursorName), errno);
    }
    Fd closer(fd, Path(kCursorName));
    char buf[kCursorBytes + 1];
    ssize_t n;
    do {
      n = ::read(fd, buf, sizeof buf);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return IoError("read", Path(kCursorName), errno);
    if (static_cast<size_t>(n) != kCursorBytes || std::memcmp(buf, kCursorMagic, 4) != 0 ||
        GetU32(buf + 12) != Crc32c(std::string_view(buf, 12))) {
      log::Warn(
          "durable queue cursor unreadable; unacknowledged state reset, records on disk "
          "will be sent again",
          {{"file", Path(kCursorName)}, {"bytes", static_cast<int64_t>(n)}});
      return uint64_t{0};
    }
    return GetU64(buf + 4);
  }

  Status Recover(RecoveryReport* report);
  Status ScanSegment(const std::shared_ptr<Segment>& seg, uint64_t* prev_id,
                     RecoveryReport* report);
};

// Replays one segment: loads its unacknowledged records into `entries`; truncates it at the
// first record that does not check out.
Status DurableQueue::Impl::ScanSegment(const std::shared_ptr<Segment>& seg, uint64_t* prev_id,
                                       RecoveryReport* report) {
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
    if (h.id > acked_id) {
      entries.push_back(Entry{h.id, off, mtime_ms, seg.get(), h.length});
      bytes += kHeaderBytes + h.length;
    }
    off += kHeaderBytes + h.length;
  }
  seg->size = off;
  if (off < file_size) {
    ++report->torn_records;
    report->torn_bytes += file_size - off;
    log::Warn(
        "durable queue: segment cut at a torn or corrupt record",
        {{"file", path}, {"offset", off}, {"dropped_bytes", file_size - off}, {"reason", bad}});
    if (::ftruncate(fd, static_cast<off_t>(off)) != 0) return IoError("truncate", path, errno);
    if (opt.fsync) {
      if (int err = FsyncFd(fd); err != 0) return IoError("fsync", path, err);
    }
  }
  return Status::Ok();
}

Status DurableQueue::Impl::Recover(RecoveryReport* report) {
  if (::unlinkat(dir_fd, kCursorTempName, 0) != 0 && errno != ENOENT) {
    return IoError("remove", Path(kCursorTempName), errno);
  }
  Result<uint64_t> cursor = ReadCursor();
  if (!cursor.ok()) return cursor.status();
  acked_id = *cursor;

  std::vector<std::shared_ptr<Segment>> found;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    uint64_t first_id = 0;
    const std::string name = it->path().filename().string();
    if (!ParseSegmentName(name, &first_id)) continue;
    auto seg = std::make_shared<Segment>();
    seg->first_id = first_id;
    seg->name = name;
    found.push_back(std::move(seg));
  }
  if (ec) return IoError("list", dir.string(), ec.value());
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a->first_id < b->first_id; });

  uint64_t prev_id = 0;
  uint64_t max_name_id = 0;
  bool deleted = false;
  for (auto& seg : found) {
    max_name_id = std::max(max_name_id, seg->first_id);
    if (Status s = ScanSegment(seg, &prev_id, report); !s.ok()) return s;
    if (seg->last_id == 0 || seg->last_id <= acked_id) {  // empty, or all acknowledged
      if (::unlinkat(dir_fd, seg->name.c_str(), 0) != 0) {
        return IoError("remove", Path(seg->name), errno);
      }
      deleted = true;
      continue;
    }
    segments.push_back(seg);
  }
  if (deleted) {
    if (Status s = SyncDir(); !s.ok()) return s;
  }
  // Ids never go backwards: past every id seen, every segment name and the cursor (which
  // keeps the floor when every segment was acknowledged and deleted).
  next_id = std::max({prev_id, max_name_id, acked_id}) + 1;
  written_id = durable_id = next_id - 1;
  report->records = entries.size();
  report->bytes = bytes;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------

DurableQueue::DurableQueue() : impl_(std::make_unique<Impl>()) {}

DurableQueue::~DurableQueue() {
  Close();
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->append_cv.wait(lock, [this] { return impl_->active_calls == 0; });
}

Result<std::unique_ptr<DurableQueue>> DurableQueue::Open(const DurableQueueOptions& options,
                                                         RecoveryReport* report) {
  if (options.dir.empty()) return Status::InvalidArgument("durable queue: no directory");
  if (options.segment_bytes == 0 || options.max_bytes == 0) {
    return Status::InvalidArgument("durable queue: max_bytes and segment_bytes must be > 0");
  }
  RecoveryReport local_report;
  if (report == nullptr) report = &local_report;
  *report = RecoveryReport{};

  std::unique_ptr<DurableQueue> q(new DurableQueue());
  Impl& d = *q->impl_;
  d.opt = options;
  d.dir = options.dir;
  std::error_code ec;
  std::filesystem::create_directories(d.dir, ec);
  if (ec) {
    return Status::Internal("durable queue: create directory " + d.dir.string() + ": " +
                            ec.message());
  }
  d.dir_fd = ::open(d.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.dir_fd < 0) return d.IoError("open", d.dir.string(), errno);
  d.lock_fd = ::openat(d.dir_fd, kLockName, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (d.lock_fd < 0) return d.IoError("create", d.Path(kLockName), errno);
  if (::flock(d.lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status::Internal("durable queue: " + d.dir.string() +
                              " is in use by another queue (another gateway process?)");
    }
    return d.IoError("lock", d.Path(kLockName), errno);
  }
  if (Status s = d.Recover(report); !s.ok()) return s;
  log::Info("durable queue opened", {{"dir", d.dir.string()},
                                     {"records", report->records},
                                     {"bytes", report->bytes},
                                     {"torn_records", report->torn_records},
                                     {"next_id", d.next_id},
                                     {"fsync", d.opt.fsync}});
  return q;
}

Status DurableQueue::Append(std::string_view payload) {
  Impl& d = *impl_;
  if (payload.size() > kMaxPayload) {
    return Status::TooLarge("record of " + std::to_string(payload.size()) +
                            " bytes is over the queue's 4 GiB record limit");
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

  if (d.closed) {
    return Status::Unavailable("durable queue closed", static_cast<int>(d.opt.retry_after.count()));
  }
  if (!d.sync_error.ok()) return d.sync_error;
  const uint64_t record_bytes = kHeaderBytes + payload.size();
  if (!d.entries.empty() && d.bytes + record_bytes > d.opt.max_bytes) {
    return Status::ResourceExhausted("forward queue full (" + std::to_string(d.bytes) + " of " +
                                         std::to_string(d.opt.max_bytes) + " bytes)",
                                     static_cast<int>(d.opt.retry_after.count()));
  }
  if (Status s = d.PrepareSegment(record_bytes); !s.ok()) return s;

  Impl::Segment& seg = *d.active;
  const uint64_t id = d.next_id++;  // burnt if the write fails: ids need not be dense
  char header[kHeaderBytes];
  EncodeHeader(header, static_cast<uint32_t>(payload.size()), crc, id);
  struct iovec iov[2] = {{header, kHeaderBytes},
                         {const_cast<char*>(payload.data()), payload.size()}};
  if (int err = PWriteAll(seg.fd->fd, iov, payload.empty() ? 1 : 2, static_cast<off_t>(seg.size));
      err != 0) {
    // Drop whatever part was written so the next record starts at a clean boundary (it would
    // be overwritten anyway: writes go at `seg.size`, not at the end of the file).
    if (::ftruncate(seg.fd->fd, static_cast<off_t>(seg.size)) != 0) {
      log::Debug("durable queue: truncate after a failed write failed",
                 {{"file", d.Path(seg.name)}, {"error", ErrnoText(errno)}});
    }
    return d.IoError("write", d.Path(seg.name), err);
  }
  d.io_error_logged = false;
  d.entries.push_back(
      Impl::Entry{id, seg.size, NowUnixMs(), &seg, static_cast<uint32_t>(payload.size())});
  seg.size += record_bytes;
  seg.last_id = id;
  d.bytes += record_bytes;
  d.written_id = id;
  d.written_fd = seg.fd;

  if (!d.opt.fsync) {
    d.durable_id = id;
    d.consumer_cv.notify_one();
    return Status::Ok();
  }
  // Group commit: one thread at a time syncs everything written so far; the others wait for
  // a sync that covers their record.
  while (d.durable_id < id) {
    if (!d.sync_error.ok()) return d.sync_error;
    if (d.syncing) {
      d.append_cv.wait(lock);
      continue;
    }
    d.syncing = true;
    const uint64_t target = d.written_id;
    std::shared_ptr<Fd> fd = d.written_fd;
    ++d.syncs;
    lock.unlock();
    const int err = FdatasyncFd(fd->fd);
    lock.lock();
    d.syncing = false;
    if (err != 0) {
      // Logged and kept in the sticky sync_error, which every waiting Append() returns.
      (void)d.SyncFailed("fdatasync", fd->path, err);
    } else if (target > d.durable_id) {
      d.durable_id = target;
      d.consumer_cv.notify_one();
    }
    d.append_cv.notify_all();
  }
  return Status::Ok();
}

std::vector<QueueRecord> DurableQueue::Next(uint64_t max_bytes, std::chrono::milliseconds wait,
                                            bool within) {
  Impl& d = *impl_;
  wait = std::clamp(wait, std::chrono::milliseconds(0),
                    std::chrono::milliseconds(std::chrono::hours(24)));  // no clock overflow
  std::unique_lock<std::mutex> lock(d.mu);
  const auto available = [&d] {
    return d.closed || (d.handed < d.entries.size() && d.entries[d.handed].id <= d.durable_id);
  };
  d.consumer_cv.wait_for(lock, wait, available);
  if (d.closed || !available()) return {};

  std::vector<Impl::Entry> batch;
  uint64_t total = 0;
  for (size_t i = d.handed; i < d.entries.size() && d.entries[i].id <= d.durable_id; ++i) {
    const Impl::Entry& e = d.entries[i];
    if ((within || !batch.empty()) && total + e.length > max_bytes) break;
    batch.push_back(e);
    total += e.length;
  }
  lock.unlock();

  // Read back outside the lock: the records are durable and immutable, and only Ack() (this
  // same consumer thread) deletes segments.
  std::vector<QueueRecord> out;
  out.reserve(batch.size());
  size_t consumed = 0;
  bool read_failed = false;
  for (const Impl::Entry& e : batch) {
    if (d.read_segment != e.segment) {
      if (d.read_fd >= 0) ::close(d.read_fd);
      d.read_segment = nullptr;
      d.read_fd = ::openat(d.dir_fd, e.segment->name.c_str(), O_RDONLY | O_CLOEXEC);
      if (d.read_fd < 0) {
        (void)d.IoError("open", d.Path(e.segment->name), errno);  // logged; read_failed retries
        read_failed = true;
        break;
      }
      d.read_segment = e.segment;
    }
    QueueRecord r;
    r.id = e.id;
    r.appended_unix_ms = e.appended_unix_ms;
    r.payload.resize(e.length);
    char header[kHeaderBytes];
    struct iovec iov[2] = {{header, kHeaderBytes}, {r.payload.data(), e.length}};
    const ssize_t n = ::preadv(d.read_fd, iov, e.length == 0 ? 1 : 2, static_cast<off_t>(e.offset));
    if (n < 0 || static_cast<size_t>(n) != kHeaderBytes + e.length) {
      (void)d.IoError("read", d.Path(e.segment->name), n < 0 ? errno : EIO);  // logged; retried
      read_failed = true;
      break;
    }
    ++consumed;
    const RecordHeader h = DecodeHeader(header);
    if (!h.magic_ok || h.id != e.id || h.length != e.length || Crc32c(r.payload) != h.crc) {
      // Corrupted on disk after it was written and checked: never handed out.
      log::Error("durable queue: record corrupted on disk, skipped",
                 {{"file", d.Path(e.segment->name)}, {"offset", e.offset}, {"id", e.id}});
      continue;
    }
    out.push_back(std::move(r));
  }

  lock.lock();
  d.handed += consumed;
  if (out.empty() && read_failed) {
    // Do not let the consumer spin on a disk error: it gets nothing for `wait`.
    d.consumer_cv.wait_for(lock, wait, [&d] { return d.closed; });
  }
  return out;
}

void DurableQueue::Rewind() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->handed = 0;
}

Status DurableQueue::Ack(uint64_t id) {
  Impl& d = *impl_;
  std::unique_lock<std::mutex> lock(d.mu);
  const uint64_t upto = std::min(id, d.durable_id);  // never past what could be handed out
  const auto it = std::upper_bound(d.entries.begin(), d.entries.end(), upto,
                                   [](uint64_t v, const Impl::Entry& e) { return v < e.id; });
  const size_t n = static_cast<size_t>(it - d.entries.begin());
  if (n == 0) return Status::Ok();
  const uint64_t last = d.entries[n - 1].id;
  lock.unlock();

  // Entries are only removed here, on this thread: the first n are still the same.
  if (Status s = d.WriteCursor(last); !s.ok()) return s;

  lock.lock();
  d.acked_id = last;
  for (size_t i = 0; i < n; ++i) {
    d.bytes -= kHeaderBytes + d.entries.front().length;
    d.entries.pop_front();
  }
  d.handed = d.handed > n ? d.handed - n : 0;
  std::vector<std::shared_ptr<Impl::Segment>> dead;
  while (!d.segments.empty() && d.segments.front() != d.active &&
         d.segments.front()->last_id <= last) {
    dead.push_back(std::move(d.segments.front()));
    d.segments.pop_front();
  }
  lock.unlock();

  if (dead.empty()) return Status::Ok();
  for (const auto& seg : dead) {
    if (d.read_segment == seg.get()) {
      ::close(d.read_fd);
      d.read_fd = -1;
      d.read_segment = nullptr;
    }
    if (::unlinkat(d.dir_fd, seg->name.c_str(), 0) != 0 && errno != ENOENT) {
      // Acknowledged already: the next Open() deletes it.  Logged, nothing to return to.
      (void)d.IoError("remove", d.Path(seg->name), errno);
    }
  }
  if (d.opt.fsync) {
    if (int err = FsyncFd(d.dir_fd); err != 0) {
      log::Warn("durable queue: directory fsync after deleting segments failed",
                {{"dir", d.dir.string()}, {"error", ErrnoText(err)}});
    }
  }
  return Status::Ok();
}

void DurableQueue::Close() {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mu);
  if (d.closed) return;
  d.closed = true;
  if (!d.opt.fsync && d.written_fd) {
    // A clean shutdown leaves everything on disk even without per-append syncs.
    ++d.syncs;
    if (int err = FdatasyncFd(d.written_fd->fd); err != 0) {
      // Logged; at shutdown the next Open() re-reads what really reached the disk.
      (void)d.IoError("fdatasync", d.written_fd->path, err);
    }
  }
  d.consumer_cv.notify_all();
  d.append_cv.notify_all();
}

uint64_t DurableQueue::bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->bytes;
}

uint64_t DurableQueue::records() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->entries.size();
}

int64_t DurableQueue::oldest_age_ms() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->entries.empty()) return 0;
  return std::max<int64_t>(0, NowUnixMs() - impl_->entries.front().appended_unix_ms);
}

uint64_t DurableQueue::syncs() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->syncs;
}

}  // namespace ordertrace::forward
