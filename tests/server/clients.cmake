# `q3vl serve` driven by real clients (tests/server/clients): the official openai npm SDK, a
# bounded load test, and the README's curl examples. Node.js and the packages that
# scripts/setup.sh installs into .deps/node (openai, ajv) are needed; without them the tests are
# not registered.
set(Q3VL_LOAD_SECONDS 60 CACHE STRING "How long server.load_test runs, in seconds")
set(Q3VL_NODE_MODULES "${CMAKE_SOURCE_DIR}/.deps/node/node_modules")
find_program(NODE node)
if(NOT NODE)
  message(WARNING "node not found: the server client tests (server.openai_sdk, server.load_test, server.curl_examples) are not registered")
elseif(NOT EXISTS "${Q3VL_NODE_MODULES}/openai/package.json" OR NOT EXISTS "${Q3VL_NODE_MODULES}/ajv/package.json")
  message(WARNING "openai/ajv not under ${Q3VL_NODE_MODULES} (scripts/setup.sh installs them): the server client tests are not registered")
else()
  set(_clients ${CMAKE_CURRENT_LIST_DIR}/clients)
  set(_env "Q3VL=$<TARGET_FILE:q3vl_cli>" "Q3VL_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

  add_test(NAME server.openai_sdk COMMAND ${NODE} --test ${_clients}/openai_sdk.test.mjs)
  set_tests_properties(server.openai_sdk PROPERTIES ENVIRONMENT "${_env}" LABELS server TIMEOUT 240)

  add_test(NAME server.curl_examples COMMAND bash ${_clients}/curl_examples.sh $<TARGET_FILE:q3vl_cli> ${CMAKE_SOURCE_DIR})
  set_tests_properties(server.curl_examples PROPERTIES ENVIRONMENT "${_env}" LABELS server SKIP_RETURN_CODE 77 TIMEOUT 120)

  # It runs alone, as it loads every core. Under a sanitizer (make asan, make tsan) it runs shorter
  # and without its RSS bound, which means nothing with a sanitizer's allocator.
  set(_load_env "Q3VL_LOAD_SECONDS=${Q3VL_LOAD_SECONDS}")
  if(Q3VL_SANITIZE OR Q3VL_TSAN)
    set(_load_env "Q3VL_LOAD_SECONDS=30;Q3VL_LOAD_NO_RSS_CHECK=1")
  endif()
  add_test(NAME server.load_test COMMAND ${NODE} ${_clients}/load_test.mjs)
  set_tests_properties(server.load_test PROPERTIES ENVIRONMENT "${_env};${_load_env}"
                       LABELS "server;load" TIMEOUT 400 RUN_SERIAL TRUE)
endif()
