// Ingest benchmark: drives a running `ordertrace serve` over loopback OTLP/HTTP (keep-alive;
// https:// with --ca-file: TLS) or OTLP/gRPC (grpc://, grpcs:// with --ca-file) with a fixed
// workload and measures the gateway's own CPU time per span (from /proc/<pid>/stat), then, in
// the same run on the same bytes, libprotobuf's plain arena parse of the request as reference.
//
// Workload (docs/benchmarks.md): requests of 512 spans in 4 resources (service.name + 4
// attributes each); each span has 12 attributes of realistic sizes (order.id, order.stage on 1
// span in 10, messaging.*, http.*, one e-mail-like enduser.id) and one event.
//
// Usage: ordertrace-bench-ingest --url http://127.0.0.1:4318/v1/traces --pid PID
//          [--connections 4] [--seconds 10] [--warmup 2] [--distinct 16] [--ca-file CA.pem]
//          [--fresh-trace-ids 1] [--syscalls perf]
//        --url https://127.0.0.1:4318/v1/traces, grpc://127.0.0.1:4317 or grpcs://127.0.0.1:4317
//        (TLS: the server is verified against --ca-file, TLS 1.2 or newer).  For gRPC each
//        connection is its own channel (its own HTTP/2 connection) sending unary Export calls.
//        --fresh-trace-ids 1 (OTLP/HTTP only): every request sent carries trace ids never sent
//        before (the same bytes otherwise), for a trace store such as Jaeger, which would
//        otherwise pile every round onto the same 64 traces (bench/run ingest --peer jaeger).
//        --syscalls perf: also counts the gateway's system calls over the measured interval with
//        `perf stat` (tracepoint raw_syscalls:sys_enter, and syscalls:sys_enter_* for the ones
//        the receive path makes), enabled and disabled through a control fifo at the interval's
//        edges.  Context switches (voluntary + involuntary, summed over the gateway's threads
//        from /proc/<pid>/task/*/status) are always counted.
// The last line of output is one JSON object with the figures.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ingest_workload.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;
using opentelemetry::proto::collector::trace::v1::TraceService;
using ordertrace::bench::kSpansPerRequest;
using ordertrace::bench::MakeRequest;

double ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// utime + stime of a process, in nanoseconds.
double ProcessCpuNs(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return (utime + stime) * 1e9 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Context switches of a process so far: voluntary + nonvoluntary, summed over its threads
// (/proc/<pid>/status alone counts the main thread only).
uint64_t ContextSwitches(int pid) {
  const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(task_dir.c_str());
  if (dir == nullptr) return 0;
  uint64_t total = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(task_dir + "/" + e->d_name + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0 ||
          line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
        total += std::strtoull(line.c_str() + line.find(':') + 1, nullptr, 10);
      }
    }
  }
  closedir(dir);
  return total;
}

// The system calls of a process over an interval, counted by `perf stat -p` on the syscall
// tracepoints.  perf starts with its counters disabled; Enable() and Disable() switch them
// through perf's control fifo (each waits for perf's ack), so the count covers exactly the
// interval between them, not perf's start-up.  Tracepoint counting adds a little to each call
// of the traced process, whose CPU is measured meanwhile.
class SyscallCounter {
 public:
  // The calls counted one by one besides the total: what the receive path makes.
  static const std::vector<std::string>& Names() {
    static const std::vector<std::string> names = {
        "read",    "recvfrom",   "recvmsg",     "write",     "writev",      "sendto",
        "sendmsg", "epoll_wait", "epoll_pwait", "epoll_ctl", "futex",       "timerfd_settime",
        "mmap",    "munmap",     "madvise",     "brk",       "sched_yield", "ioctl"};
    return names;
  }

