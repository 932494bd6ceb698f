# The fuzz targets and the libraries each links, shared by fuzz/CMakeLists.txt (libFuzzer
# binaries, DDSPLIT_FUZZ builds with clang) and tests/reliability/CMakeLists.txt (replay tests
# that run the kept corpus and regression inputs through every target in every build).
set(DDSPLIT_FUZZ_TARGETS
  wire_envelope
  fragment_header
  codec_roundtrip
  assembler_logic
  fragment_store_ops
  fragstore_server
  splitter_server
  assembler_server)

set(DDSPLIT_FUZZ_LIBS_wire_envelope ddsplit_wire ddsplit_fragstore ddsplit_codec)
set(DDSPLIT_FUZZ_LIBS_fragment_header ddsplit_wire ddsplit_codec)
set(DDSPLIT_FUZZ_LIBS_codec_roundtrip ddsplit_splitter ddsplit_codec ddsplit_transport)
set(DDSPLIT_FUZZ_LIBS_assembler_logic ddsplit_assembler)
set(DDSPLIT_FUZZ_LIBS_fragment_store_ops ddsplit_fragstore ddsplit_test_support RocksDB::rocksdb-shared)
set(DDSPLIT_FUZZ_LIBS_fragstore_server ddsplit_fragstore ddsplit_codec RocksDB::rocksdb-shared)
set(DDSPLIT_FUZZ_LIBS_splitter_server ddsplit_splitter ddsplit_fragstore)
set(DDSPLIT_FUZZ_LIBS_assembler_server ddsplit_assembler)

# The libraries whose code the targets exercise: instrumented for coverage in fuzz builds.
set(DDSPLIT_FUZZ_INSTRUMENTED ddsplit_base ddsplit_wire ddsplit_codec ddsplit_transport
  ddsplit_placement ddsplit_config ddsplit_fragstore ddsplit_splitter ddsplit_assembler)

# The gateway's targets, once its library exists (services/gateway, written in another issue).
if(TARGET ddsplit_gateway)
  list(APPEND DDSPLIT_FUZZ_TARGETS gateway_http_api gateway_requests)
  set(DDSPLIT_FUZZ_LIBS_gateway_http_api ddsplit_gateway nlohmann_json::nlohmann_json)
  set(DDSPLIT_FUZZ_LIBS_gateway_requests ddsplit_gateway ddsplit_wire ddsplit_transport nlohmann_json::nlohmann_json)
  list(APPEND DDSPLIT_FUZZ_INSTRUMENTED ddsplit_gateway ddsplit_client)
endif()

set(DDSPLIT_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
