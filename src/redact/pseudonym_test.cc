#include "redact/pseudonym.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ordertrace::redact {
namespace {

PseudonymKey Key(std::string id, char fill) {
  return PseudonymKey{std::move(id), std::string(32, fill)};
}

TEST(Pseudonymizer, MatchesAnIndependentHmac) {
  // Expected values from Python's hmac module, independently of this code:
  //   hmac.new(b'k'*32, label + b'\x1f' + value, sha256).digest()[:16], base64url unpadded.
  auto p = Pseudonymizer::Create({Key("k1", 'k')});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Pseudonym("partner", "P-1001"), "pse:k1:PUDB3rHJRRXEtd977SpJcA");
  EXPECT_EQ((*p)->Pseudonym("phone", "+79123456789"), "pse:k1:-L9LLuIFgqNvm9KHXqTtKQ");
}

TEST(Pseudonymizer, StablePerLabelAndValueAndRecognised) {
  auto p = Pseudonymizer::Create({Key("k1", 'a'), Key("k0", 'b')}).value();
  const std::string a = p->Pseudonym("partner", "P-1");
  EXPECT_EQ(a, p->Pseudonym("partner", "P-1"));
  EXPECT_NE(a, p->Pseudonym("user", "P-1"));  // labels keep classes apart
  EXPECT_NE(a, p->Pseudonym("partner", "P-2"));
  EXPECT_TRUE(p->IsPseudonym(a));
  const auto all = p->AllPseudonyms("partner", "P-1");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], a);
  EXPECT_EQ(all[1].rfind("pse:k0:", 0), 0u);
  EXPECT_TRUE(p->IsPseudonym(all[1]));  // an old key's pseudonym passes unchanged
  EXPECT_FALSE(p->IsPseudonym("pse:k9:PUDB3rHJRRXEtd977SpJcA"));  // unknown key id
  EXPECT_FALSE(p->IsPseudonym("pse:k1:short"));
  EXPECT_FALSE(p->IsPseudonym("pse:k1:PUDB3rHJRRXEtd977SpJc!"));
  EXPECT_FALSE(p->IsPseudonym("P-1"));
}

TEST(Pseudonymizer, RotationStartsANewSpace) {
  auto before = Pseudonymizer::Create({Key("k1", 'a')}).value();
  auto after = Pseudonymizer::Create({Key("k2", 'c'), Key("k1", 'a')}).value();
  EXPECT_NE(before->Pseudonym("partner", "P-1"), after->Pseudonym("partner", "P-1"));
  EXPECT_EQ(after->Pseudonym("partner", "P-1").rfind("pse:k2:", 0), 0u);
  EXPECT_EQ(after->AllPseudonyms("partner", "P-1")[1], before->Pseudonym("partner", "P-1"));
}

TEST(Pseudonymizer, RefusesBadKeys) {
  EXPECT_FALSE(Pseudonymizer::Create({}).ok());
  EXPECT_FALSE(Pseudonymizer::Create({PseudonymKey{"k1", std::string(31, 'x')}}).ok());
  EXPECT_FALSE(Pseudonymizer::Create({Key("k1", 'a'), Key("k1", 'b')}).ok());
  EXPECT_FALSE(Pseudonymizer::Create({Key("bad:id", 'a')}).ok());
  EXPECT_FALSE(Pseudonymizer::Create({Key("", 'a')}).ok());
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ot-pseudonym-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(KeyFileTest, CreatedOnceWith0600AndReadBack) {
  const std::string path = (dir_ / "pseudonym.key").string();
  bool created = false;
  auto first = LoadOrCreateKey("k1", path, &created);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(created);
  EXPECT_EQ(first->secret.size(), 43u);  // 32 random bytes as base64url text
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = LoadOrCreateKey("k1", path, &created);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(created);
  EXPECT_EQ(again->secret, first->secret);
}

TEST_F(KeyFileTest, ErrorsNameTheFileNeverTheSecret) {
  const std::string path = (dir_ / "short.key").string();
  std::ofstream(path) << "secret-but-too-short\n";
  ::chmod(path.c_str(), 0600);
  auto r = LoadKey("k1", path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(path), std::string::npos);
  EXPECT_EQ(r.status().message().find("secret-but"), std::string::npos);

  const std::string open = (dir_ / "open.key").string();
  std::ofstream(open) << std::string(40, 'z');
  ::chmod(open.c_str(), 0644);
  r = LoadKey("k1", open);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("chmod 600"), std::string::npos);

  EXPECT_FALSE(LoadKey("k1", (dir_ / "missing.key").string()).ok());

  const std::string text = (dir_ / "text.key").string();
  std::ofstream(text) << std::string(40, 'q') << "\n";
  ::chmod(text.c_str(), 0600);
  r = LoadKey("k1", text);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->secret, std::string(40, 'q'));  // the trailing newline is not part of the key
}

// Found by the leak test (1 start in ~128 failed: "holds fewer than 32 bytes"): a created key was
// 32 raw random bytes, and LoadKey drops trailing '\n' and '\r' (for text keys), so a key whose
// last byte was one of them was refused and the gateway did not start.  With raw keys each has a
// 2/256 chance; 3,000 keys miss it with probability 4e-11.
TEST(LoadOrCreateKey, EveryKeyItCreatesLoads) {
  // In memory where there is /dev/shm: every key is fsynced, 3,000 syncs on a disk take 20 s.
  const std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                         ? std::filesystem::path("/dev/shm")
                                         : std::filesystem::temp_directory_path();
  const std::filesystem::path dir = base / ("ordertrace_leak_keys_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  int refused = 0;
  std::string why;
  for (int i = 0; i < 3000; ++i) {
    const std::string path = (dir / ("key" + std::to_string(i))).string();
    bool created = false;
    auto key = LoadOrCreateKey("k1", path, &created);
    if (!key.ok()) {
      ++refused;
      why = key.status().message();
    }
  }
  std::filesystem::remove_all(dir);
  EXPECT_EQ(refused, 0) << refused
                        << " of 3000 keys created by LoadOrCreateKey were refused by LoadKey "
                           "(src/redact/pseudonym.cc), e.g.: "
                        << why;
}

}  // namespace
}  // namespace ordertrace::redact
