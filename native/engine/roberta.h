// transformers' RoBERTa layout (RobertaForMaskedLM, RobertaForSequenceClassification) for a post-LN
// Model, both ways. The configs (config.json) are mapped in lib/hf.ts; this maps the tensors:
//   tokens.weight                       roberta.embeddings.word_embeddings.weight
//   positions.weight (maxLen rows)      roberta.embeddings.position_embeddings.weight, rows offset by
//                                       padding_idx + 1 (RoBERTa numbers positions after the pad id)
//   (none)                              roberta.embeddings.token_type_embeddings.weight: zeros on export,
//                                       folded into the position rows on import
//   embed_norm                          roberta.embeddings.LayerNorm
//   layers.N.attn.qkv (fused)           roberta.encoder.layer.N.attention.self.{query,key,value}
//   layers.N.attn.proj, norm1           ...attention.output.dense, attention.output.LayerNorm
//   layers.N.ffn.fc1, fc2, norm2        ...intermediate.dense, output.dense, output.LayerNorm
//   mlm_head.dense, norm, bias          lm_head.dense, lm_head.layer_norm, lm_head.bias (decoder tied)
//   cls_head.dense, out                 classifier.dense, classifier.out_proj
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace trainlarge {

class Model;

// The model's tensors under transformers' names; `padding_idx` is the exported config's pad_token_id.
NamedTensors to_roberta(const Model& model, int64_t padding_idx);

// Loads a RoBERTa checkpoint's tensors into the model: every tensor the model needs must be there with
// its shape (the error names it). Non-strict (a new head on a pretrained body): the head may be missing;
// returns the model's tensor names it did not find. Pooler weights are not used.
std::vector<std::string> load_roberta(Model& model, const std::map<std::string, torch::Tensor>& tensors, int64_t padding_idx, bool strict);

}  // namespace trainlarge
