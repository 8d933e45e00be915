# Third-party dependencies: Debian -dev packages, plus the ONNX Runtime SDK from scripts/setup.sh
# (or any official ONNX Runtime release passed as -DQ3VL_ORT_ROOT=...).
find_package(ONNX REQUIRED)            # libonnx-dev: protobuf classes for writing models
find_package(Protobuf REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)     # libpcre2-dev: tokenizer pre-split regex
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)  # libutf8proc-dev: tokenizer NFC
find_package(JPEG REQUIRED)                                      # libjpeg-dev (libjpeg-turbo): image decoding
find_package(PNG REQUIRED)                                       # libpng-dev: image decoding
pkg_check_modules(WEBP REQUIRED IMPORTED_TARGET libwebp libwebpdemux)  # libwebp-dev: image decoding
# FFmpeg (Debian 12: 5.1): video decoding; the encoders are only used by the test-clip writer.
pkg_check_modules(AVFORMAT REQUIRED IMPORTED_TARGET libavformat)  # libavformat-dev
pkg_check_modules(AVCODEC REQUIRED IMPORTED_TARGET libavcodec)    # libavcodec-dev
pkg_check_modules(AVUTIL REQUIRED IMPORTED_TARGET libavutil)      # libavutil-dev
pkg_check_modules(SWSCALE REQUIRED IMPORTED_TARGET libswscale)    # libswscale-dev

find_path(Q3VL_ORT_INCLUDE onnxruntime_cxx_api.h
  PATHS "${Q3VL_ORT_ROOT}/include" "${Q3VL_ORT_ROOT}/include/onnxruntime" NO_DEFAULT_PATH)
find_library(Q3VL_ORT_LIBRARY onnxruntime PATHS "${Q3VL_ORT_ROOT}/lib" NO_DEFAULT_PATH)
if(NOT Q3VL_ORT_INCLUDE OR NOT Q3VL_ORT_LIBRARY)
  message(FATAL_ERROR "ONNX Runtime not found under Q3VL_ORT_ROOT=${Q3VL_ORT_ROOT}. "
                      "Run scripts/setup.sh (or `make setup`), or pass -DQ3VL_ORT_ROOT=<sdk root>.")
endif()
add_library(q3vl_onnxruntime SHARED IMPORTED GLOBAL)
set_target_properties(q3vl_onnxruntime PROPERTIES
  IMPORTED_LOCATION "${Q3VL_ORT_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${Q3VL_ORT_INCLUDE}")
get_filename_component(Q3VL_ORT_LIBDIR "${Q3VL_ORT_LIBRARY}" DIRECTORY)
# Binaries find the SDK's library without LD_LIBRARY_PATH: in the build tree where it is; once
# installed, next to libq3vl (cmake --install copies it there).
set(CMAKE_BUILD_RPATH "${Q3VL_ORT_LIBDIR}")
set(CMAKE_INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR};$ORIGIN")
find_package(OpenSSL REQUIRED)                                   # libssl-dev: SHA-256 of media (KV cache identity)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)  # libcpp-httplib-dev: `q3vl serve`
