// Runs the `ordertrace` binary as a user would: exit codes, messages, a gateway that receives
// spans from `ordertrace send` and drains on SIGTERM, and the API commands sending a bearer
// token to an HTTPS API that checks it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "support/tls_files.h"

extern char** environ;

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = ordertrace::net;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A child process with stdout and stderr in files.
class Process {
 public:
  Process(std::vector<std::string> args, const std::filesystem::path& dir, const std::string& tag)
      : out_(dir / (tag + ".out")), err_(dir / (tag + ".err")) {
    args.insert(args.begin(), ORDERTRACE_BIN);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) pid_ = -1;
  }
  ~Process() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // The exit code, or -1 on timeout / a death by signal.
  int Wait(std::chrono::milliseconds timeout = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }
  void Signal(int sig) { kill(pid_, sig); }
  std::string out() const { return ReadFile(out_); }
  std::string err() const { return ReadFile(err_); }
  bool started() const { return pid_ > 0; }

 private:
  std::filesystem::path out_, err_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

std::string Get(uint16_t port, const std::string& target, int* status) {
  boost::asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(false);
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  *status = static_cast<int>(res.result_int());
  return res.body();
}

// POSTs `body` and returns the status (0 when the connection failed or was closed early).
int Post(uint16_t port, const std::string& target, const std::string& content_type,
         const std::string& body, const std::string& encoding = "") {
  net::HttpOptions options;
  options.headers = {{"Content-Type", content_type}};
  if (!encoding.empty()) options.headers.emplace_back("Content-Encoding", encoding);
  auto reply = net::HttpPost("http://127.0.0.1:" + std::to_string(port) + target, body, options);
  return reply.ok() ? reply->status : 0;
}

