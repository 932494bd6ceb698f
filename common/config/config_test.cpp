#include <doctest/doctest.h>

#include "common/config/store_list.h"

namespace ddsplit::config {
namespace {

TEST_CASE("store specs parse, format and round-trip") {
  auto store = ParseStoreSpec("3=tcp://10.0.0.3:7100,tcp://10.0.0.3:7101,zone=eu-1a");
  REQUIRE(store.ok());
  CHECK(store->id == StoreId(3));
  CHECK(store->ingest == "tcp://10.0.0.3:7100");
  CHECK(store->read == "tcp://10.0.0.3:7101");
  CHECK(store->zone == "eu-1a");
  CHECK(FormatStoreSpec(*store) == "3=tcp://10.0.0.3:7100,tcp://10.0.0.3:7101,zone=eu-1a");
}

TEST_CASE("bad store specs say what is wrong") {
  CHECK(!ParseStoreSpec("tcp://x:1,tcp://x:2").ok());
  CHECK(!ParseStoreSpec("a=tcp://x:1,tcp://x:2").ok());
  CHECK(!ParseStoreSpec("1=tcp://x:1").ok());
  CHECK(!ParseStoreSpec("1=http://x:1,tcp://x:2").ok());
  CHECK(!ParseStoreSpec("1=tcp://x:1,tcp://x:2,rack=3").ok());
  auto dup = ParseStoreList("1=tcp://a:1,tcp://a:2;1=tcp://b:1,tcp://b:2");
  REQUIRE(!dup.ok());
  CHECK(dup.error().message().find("twice") != std::string::npos);
}

TEST_CASE("store lists split on semicolons and whitespace") {
  auto stores = ParseStoreList(" 0=tcp://a:1,tcp://a:2; 1=tcp://b:1,tcp://b:2\n2=tcp://c:1,tcp://c:2 ");
  REQUIRE(stores.ok());
  CHECK(stores->size() == 3);
  CHECK((*stores)[2].id == StoreId(2));
}

TEST_CASE("templates expand per store id") {
  auto names = ExpandTemplate("tcp://fragstore-{id}.fragstore:7100", 3);
  REQUIRE(names.size() == 3);
  CHECK(names[2] == "tcp://fragstore-2.fragstore:7100");
}

TEST_CASE("stores come from exactly one source") {
  auto from_template = ResolveStores({}, "", "{id}=tcp://fs-{id}.fs:7100,tcp://fs-{id}.fs:7101", 3);
  REQUIRE(from_template.ok());
  REQUIRE(from_template->size() == 3);
  CHECK((*from_template)[1].ingest == "tcp://fs-1.fs:7100");
  CHECK(ResolveStores({"0=tcp://a:1,tcp://a:2"}, "", "", 0)->size() == 1);
  CHECK(!ResolveStores({"0=tcp://a:1,tcp://a:2"}, "1=tcp://b:1,tcp://b:2", "", 0).ok());
  CHECK(!ResolveStores({}, "", "", 0).ok());
  CHECK(!ResolveStores({}, "", "{id}=tcp://x:1,tcp://x:2", 0).ok());
}

TEST_CASE("code shapes: default quorum is k + 1 and never below k") {
  CodeShape shape;
  CHECK(shape.EffectiveQuorum() == 5);
  CHECK(ValidateCodeShape(shape).ok());
  shape.write_quorum = 3;
  CHECK(!ValidateCodeShape(shape).ok());
  CodeShape no_parity{4, 0, 0};
  CHECK(no_parity.EffectiveQuorum() == 4);
  CHECK(!ValidateCodeShape({0, 2, 0}).ok());
  CHECK(!ValidateCodeShape({20, 13, 0}).ok());
}

}  // namespace
}  // namespace ddsplit::config