  // Starts perf on `pid`; false (with a reason on stderr) when perf cannot count here.
  bool Start(int pid) {
    char tmpl[] = "/tmp/ordertrace-bench-perf-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return false;
    dir_ = tmpl;
    const std::string ctl = dir_ + "/ctl", ack = dir_ + "/ack";
    out_ = dir_ + "/perf.out";
    if (mkfifo(ctl.c_str(), 0600) != 0 || mkfifo(ack.c_str(), 0600) != 0) return false;
    std::string events = "raw_syscalls:sys_enter";
    for (const auto& name : Names()) events += ",syscalls:sys_enter_" + name;
    std::vector<std::string> args = {"perf", "stat", "-x",        ",",
                                     "-D",   "-1",   "--control", "fifo:" + ctl + "," + ack,
                                     "-e",   events, "-p",        std::to_string(pid),
                                     "-o",   out_};
    child_ = fork();
    if (child_ < 0) return false;
    if (child_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      const int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) dup2(devnull, STDERR_FILENO);
      execvp("perf", argv.data());
      _exit(127);
    }
    // perf opens both fifos once it runs; opening the control fifo with O_NONBLOCK fails
    // until then, so a perf that failed to start is noticed instead of blocking for ever.
    for (int i = 0; i < 500 && ctl_ < 0; ++i) {
      ctl_ = open(ctl.c_str(), O_WRONLY | O_NONBLOCK);
      if (ctl_ < 0) {
        int status = 0;
        if (waitpid(child_, &status, WNOHANG) == child_) {
          child_ = -1;
          std::fprintf(stderr, "bench: perf stat did not start (not installed, or no access)\n");
          return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (ctl_ < 0) return false;
    ack_ = open(ack.c_str(), O_RDONLY);
    return ack_ >= 0;
  }

  bool Enable() { return Command("enable\n"); }
  bool Disable() { return Command("disable\n"); }

  // Stops perf and reads its counts: "total" and each of Names() perf reported.
  std::map<std::string, uint64_t> Finish() {
    std::map<std::string, uint64_t> counts;
    if (child_ > 0) {
      kill(child_, SIGINT);
      int status = 0;
      waitpid(child_, &status, 0);
      child_ = -1;
    }
    if (ctl_ >= 0) close(ctl_);
    if (ack_ >= 0) close(ack_);
    ctl_ = ack_ = -1;
    if (dir_.empty()) return counts;
    std::ifstream in(out_);
    std::string line;
    while (std::getline(in, line)) {  // CSV: count,unit,event,...
      const size_t a = line.find(',');
      if (a == std::string::npos || line.empty() || line[0] < '0' || line[0] > '9') continue;
      const size_t b = line.find(',', a + 1);
      const size_t c = line.find(',', b + 1);
      if (b == std::string::npos) continue;
      std::string event = line.substr(b + 1, c == std::string::npos ? c : c - b - 1);
      const uint64_t n = std::strtoull(line.c_str(), nullptr, 10);
      if (event == "raw_syscalls:sys_enter") {
        counts["total"] = n;
      } else if (event.rfind("syscalls:sys_enter_", 0) == 0) {
        counts[event.substr(std::strlen("syscalls:sys_enter_"))] = n;
      }
    }
    for (const char* f : {"/ctl", "/ack", "/perf.out"}) unlink((dir_ + f).c_str());
    rmdir(dir_.c_str());
    return counts;
  }

 private:
  bool Command(const char* cmd) {
    if (ctl_ < 0 || ack_ < 0) return false;
    if (write(ctl_, cmd, std::strlen(cmd)) < 0) return false;
    char buf[16];
    return read(ack_, buf, sizeof buf) > 0;  // "ack\n"
  }

  std::string dir_, out_;
  pid_t child_ = -1;
  int ctl_ = -1, ack_ = -1;
};

struct Url {
  std::string scheme = "http";  // http, https, grpc, grpcs
  std::string host = "127.0.0.1";
  int port = 4318;
  std::string path = "/v1/traces";
  bool tls() const { return scheme == "https" || scheme == "grpcs"; }
  bool grpc() const { return scheme == "grpc" || scheme == "grpcs"; }
};

bool ParseUrl(const std::string& s, Url* u) {
  const auto colon_slashes = s.find("://");
  if (colon_slashes == std::string::npos) return false;
  u->scheme = s.substr(0, colon_slashes);
  if (u->scheme != "http" && u->scheme != "https" && u->scheme != "grpc" && u->scheme != "grpcs") {
    return false;
  }
  std::string rest = s.substr(colon_slashes + 3);
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  u->path = slash == std::string::npos ? "/v1/traces" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) return false;
  u->host = hostport.substr(0, colon);
  u->port = std::stoi(hostport.substr(colon + 1));
  return true;
}

int ConnectTcp(const Url& u) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(u.port));
  inet_pton(AF_INET, u.host.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// An HTTP/1.1 keep-alive connection, plain or TLS (`ssl` set).
struct Connection {
  int fd = -1;
  SSL* ssl = nullptr;
  bool ok() const { return fd >= 0; }
  ssize_t Write(const char* p, size_t n) {
    return ssl ? SSL_write(ssl, p, static_cast<int>(n)) : write(fd, p, n);
  }
  ssize_t Read(char* p, size_t n) {
    return ssl ? SSL_read(ssl, p, static_cast<int>(n)) : read(fd, p, n);
  }
  void Close() {
    if (ssl) SSL_free(ssl);
    if (fd >= 0) close(fd);
    ssl = nullptr;
    fd = -1;
  }
};

// The client TLS context of --ca-file: the server verified, TLS 1.2 or newer.
SSL_CTX* MakeTlsContext(const std::string& ca_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

// Connects (and, with `tls`, completes the handshake, checking the host's address or name).
Connection Connect(const Url& u, SSL_CTX* tls) {
  Connection c;
  c.fd = ConnectTcp(u);
  if (c.fd < 0 || tls == nullptr) return c;
  c.ssl = SSL_new(tls);
  SSL_set_fd(c.ssl, c.fd);
  X509_VERIFY_PARAM* param = SSL_get0_param(c.ssl);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, u.host.c_str()) != 1) {
    SSL_set_tlsext_host_name(c.ssl, u.host.c_str());
    X509_VERIFY_PARAM_set1_host(param, u.host.c_str(), u.host.size());
  }
  if (SSL_connect(c.ssl) != 1) c.Close();
  return c;
}

