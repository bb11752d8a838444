{
  "targets": [
    {
      "target_name": "cloudtap_checksum",
      "sources": ["native/checksum.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
