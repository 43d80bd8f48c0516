#include "qiusuo/io/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "qiusuo/core/error.h"
#include "qiusuo/io/file.h"
#include "test_util.h"

namespace qs {
namespace {

using ::testing::HasSubstr;
using testing_util::TempDir;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void write_sample(const std::string& path) {
  std::vector<float> a{1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b{0x3f80, 0x4000};
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.add("a", DType::F32, {2, 3}, a.data());
  w.add("b", DType::BF16, {2}, b.data());
  w.write(path);
}

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

TEST(Safetensors, RoundTrip) {
  TempDir d("st");
  write_sample(d / "x.safetensors");
  auto f = SafetensorsFile::open(d / "x.safetensors");
  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorView* a = f.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (Shape{2, 3}));
  EXPECT_EQ(a->as<float>()[5], 6.0f);
  EXPECT_EQ(f.find("b")->as<uint16_t>()[1], 0x4000);
  EXPECT_EQ(f.metadata()["format"], "pt");
  // Data section is 8-aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a->data) % 8, 0u);
}

TEST(Safetensors, TruncatedDataIsAClearError) {
  TempDir d("st");
  write_sample(d / "x.safetensors");
  std::string bytes = read_bytes(d / "x.safetensors");
  write_bytes(d / "t.safetensors", bytes.substr(0, bytes.size() - 3));
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(d / "t.safetensors"); }),
              HasSubstr("truncated safetensors file: tensor 'b'"));
}

TEST(Safetensors, TruncatedHeaderIsAClearError) {
  TempDir d("st");
  write_sample(d / "x.safetensors");
  std::string bytes = read_bytes(d / "x.safetensors");
  write_bytes(d / "t.safetensors", bytes.substr(0, 20));
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(d / "t.safetensors"); }), HasSubstr("truncated"));
  write_bytes(d / "t2.safetensors", bytes.substr(0, 5));
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(d / "t2.safetensors"); }), HasSubstr("no header"));
}

TEST(Safetensors, CorruptHeaderAndBadEntries) {
  TempDir d("st");
  auto make = [&](const std::string& json, size_t data) {
    std::string s(8, '\0');
    uint64_t n = json.size();
    std::memcpy(s.data(), &n, 8);
    s += json + std::string(data, '\0');
    write_bytes(d / "c.safetensors", s);
    return error_of([&] { SafetensorsFile::open(d / "c.safetensors"); });
  };
  EXPECT_THAT(make("{not json", 0), HasSubstr("corrupt safetensors header"));
  EXPECT_THAT(make(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", 2), HasSubstr("unsupported dtype"));
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
              HasSubstr("needs 12 bytes but data_offsets span 8"));
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), HasSubstr("malformed shape"));
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[2]}})", 8), HasSubstr("malformed header entry"));
}

TEST(Safetensors, SizesOffsetsAndOverlapsAreCheckedWithoutOverflow) {
  TempDir d("st");
  auto make = [&](const std::string& json, size_t data, uint64_t n = 0) {
    std::string s(8, '\0');
    if (n == 0) n = json.size();
    std::memcpy(s.data(), &n, 8);
    s += json + std::string(data, '\0');
    write_bytes(d / "c.safetensors", s);
    return error_of([&] { SafetensorsFile::open(d / "c.safetensors"); });
  };
  // 2^32 * 2^32 * 4 bytes wraps to 0 in 64 bits: must not pass as an empty tensor.
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0),
              HasSubstr("overflows 64 bits"));
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0),
              HasSubstr("overflows 64 bits"));
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8), HasSubstr("malformed shape"));
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4),
              HasSubstr("at most 16"));
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", 8), HasSubstr("malformed data_offsets"));
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0.0,8]}})", 8), HasSubstr("malformed data_offsets"));
  EXPECT_THAT(make(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,0]}})", 8),
              HasSubstr("end < begin"));
  EXPECT_THAT(make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
              HasSubstr("tensors 'a' and 'b' overlap"));
  EXPECT_THAT(make("{}", 0, uint64_t(1) << 40), HasSubstr("above the format's limit"));
  EXPECT_THAT(make("{}", 0, ~uint64_t(0)), HasSubstr("above the format's limit"));
  EXPECT_THAT(make(R"({"__metadata__": 5})", 0), HasSubstr("__metadata__"));
  // Empty tensors may share an offset; adjacent ones touch.
  EXPECT_EQ(make(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
            "(no error)");
}