// Sends one request on a keep-alive connection; returns the HTTP status or -1.
int RoundTrip(Connection& conn, const std::string& request, std::string* buf) {
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = conn.Write(request.data() + off, request.size() - off);
    if (n <= 0) return -1;
    off += static_cast<size_t>(n);
  }
  buf->clear();
  char tmp[4096];
  size_t header_end = std::string::npos;
  while ((header_end = buf->find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = conn.Read(tmp, sizeof tmp);
    if (n <= 0) return -1;
    buf->append(tmp, static_cast<size_t>(n));
  }
  int status = std::atoi(buf->c_str() + 9);
  size_t content_length = 0;
  for (const char* name : {"Content-Length:", "content-length:"}) {
    auto pos = buf->find(name);
    if (pos != std::string::npos && pos < header_end) {
      content_length = std::strtoull(buf->c_str() + pos + std::strlen(name), nullptr, 10);
    }
  }
  while (buf->size() < header_end + 4 + content_length) {
    ssize_t n = conn.Read(tmp, sizeof tmp);
    if (n <= 0) return -1;
    buf->append(tmp, static_cast<size_t>(n));
  }
  return status;
}

// A request whose trace ids are rewritten before each send (--fresh-trace-ids): the offsets of
// every occurrence of each of its trace ids in the HTTP request, found once.
struct FreshTraceIds {
  std::vector<std::vector<size_t>> offsets;  // per trace id of the request
};

