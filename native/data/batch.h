// One step's input, as the batchers produce it and the model consumes it.
#pragma once

#include <torch/torch.h>

namespace trainlarge {

struct Batch {
  torch::Tensor ids;             // (B, T) int64 token ids (translate: the source)
  torch::Tensor attention_mask;  // (B, T) bool, true = real token; undefined when nothing is padded
  torch::Tensor targets;         // MLM: (N) original ids at the masked positions; classify: (B) labels;
                                 // translate: (B, T') target ids ending in EOS, then pad (models/seq2seq.h)
  torch::Tensor positions;       // MLM: (N) flat indices into B*T of the masked positions; else undefined
  int64_t tokens = 0;            // non-pad input tokens, for throughput

  Batch to(const c10::Device& device) const {
    auto move = [&](const torch::Tensor& t) { return t.defined() ? t.to(device, /*non_blocking=*/true) : t; };
    return Batch{move(ids), move(attention_mask), move(targets), move(positions), tokens};
  }
};

}  // namespace trainlarge
