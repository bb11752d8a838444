{
  "targets": [
    {
      "target_name": "cloudtap_crc32",
      "sources": ["native/crc32.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