// Writes raw bytes to a port and reads until the peer closes (or 2 s pass).
void SendRaw(uint16_t port, const std::string& bytes) {
  try {
    boost::asio::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    boost::asio::write(socket, boost::asio::buffer(bytes));
    socket.shutdown(tcp::socket::shutdown_send);
    char buf[4096];
    boost::system::error_code ec;
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!ec && std::chrono::steady_clock::now() < deadline)
      socket.read_some(boost::asio::buffer(buf), ec);
  } catch (const std::exception&) {
  }
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_cli_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs to completion; returns the exit code.
  int Run(std::vector<std::string> args, std::string* out = nullptr, std::string* err = nullptr) {
    Process p(std::move(args), dir_, "run" + std::to_string(runs_++));
    EXPECT_TRUE(p.started());
    const int code = p.Wait();
    if (out) *out = p.out();
    if (err) *err = p.err();
    return code;
  }

  // Waits for the gateway's startup line and returns its OTLP/gRPC, OTLP/HTTP and API ports.
  static bool StartedPorts(Process& serve, uint16_t* grpc, uint16_t* otlp_http, uint16_t* api) {
    const std::regex started(R"(ordertrace gateway started.* otlp_grpc=127\.0\.0\.1:(\d+) )"
                             R"(otlp_http=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+))");
    std::smatch m;
    std::string log;
    for (int i = 0; i < 500; ++i) {
      log = serve.err();
      if (std::regex_search(log, m, started)) {
        *grpc = static_cast<uint16_t>(std::stoi(m[1]));
        *otlp_http = static_cast<uint16_t>(std::stoi(m[2]));
        *api = static_cast<uint16_t>(std::stoi(m[3]));
        return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  std::filesystem::path dir_;
  int runs_ = 0;
};

TEST_F(CliTest, Version) {
  std::string out;
  EXPECT_EQ(Run({"version"}, &out), 0);
  EXPECT_EQ(out.rfind("ordertrace ", 0), 0u) << out;
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  std::string err;
  EXPECT_EQ(Run({}, nullptr, &err), 2);
  EXPECT_NE(err.find("ordertrace:"), std::string::npos) << err;
  EXPECT_EQ(Run({"serve", "--bogus"}, nullptr, &err), 2);
  EXPECT_NE(err.find("--bogus"), std::string::npos) << err;
  EXPECT_EQ(Run({"serve", "--otlp-http", "nope"}, nullptr, &err), 2);
  EXPECT_NE(err.find("--otlp-http: expected HOST:PORT"), std::string::npos) << err;
  EXPECT_EQ(Run({"serve", "--log-level", "chatty"}, nullptr, &err), 2);
  EXPECT_NE(err.find("--log-level"), std::string::npos) << err;
  EXPECT_EQ(Run({"send", "--endpoint", "https://x/v1/traces"}, nullptr, &err), 2);
  EXPECT_NE(err.find("--endpoint"), std::string::npos) << err;
  EXPECT_EQ(Run({"send", "--duration", "soon"}, nullptr, &err), 2);
  EXPECT_NE(err.find("--duration"), std::string::npos) << err;
}

TEST_F(CliTest, ConfigErrorsExitTwoAndNameTheLine) {
  std::string err;
  EXPECT_EQ(Run({"serve", "--config", (dir_ / "missing.yaml").string()}, nullptr, &err), 2);
  EXPECT_NE(err.find("cannot read config file"), std::string::npos) << err;

  const auto config = dir_ / "gateway.yaml";
  std::ofstream(config) << "receiver:\n  max_body_bytes: abc\n";
  EXPECT_EQ(Run({"serve", "--config", config.string()}, nullptr, &err), 2);
  EXPECT_NE(err.find(config.string() + ":2: receiver.max_body_bytes: expected a size like 16MiB, "
                                       "got 'abc'"),
            std::string::npos)
      << err;
}

TEST_F(CliTest, PortInUseExitsOne) {
  boost::asio::io_context io;
  tcp::acceptor taken(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const std::string address = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());
  std::string err;
  EXPECT_EQ(Run({"serve", "--http", address, "--otlp-http", "127.0.0.1:0", "--otlp-grpc",
                 "127.0.0.1:0", "--data", (dir_ / "data").string()},
                nullptr, &err),
            1);
  EXPECT_NE(err.find("listen.http / --http"), std::string::npos) << err;
  EXPECT_NE(err.find(address), std::string::npos) << err;
}

TEST_F(CliTest, SendWithoutAGatewayFails) {
  boost::asio::io_context io;
  uint16_t port;
  {
    tcp::acceptor probe(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }  // closed again: nothing listens there
  std::string err;
  EXPECT_EQ(Run({"send", "--endpoint", "http://127.0.0.1:" + std::to_string(port) + "/v1/traces",
                 "--orders", "1", "--quiet"},
                nullptr, &err),
            1);
  EXPECT_NE(err.find("cannot reach"), std::string::npos) << err;
}

TEST_F(CliTest, ServeReceivesSampleTrafficAndDrainsOnSigterm) {
  Process serve({"serve", "--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", "--http",
                 "127.0.0.1:0", "--data", (dir_ / "data").string()},
                dir_, "serve");
  ASSERT_TRUE(serve.started());
  // The startup line names the bound addresses.
  std::smatch m;
  const std::regex started(R"(ordertrace gateway started.* otlp_http=127\.0\.0\.1:(\d+) )"
                           R"(http=127\.0\.0\.1:(\d+))");
  std::string log;
  for (int i = 0; i < 500 && !std::regex_search(log, m, started); ++i) {
    std::this_thread::sleep_for(20ms);
    log = serve.err();
  }
  ASSERT_TRUE(std::regex_search(log, m, started)) << log;
  const std::string otlp_http_port = m[1];
  const uint16_t api_port = static_cast<uint16_t>(std::stoi(m[2]));
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "data"));

  int status = 0;
  EXPECT_EQ(Get(api_port, "/readyz", &status), "ready");
  EXPECT_EQ(status, 200);

  std::string out, err;
  EXPECT_EQ(Run({"send", "--endpoint", "http://127.0.0.1:" + otlp_http_port + "/v1/traces",
                 "--orders", "6", "--rate", "40", "--seed", "7", "--gzip"},
                &out, &err),
            0)
      << out << err;
  EXPECT_NE(out.find("done:"), std::string::npos) << out;

  const std::string metrics = Get(api_port, "/metrics", &status);
  EXPECT_EQ(status, 200);
  std::smatch accepted;
  ASSERT_TRUE(std::regex_search(
      metrics, accepted,
      std::regex(R"(ordertrace_receiver_accepted_spans_total\{protocol="http_protobuf"\} (\d+))")))
      << metrics;
  EXPECT_GT(std::stoi(accepted[1]), 6);

  serve.Signal(SIGTERM);
  EXPECT_EQ(serve.Wait(20s), 0) << serve.err();
  log = serve.err();
  EXPECT_NE(log.find("msg=batch"), std::string::npos) << log;
  EXPECT_NE(log.find("orders=ORD-"), std::string::npos) << log;
  EXPECT_NE(log.find("signal=SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("ordertrace gateway stopped"), std::string::npos) << log;
}

TEST_F(CliTest, BadInputNeverTakesTheGatewayDown) {
  std::ofstream(dir_ / "gateway.yaml") << "receiver:\n  max_body_bytes: 64KiB\n";
  Process serve(
      {"serve", "--config", (dir_ / "gateway.yaml").string(), "--otlp-grpc", "127.0.0.1:0",
       "--otlp-http", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", (dir_ / "data").string()},
      dir_, "serve");
  ASSERT_TRUE(serve.started());
  uint16_t grpc = 0, otlp = 0, api = 0;
  ASSERT_TRUE(StartedPorts(serve, &grpc, &otlp, &api)) << serve.err();

  // Every checked-in fuzz input, as OTLP/HTTP protobuf, as JSON, and gzip-labelled.
  int sent = 0, malformed = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(ORDERTRACE_SOURCE_DIR "/tests/fuzz/corpus/decoder")) {
    const std::string bytes = ReadFile(entry.path());
    const int code = Post(otlp, "/v1/traces", "application/x-protobuf", bytes);
    EXPECT_TRUE(code == 200 || code == 400) << entry.path() << " got " << code;
    malformed += code == 400;
    EXPECT_EQ(Post(otlp, "/v1/traces", "application/json", bytes), 400) << entry.path();
    EXPECT_EQ(Post(otlp, "/v1/traces", "application/x-protobuf", bytes, "gzip"), 400);
    ++sent;
  }
  EXPECT_GT(sent, 100);
  EXPECT_GT(malformed, 10);
  // Over the body limit, unknown encodings and content types, broken HTTP and broken HTTP/2.
  EXPECT_EQ(Post(otlp, "/v1/traces", "application/x-protobuf", std::string(100 * 1024, 'x')), 413);
  EXPECT_EQ(Post(otlp, "/v1/traces", "application/x-protobuf", "x", "br"), 415);
  EXPECT_EQ(Post(otlp, "/v1/traces", "text/plain", "hello"), 415);
  EXPECT_EQ(Post(otlp, "/v1/traces", "application/json", "{\"resourceSpans\": [{"), 400);
  SendRaw(otlp, "GARBAGE / HTTP/9.9\r\n\r\n");
  SendRaw(otlp, "POST /v1/traces HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n");
  SendRaw(otlp, std::string(20000, '\0'));
  SendRaw(grpc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + std::string(512, '\xff'));
  SendRaw(grpc, "not http/2 at all");
  SendRaw(api, "GET /" + std::string(100000, 'a') + " HTTP/1.1\r\n\r\n");

  // Still alive, healthy, and it counted what it refused.
  int status = 0;
  EXPECT_EQ(Get(api, "/healthz", &status), "ok");
  EXPECT_EQ(status, 200);
  const std::string metrics = Get(api, "/metrics", &status);
  std::smatch refused;
  ASSERT_TRUE(std::regex_search(
      metrics, refused,
      std::regex(
          R"(ordertrace_receiver_refused_spans_total\{protocol="http_protobuf",reason="malformed"\} (\d+))")))
      << metrics;
  EXPECT_GE(std::stoi(refused[1]), malformed);
  serve.Signal(SIGTERM);
  EXPECT_EQ(serve.Wait(20s), 0) << serve.err();
}

// --- The API commands with a token over HTTPS ------------------------------------------------

// An HTTPS API in the shape of the gateway's, behind a bearer check: "Bearer dev-token" may
// read, "Bearer sales-token" is a valid user without the role (403), anything else 401.
class CliApiTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ASSERT_TRUE(files_.Make(dir_.string())) << "openssl failed";
    net::TlsServerOptions tls;
    tls.cert_file = files_.server_cert;
    tls.key_file = files_.server_key;
    auto context = net::TlsServerContext::Create(tls);
    ASSERT_TRUE(context.ok()) << context.status().message();
    net::HttpServerOptions options;
    options.tls = context.value();
    server_ = std::make_unique<net::HttpServer>(options);
    auto guarded = [this](std::string body, std::string content_type) {
      return [this, body, content_type](net::HttpRequest& req, net::HttpResponse& res) {
        const std::string authorization(req.Header("authorization"));
        {
          std::lock_guard<std::mutex> lock(mu_);
          seen_.push_back(authorization);
          requests_.push_back(req.method + " " + req.path + "?" + req.query + " " +
                              std::string(req.Header("content-type")) + " " + req.body);
        }
        res.content_type = "application/json";
        if (authorization == "Bearer dev-token") {
          res.body = body;
          res.content_type = content_type;
        } else if (authorization == "Bearer sales-token") {
          res.status = 403;
          res.body = R"({"error":"forbidden"})";
        } else {
          res.status = 401;
          res.headers.emplace_back("WWW-Authenticate", "Bearer");
          res.body = R"({"error":"unauthorized"})";
        }
      };
    };
    server_->Route(
        "GET", "/api/v1/orders/*",
        guarded(R"({"order_id":"ORD-1","stage":"SUBMITTED","stuck":false})", "application/json"));
    server_->Route("GET", "/api/v1/orders",
                   guarded(R"({"orders":[],"next_cursor":null})", "application/json"));
    server_->Route("POST", "/api/v1/orders/lookup-partner",
                   guarded(R"({"orders":[],"next_cursor":null})", "application/json"));
    server_->Route("GET", "/metrics",
                   guarded("ordertrace_journey_stuck_orders 0\n", "text/plain; version=0.0.4"));
    ASSERT_TRUE(server_->Start().ok());
    api_ = "https://localhost:" + std::to_string(server_->port());
    dev_token_ = (dir_ / "dev.token").string();
    std::ofstream(dev_token_) << "dev-token\n";
    sales_token_ = (dir_ / "sales.token").string();
    std::ofstream(sales_token_) << "sales-token\n";
  }
  void TearDown() override {
    server_->Shutdown(1s);
    unsetenv("ORDERTRACE_TOKEN");
    unsetenv("ORDERTRACE_CA_FILE");
    CliTest::TearDown();
  }
  std::vector<std::string> Seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  // "METHOD path?query content-type body" of each request.
  std::vector<std::string> Requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  ordertrace::testing_support::TlsFiles files_;
  std::unique_ptr<net::HttpServer> server_;
  std::string api_, dev_token_, sales_token_;
  std::mutex mu_;
  std::vector<std::string> seen_;
  std::vector<std::string> requests_;
};

TEST_F(CliApiTest, OrderStuckAndWatchSendTheTokenFromTheFile) {
  std::string out, err;
  EXPECT_EQ(Run({"order", "ORD-1", "--api", api_, "--token-file", dev_token_, "--ca-file",
                 files_.ca_cert},
                &out, &err),
            0)
      << err;
  EXPECT_NE(out.find("order ORD-1"), std::string::npos) << out;
  EXPECT_EQ(Run({"stuck", "--api", api_, "--token-file", dev_token_, "--ca-file", files_.ca_cert},
                &out, &err),
            0)
      << err;
  EXPECT_NE(out.find("no stuck orders"), std::string::npos) << out;
  EXPECT_EQ(Run({"watch", "--once", "--api", api_, "--token-file", dev_token_, "--ca-file",
                 files_.ca_cert},
                &out, &err),
            0)
      << out << err;
  const auto seen = Seen();
  ASSERT_GE(seen.size(), 3u);
  for (const auto& a : seen) EXPECT_EQ(a, "Bearer dev-token");
}

// `stuck --partner`: a pseudonym goes in the query string, a clear id only in a POST body.
TEST_F(CliApiTest, StuckByPartnerKeepsAClearIdOutOfTheUrl) {
  std::string out, err;
  const std::string pseudonym = "pse:k1:AAAAAAAAAAAAAAAAAAAAAA";
  EXPECT_EQ(Run({"stuck", "--partner", pseudonym, "--api", api_, "--token-file", dev_token_,
                 "--ca-file", files_.ca_cert},
                &out, &err),
            0)
      << err;
  EXPECT_EQ(Run({"stuck", "--partner", "ACME 4711", "--stage", "SUBMITTED", "--api", api_,
                 "--token-file", dev_token_, "--ca-file", files_.ca_cert},
                &out, &err),
            0)
      << err;
  const auto requests = Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rfind("GET /api/v1/orders?stuck=true&", 0), 0u) << requests[0];
  EXPECT_NE(requests[0].find("&partner=pse%3Ak1%3AAAAAAAAAAAAAAAAAAAAAAA"), std::string::npos)
      << requests[0];
  EXPECT_EQ(requests[1].rfind("POST /api/v1/orders/lookup-partner?stuck=true&", 0), 0u)
      << requests[1];
  EXPECT_NE(requests[1].find("&stage=SUBMITTED"), std::string::npos) << requests[1];
  EXPECT_NE(requests[1].find(" application/json {\"partner\":\"ACME 4711\"}"), std::string::npos)
      << requests[1];
  EXPECT_EQ(requests[1].substr(0, requests[1].find(' ', 5)).find("ACME"), std::string::npos)
      << "the clear id in the URL: " << requests[1];
}

