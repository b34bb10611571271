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

  // Rows [first, first + count): one rank's share of a data-parallel step's batch (translation: its source
  // and target rows; the slices keep the whole batch's padded lengths).
  Batch rows(int64_t first, int64_t count) const {
    const int64_t B = ids.size(0), T = ids.size(1);
    Batch out;
    out.ids = ids.narrow(0, first, count).contiguous();
    if (attention_mask.defined()) out.attention_mask = attention_mask.narrow(0, first, count).contiguous();
    if (positions.defined()) {  // MLM: flat indices into (B*T); keep this share's, relative to it
      auto keep = (positions >= first * T).logical_and(positions < (first + count) * T);
      out.positions = positions.masked_select(keep) - first * T;
      out.targets = targets.masked_select(keep);
    } else {
      out.targets = targets.narrow(0, first, count).contiguous();
    }
    out.tokens = attention_mask.defined() ? out.attention_mask.sum().item<int64_t>() : tokens * count / B;
    return out;
  }
};

}  // namespace trainlarge