FreshTraceIds FindTraceIds(const ExportTraceServiceRequest& message, const std::string& request) {
  FreshTraceIds found;
  for (const auto& resource : message.resource_spans()) {
    const std::string& id = resource.scope_spans(0).spans(0).trace_id();
    std::vector<size_t> at;
    for (size_t pos = request.find(id); pos != std::string::npos; pos = request.find(id, pos + 1)) {
      at.push_back(pos);
    }
    found.offsets.push_back(std::move(at));
  }
  return found;
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Writes trace id number `serial` of connection `connection` (unique in the run and across runs
// of one process: the start time is mixed in) into `id` (16 bytes, never all zero).
void MakeTraceId(uint64_t run, int connection, uint64_t serial, char* id) {
  const uint64_t hi = SplitMix(run ^ (static_cast<uint64_t>(connection) << 48));
  const uint64_t lo = SplitMix(hi ^ serial) | 1;
  std::memcpy(id, &hi, 8);
  std::memcpy(id + 8, &lo, 8);
}

std::string Hex(const char* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[(static_cast<unsigned char>(p[i]) >> 4) & 15];
    out += kDigits[static_cast<unsigned char>(p[i]) & 15];
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url_arg = "http://127.0.0.1:4318/v1/traces";
  int pid = 0, connections = 4;
  bool reference_only = false;  // --reference-only 1: skip the load, measure parsers only
  double seconds = 10, warmup = 2;
  int distinct = 16;  // distinct requests, sent round-robin (each span id recurs every round)
  std::string ca_file;
  bool fresh_trace_ids = false;
  bool count_syscalls = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--url")
      url_arg = v;
    else if (k == "--pid")
      pid = std::stoi(v);
    else if (k == "--connections")
      connections = std::stoi(v);
    else if (k == "--seconds")
      seconds = std::stod(v);
    else if (k == "--warmup")
      warmup = std::stod(v);
    else if (k == "--reference-only")
      reference_only = v == "1";
    else if (k == "--distinct")
      distinct = std::max(1, std::stoi(v));
    else if (k == "--ca-file")
      ca_file = v;
    else if (k == "--fresh-trace-ids")
      fresh_trace_ids = v == "1";
    else if (k == "--syscalls")
      count_syscalls = v == "perf";
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  Url url;
  if (!ParseUrl(url_arg, &url) || (pid <= 0 && !reference_only) || url.tls() != !ca_file.empty() ||
      (fresh_trace_ids && url.grpc())) {
    std::fprintf(stderr,
                 "usage: %s --url http(s)://HOST:PORT/v1/traces|grpc(s)://HOST:PORT "
                 "--pid GATEWAY_PID [--connections N] [--seconds S] [--warmup S] [--distinct N] "
                 "[--ca-file CA.pem (https, grpcs)] [--fresh-trace-ids 1 (http, https)] "
                 "[--syscalls perf]\n",
                 argv[0]);
    return 2;
  }
  SSL_CTX* tls = nullptr;
  std::string ca_pem;
  if (url.tls()) {
    tls = MakeTlsContext(ca_file);
    std::ifstream in(ca_file);
    std::stringstream ss;
    ss << in.rdbuf();
    ca_pem = ss.str();
    if (tls == nullptr || ca_pem.empty()) {
      std::fprintf(stderr, "cannot load the CA file '%s'\n", ca_file.c_str());
      return 2;
    }
  }

  // The workload: `distinct` requests (16 by default), sent round-robin.
  std::mt19937_64 rng(42);
  std::vector<std::string> bodies, requests;
  std::vector<ExportTraceServiceRequest> messages;  // for gRPC
  const uint64_t base_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  for (int i = 0; i < distinct; ++i) {
    messages.push_back(MakeRequest(rng, i, base_ns));
    bodies.push_back(messages.back().SerializeAsString());
  }
  size_t total_bytes = 0;
  for (const auto& b : bodies) {
    total_bytes += b.size();
    requests.push_back("POST " + url.path + " HTTP/1.1\r\nHost: " + url.host +
                       "\r\nContent-Type: application/x-protobuf\r\nContent-Length: " +
                       std::to_string(b.size()) + "\r\n\r\n" + b);
  }
  std::vector<FreshTraceIds> fresh;
  if (fresh_trace_ids) {
    for (int i = 0; i < distinct; ++i) fresh.push_back(FindTraceIds(messages[i], requests[i]));
  }
  const uint64_t run_id = static_cast<uint64_t>(base_ns) ^ static_cast<uint64_t>(getpid());
  const double bytes_per_span =
      static_cast<double>(total_bytes) / (static_cast<double>(distinct) * kSpansPerRequest);
  std::printf(
      "workload: %d spans/request, %.0f bytes/span, %zu-byte requests, %d connections, %s\n",
      kSpansPerRequest, bytes_per_span, bodies[0].size(), connections, url.scheme.c_str());

  // Load: each connection thread sends requests back to back.
  std::atomic<int> phase{0};  // 0 warm-up, 1 measure, 2 stop
  std::atomic<uint64_t> measured_requests{0}, errors{0};
  // Every request answered 200, warm-up and the requests still in flight at the end included:
  // what the server processed (bench/run --peer counts CPU until the server has drained).
  std::atomic<uint64_t> acked_requests{0};
  // --fresh-trace-ids: the trace ids of each connection's last acknowledged request, in hex.
  std::vector<std::vector<std::string>> last_trace_ids(static_cast<size_t>(connections));
  std::vector<std::thread> threads;
  if (reference_only) {
    connections = 0;
    warmup = seconds = 0;
  }
  for (int c = 0; c < connections && url.grpc(); ++c) {
    threads.emplace_back([&, c] {
      // One channel per connection: distinct channel arguments keep gRPC from sharing one
      // HTTP/2 connection between them.
      grpc::ChannelArguments args;
      args.SetInt("ordertrace.bench.connection", c);
      args.SetMaxSendMessageSize(-1);
      args.SetMaxReceiveMessageSize(-1);
      std::shared_ptr<grpc::ChannelCredentials> credentials;
      if (url.tls()) {
        grpc::SslCredentialsOptions ssl;
        ssl.pem_root_certs = ca_pem;
        credentials = grpc::SslCredentials(ssl);
      } else {
        credentials = grpc::InsecureChannelCredentials();
      }
      auto channel =
          grpc::CreateCustomChannel(url.host + ":" + std::to_string(url.port), credentials, args);
      auto stub = TraceService::NewStub(channel);
      size_t next = static_cast<size_t>(c);
      while (phase.load() < 2) {
        const int p = phase.load();
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        ExportTraceServiceResponse response;
        const grpc::Status status =
            stub->Export(&context, messages[next++ % messages.size()], &response);
        if (!status.ok()) {
          errors.fetch_add(1);
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        acked_requests.fetch_add(1);
        if (p == 1 && phase.load() == 1) measured_requests.fetch_add(1);
      }
    });
  }
  for (int c = 0; c < connections && !url.grpc(); ++c) {
    threads.emplace_back([&, c] {
      Connection conn = Connect(url, tls);
      std::string buf;
      size_t next = static_cast<size_t>(c);
      // --fresh-trace-ids: this connection's own copy of the requests, rewritten before a send.
      std::vector<std::string> own;
      if (fresh_trace_ids) own = requests;
      uint64_t serial = 0;
      std::vector<std::string> sent_ids;
      while (phase.load() < 2) {
        if (!conn.ok()) {
          errors.fetch_add(1);
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          conn = Connect(url, tls);
          continue;
        }
        const int p = phase.load();
        const size_t which = next++ % requests.size();
        if (fresh_trace_ids) {
          sent_ids.clear();
          for (const auto& at : fresh[which].offsets) {
            char id[16];
            MakeTraceId(run_id, c, serial++, id);
            for (size_t pos : at) std::memcpy(&own[which][pos], id, sizeof id);
            sent_ids.push_back(Hex(id, sizeof id));
          }
        }
        int status = RoundTrip(conn, fresh_trace_ids ? own[which] : requests[which], &buf);
        if (status != 200) {
          errors.fetch_add(1);
          conn.Close();
          conn = Connect(url, tls);
          continue;
        }
        acked_requests.fetch_add(1);
        if (fresh_trace_ids) last_trace_ids[static_cast<size_t>(c)] = sent_ids;
        if (p == 1 && phase.load() == 1) measured_requests.fetch_add(1);
      }
      conn.Close();
    });
  }
  SyscallCounter syscalls;
  count_syscalls = count_syscalls && !reference_only && syscalls.Start(pid);
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  if (count_syscalls) count_syscalls = syscalls.Enable();
  const uint64_t switches0 = reference_only ? 0 : ContextSwitches(pid);
  const double cpu0 = reference_only ? 0 : ProcessCpuNs(pid);
  const auto t0 = std::chrono::steady_clock::now();
  phase.store(1);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  phase.store(2);
  const double cpu1 = reference_only ? 0 : ProcessCpuNs(pid);
  const uint64_t switches1 = reference_only ? 0 : ContextSwitches(pid);
  if (count_syscalls) count_syscalls = syscalls.Disable();
  const std::map<std::string, uint64_t> syscall_counts =
      count_syscalls ? syscalls.Finish() : std::map<std::string, uint64_t>{};
  if (!count_syscalls) syscalls.Finish();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& t : threads) t.join();

  const double spans = static_cast<double>(measured_requests.load()) * kSpansPerRequest;
  const double gateway_cpu_ns = cpu1 - cpu0;
  const double cpu_ns_per_span = spans > 0 ? gateway_cpu_ns / spans : 0;

  // Reference: libprotobuf's arena parse of the same bytes, and the decoder alone.
  const int kRounds = 40;
  double parse_ns = ThreadCpuNs();
  for (int round = 0; round < kRounds; ++round) {
    for (const auto& b : bodies) {
      google::protobuf::Arena arena;
      auto* msg = google::protobuf::Arena::CreateMessage<ExportTraceServiceRequest>(&arena);
      if (!msg->ParseFromArray(b.data(), static_cast<int>(b.size()))) return 1;
    }
  }
  parse_ns = ThreadCpuNs() - parse_ns;
  double decode_ns = ThreadCpuNs();
  for (int round = 0; round < kRounds; ++round) {
    for (const auto& b : bodies) {
      auto r =
          ordertrace::otlp::DecodeExportRequest(b, ordertrace::otlp::Protocol::kHttpProtobuf, {});
      if (!r.ok() || r.value()->spans().size() != kSpansPerRequest) return 1;
    }
  }
  decode_ns = ThreadCpuNs() - decode_ns;
  const double ref_spans = static_cast<double>(kRounds) * bodies.size() * kSpansPerRequest;
  const double parse_cpu_ns_per_span = parse_ns / ref_spans;
  const double decode_cpu_ns_per_span = decode_ns / ref_spans;

  std::printf("gateway: %.0f spans in %.2f s wall, %.3f s CPU, %llu errors\n", spans, wall,
              gateway_cpu_ns / 1e9, static_cast<unsigned long long>(errors.load()));
  std::printf("gateway CPU per span (receive+decode+validate+hand-off): %.0f ns\n",
              cpu_ns_per_span);
  std::printf("libprotobuf arena parse per span: %.0f ns; decoder alone: %.0f ns\n",
              parse_cpu_ns_per_span, decode_cpu_ns_per_span);
  // Kernel work per span: context switches always, system calls with --syscalls perf (null
  // without); the breakdown per request (512 spans) reads more easily than per span.
  const double requests_measured = static_cast<double>(measured_requests.load());
  const double switches = static_cast<double>(switches1 - switches0);
  std::string kernel =
      "\"ctx_switches_per_span\":" + std::to_string(spans > 0 ? switches / spans : 0) +
      ",\"ctx_switches_per_sec\":" + std::to_string(wall > 0 ? switches / wall : 0);
  const auto total = syscall_counts.find("total");
  if (total != syscall_counts.end() && spans > 0) {
    const double n = static_cast<double>(total->second);
    kernel += ",\"syscalls_per_span\":" + std::to_string(n / spans) +
              ",\"syscalls_per_sec\":" + std::to_string(n / wall) + ",\"syscalls_per_request\":{";
    std::string line;
    bool first = true;
    for (const auto& name : SyscallCounter::Names()) {
      auto it = syscall_counts.find(name);
      if (it == syscall_counts.end() || it->second == 0) continue;
      char item[96];
      std::snprintf(item, sizeof item, "%s\"%s\":%.2f", first ? "" : ",", name.c_str(),
                    static_cast<double>(it->second) / requests_measured);
      kernel += item;
      std::snprintf(item, sizeof item, " %s %.2f", name.c_str(),
                    static_cast<double>(it->second) / requests_measured);
      line += item;
      first = false;
    }
    kernel += "}";
    std::printf("gateway syscalls: %.4f per span, %.1f per request (%.0f/s); per request:%s\n",
                n / spans, n / requests_measured, n / wall, line.c_str());
  } else {
    kernel += ",\"syscalls_per_span\":null";
  }
  std::printf("gateway context switches: %.4f per span, %.1f per request (%.0f/s)\n",
              spans > 0 ? switches / spans : 0,
              requests_measured > 0 ? switches / requests_measured : 0,
              wall > 0 ? switches / wall : 0);

  // The machine's load at the end of the run (other work on the cores inflates CPU per span).
  double loadavg = -1;
  if (std::ifstream in("/proc/loadavg"); in) in >> loadavg;
  kernel += ",\"loadavg_1m\":" + std::to_string(loadavg);

  std::string sample;  // --fresh-trace-ids: the last acknowledged trace ids, for a read-back
  for (const auto& ids : last_trace_ids) {
    for (const auto& id : ids) sample += (sample.empty() ? "\"" : ",\"") + id + "\"";
  }
  std::printf(
      "{\"benchmark\":\"ingest\",\"transport\":\"%s\",\"spans_per_request\":%d,\"distinct_"
      "requests\":%d,"
      "\"bytes_per_span\":%.0f,\"connections\":%d,\"seconds\":%.2f,\"spans\":%.0f,\"errors\":%llu,"
      "\"spans_per_sec\":%.0f,\"spans_per_cpu_sec\":%.0f,\"cpu_ns_per_span\":%.1f,"
      "\"parse_cpu_ns_per_span\":%.1f,\"decode_cpu_ns_per_span\":%.1f,\"ratio\":%.3f,"
      "\"acked_spans\":%llu,%s,\"sample_trace_ids\":[%s]}\n",
      url.scheme.c_str(), kSpansPerRequest, distinct, bytes_per_span, connections, wall, spans,
      static_cast<unsigned long long>(errors.load()), wall > 0 ? spans / wall : 0,
      cpu_ns_per_span > 0 ? 1e9 / cpu_ns_per_span : 0, cpu_ns_per_span, parse_cpu_ns_per_span,
      decode_cpu_ns_per_span,
      parse_cpu_ns_per_span > 0 ? cpu_ns_per_span / parse_cpu_ns_per_span : 0,
      static_cast<unsigned long long>(acked_requests.load()) * kSpansPerRequest, kernel.c_str(),
      sample.c_str());
  return (reference_only || spans > 0) && errors.load() == 0 ? 0 : 1;
}