TEST(Safetensors, MisalignedDataIsReadFromAnAlignedCopy) {
  // A header not padded to 8 bytes puts every tensor at an odd address in the map.
  TempDir d("st");
  const std::string json = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]}})";
  std::string s(8, '\0');
  uint64_t n = json.size();
  while ((8 + n) % 4 != 1) ++n;
  std::memcpy(s.data(), &n, 8);
  s += json + std::string(n - json.size(), ' ');
  const float v[3] = {1.5f, -2.0f, 3.25f};
  s.append(reinterpret_cast<const char*>(v), 12);
  s += std::string("\x80\x3f", 2);
  write_bytes(d / "m.safetensors", s);
  auto f = SafetensorsFile::open(d / "m.safetensors");
  const TensorView* a = f.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a->data) % 4, 0u);
  EXPECT_EQ(a->as<float>()[0], 1.5f);
  EXPECT_EQ(a->as<float>()[2], 3.25f);
  EXPECT_EQ(f.find("b")->as<uint16_t>()[0], 0x3f80);
  auto moved = std::move(f);  // views stay valid when the file object moves
  EXPECT_EQ(moved.find("a")->as<float>()[1], -2.0f);
}

TEST(TensorStore, RequireNamesTensorAndBothShapes) {
  TempDir d("st");
  write_sample(d / "model.safetensors");
  auto s = TensorStore::open_dir(d.path);
  EXPECT_THAT(error_of([&] { s.require("a", {3, 2}); }), HasSubstr("tensor 'a' has shape [2, 3] but the config implies [3, 2]"));
  EXPECT_THAT(error_of([&] { s.require("missing.weight", {1}); }), HasSubstr("missing tensor 'missing.weight'"));
  EXPECT_THAT(error_of([&] { s.require("a", {2, 3}, {DType::BF16}); }), HasSubstr("has dtype F32; expected BF16"));
  EXPECT_NO_THROW(s.require("a", {2, 3}));
}

TEST(TensorStore, ShardedCheckpointsAndIndexErrors) {
  TempDir d("st");
  std::vector<float> a(1000, 1.0f), b(1000, 2.0f), c(10, 3.0f);
  write_checkpoint_tensors(d.path, {{"a", DType::F32, {1000}, a.data()}, {"b", DType::F32, {1000}, b.data()},
                                    {"c", DType::F32, {10}, c.data()}},
                           /*shard_bytes=*/4500);
  ASSERT_TRUE(std::filesystem::exists(d / "model.safetensors.index.json"));
  ASSERT_TRUE(std::filesystem::exists(d / "model-00002-of-00002.safetensors"));
  auto s = TensorStore::open_dir(d.path);
  EXPECT_EQ(s.get("c").as<float>()[0], 3.0f);
  EXPECT_EQ(s.names().size(), 3u);
  {
    const std::string idx = read_bytes(d / "model.safetensors.index.json");
    std::string bad = idx;
    bad.replace(bad.find("model-00001-of-00002"), 20, "../../../../etc/pass");
    write_bytes(d / "model.safetensors.index.json", bad);
    EXPECT_THAT(error_of([&] { TensorStore::open_dir(d.path); }), HasSubstr("is not a file name in the checkpoint directory"));
    write_bytes(d / "model.safetensors.index.json", idx);
  }
  std::filesystem::remove(d / "model-00002-of-00002.safetensors");
  EXPECT_THAT(error_of([&] { TensorStore::open_dir(d.path); }), HasSubstr("shard"));
  EXPECT_THAT(error_of([&] { TensorStore::open_dir(d / "nope"); }), HasSubstr("does not exist"));
}

// populate_pages and drop_resident_pages are hints about a mapping's pages: any range, aligned
// or not, up to the file's last byte, leaves the bytes as the file has them.
TEST(MappedFile, PageHintsKeepTheContents) {
  TempDir d("pagehints");
  std::string bytes(3 * 4096 + 123, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(i * 7 + i / 4096);
  write_text_file_atomic(d / "f.bin", bytes);
  const MappedFile f = MappedFile::open(d / "f.bin");
  ASSERT_EQ(f.size(), bytes.size());
  populate_pages(nullptr, 10);
  populate_pages(f.data(), 0);
  populate_pages(f.data() + 1, 5000);              // unaligned, across a page boundary
  populate_pages(f.data() + 4000, f.size() - 4000);  // to the last byte (a partial page)
  EXPECT_EQ(std::memcmp(f.data(), bytes.data(), bytes.size()), 0);
  drop_resident_pages(f.data() + 100, f.size() - 100);
  populate_pages(f.data(), f.size());
  EXPECT_EQ(std::memcmp(f.data(), bytes.data(), bytes.size()), 0);
}

}  // namespace
}  // namespace qs