TEST_F(CliApiTest, TheEnvironmentGivesTokenAndCaAndTheFlagWins) {
  setenv("ORDERTRACE_TOKEN", "dev-token", 1);
  setenv("ORDERTRACE_CA_FILE", files_.ca_cert.c_str(), 1);
  std::string out, err;
  EXPECT_EQ(Run({"order", "ORD-1", "--api", api_}, &out, &err), 0) << err;
  // --token-file wins over ORDERTRACE_TOKEN: the sales user gets 403.
  EXPECT_EQ(Run({"order", "ORD-1", "--api", api_, "--token-file", sales_token_}, &out, &err), 1);
  EXPECT_NE(err.find("403"), std::string::npos) << err;
  EXPECT_NE(err.find("Developer or DevOps role"), std::string::npos) << err;
  EXPECT_EQ(err.find("sales-token"), std::string::npos) << err;
  EXPECT_EQ(out.find("sales-token"), std::string::npos) << out;
}

TEST_F(CliApiTest, RefusalsSayWhatToDoAndNeverShowTheToken) {
  std::string out, err;
  // No token: 401 and how to give one.
  EXPECT_EQ(Run({"stuck", "--api", api_, "--ca-file", files_.ca_cert}, &out, &err), 1);
  EXPECT_NE(err.find("the API wants a token: --token-file or ORDERTRACE_TOKEN"), std::string::npos)
      << err;
  EXPECT_EQ(Run({"watch", "--once", "--api", api_, "--ca-file", files_.ca_cert}, &out, &err), 1);
  EXPECT_NE(out.find("the API wants a token"), std::string::npos) << out;
  // A token the API does not accept.
  const std::string wrong = (dir_ / "wrong.token").string();
  std::ofstream(wrong) << "wrong-token-value\n";
  EXPECT_EQ(Run({"order", "X", "--api", api_, "--token-file", wrong, "--ca-file", files_.ca_cert},
                &out, &err),
            1);
  EXPECT_NE(err.find("did not accept the token"), std::string::npos) << err;
  EXPECT_EQ(err.find("wrong-token-value"), std::string::npos) << err;
  // Without the CA file the server is not trusted; a bad CA file or token file is a usage error.
  EXPECT_EQ(Run({"order", "X", "--api", api_, "--token-file", dev_token_}, &out, &err), 1);
  EXPECT_NE(err.find("certificate verify failed"), std::string::npos) << err;
  EXPECT_EQ(
      Run({"order", "X", "--api", api_, "--ca-file", (dir_ / "none.pem").string()}, &out, &err), 2);
  EXPECT_NE(err.find("none.pem"), std::string::npos) << err;
  EXPECT_EQ(
      Run({"stuck", "--api", api_, "--token-file", (dir_ / "none.token").string()}, &out, &err), 2);
  EXPECT_NE(err.find("none.token"), std::string::npos) << err;
  // Never the token in clear text to another host.
  EXPECT_EQ(
      Run({"order", "X", "--api", "http://192.0.2.1:8080", "--token-file", dev_token_}, &out, &err),
      2);
  EXPECT_NE(err.find("use https://"), std::string::npos) << err;
  EXPECT_EQ(err.find("dev-token"), std::string::npos) << err;
}

}  // namespace
