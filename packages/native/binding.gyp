{
  "variables": {
    "llhttp_dir": "/usr/share/llhttp",
    "llhttp_include": "/usr/share/include/llhttp"
  },
  "targets": [
    {
      "target_name": "ringline",
      "sources": [
        "src/addon.cc",
        "src/abi.cc",
        "src/loop_ring.cc",
        "src/ring.cc",
        "src/wide_ring.cc",
        "src/sockets.cc",
        "src/seccomp.cc",
        "src/process.cc",
        "src/workers.cc",
        "src/tls.cc",
        "src/http_parser.cc",
        "src/malloc.cc",
        "src/llhttp_llhttp.c",
        "src/llhttp_api.c",
        "src/llhttp_http.c"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<(llhttp_include)",
        "<(llhttp_dir)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "LLHTTP_STRICT_MODE=1"
      ],
      "cflags": ["-O2"],
      "cflags_c": ["-fvisibility=hidden"],
      "cflags_cc": ["-std=c++20", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      # liburing.a (from liburing-dev) linked in, its symbols kept private: the binary needs only libc/libstdc++.
      "libraries": ["-l:liburing.a"],
      "ldflags": ["-Wl,--exclude-libs,liburing.a"]
    }
  ]
}
