{
  "targets": [
    {
      "target_name": "trainlarge_engine",
      "type": "static_library",
      "sources": ["<!@(node scripts/sources.js engine --unity build/unity 8)"],
      "include_dirs": ["native"],
      "defines": ["<!@(node scripts/torch.js defines)"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<!@(node scripts/torch.js cflags)", "<!@(node scripts/torch.js isystem)", "-isystem", "<(module_root_dir)/native/third_party", "-O3", "-fPIC", "-fexceptions", "-frtti",
        "-Wno-unused-parameter", "-Werror=deprecated-declarations"]
    },
    {
      "target_name": "trainlarge",
      "dependencies": ["trainlarge_engine"],
      "sources": ["<!@(node scripts/sources.js bind --unity build/unity 8)"],
      "include_dirs": [
        "native",
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "<!@(node scripts/torch.js defines)"
      ],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<!@(node scripts/torch.js cflags)", "<!@(node scripts/torch.js isystem)", "-isystem", "<(module_root_dir)/native/third_party", "-O3", "-fexceptions", "-frtti",
        "-Wno-unused-parameter", "-Werror=deprecated-declarations"],
      "ldflags": ["<!@(node scripts/torch.js ldflags)"],
      "libraries": ["<!@(node scripts/torch.js libs)", "-ldl"]
    },
    {
      "target_name": "trainlarge_spm",
      "type": "shared_library",
      "product_prefix": "",
      "product_extension": "so",
      "sources": ["<!@(node scripts/sources.js tokenizer)"],
      "include_dirs": ["native"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-frtti", "-fvisibility=hidden"],
      "libraries": ["-lsentencepiece_train", "-lsentencepiece", "-lpthread"]
    }
  ]
}
