{
  "targets": [
    {
      "target_name": "cloudtap_sendmmsg",
      "conditions": [
        ["OS=='linux'", { "sources": ["native/sendmmsg.c"], "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"] }],
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
