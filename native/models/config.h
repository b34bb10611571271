// Model hyper-parameters, named as lib/config/model.ts names them (snake_case here). That schema is the one
// place their rules and defaults are stated; validate() keeps only what protects memory and shapes.
#pragma once

#include <cstdint>
#include <string>

namespace trainlarge {

enum class Task { MLM, Classify, Translate };
enum class NormPlacement { Post, Pre };  // post-LN as BERT/RoBERTa; pre-LN as GPT-2 / fairseq normalize_before
// Translate: which matrices share the one (source = target) vocabulary's weights. All: encoder embedding =
// decoder embedding = output projection (fairseq --share-all-embeddings); Decoder: decoder embedding = output
// projection (--share-decoder-input-output-embed); None: three matrices.
enum class Tie { All, Decoder, None };
// Position embeddings: learned rows (BERT, fairseq's learned positions), or fixed sinusoids laid out as
// Marian (and transformers' MarianMT) has them: sin in the first half of the row, cos in the second.
enum class Positions { Learned, Sinusoidal };
// The feed-forward's non-linearity: exact GELU (RoBERTa), ReLU (Vaswani et al.), swish = SiLU (Marian).
enum class Activation { Gelu, Relu, Swish };

struct ModelConfig {
  Task task = Task::MLM;
  int64_t vocab_size = 0;
  int64_t max_len = 0;
  int64_t d_model = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;  // width of one head; 0: d_model / heads (a head-pruned model keeps its heads' width)
  int64_t ffn = 0;       // feed-forward width
  double dropout = 0;
  double attention_dropout = 0;
  NormPlacement norm = NormPlacement::Post;
  double layer_norm_eps = 0;
  int64_t num_labels = 0;  // classify only
  int64_t pad_id = 0;
  // Translate only (models/seq2seq.h): the encoder's and the decoder's depth (`layers` is not used), the
  // tied matrices, and the ids the decoder starts with (BOS, fed at position 0) and ends on (EOS).
  int64_t encoder_layers = 0;
  int64_t decoder_layers = 0;
  Tie tie = Tie::All;
  int64_t bos_id = 0;
  int64_t eos_id = 0;
  // Translate only, each default what every model had before (so files without them read as before):
  Positions positions = Positions::Learned;
  Activation activation = Activation::Gelu;
  bool scale_embeddings = false;   // token embeddings x sqrt(d_model) before the positions are added (Vaswani et al.)
  bool embedding_norm = true;      // post-LN: a LayerNorm on the embeddings (RoBERTa's); Marian has none
  bool final_logits_bias = false;  // a (V) bias on the output logits (Marian's final_logits_bias; `output_bias`)

  // Throws std::invalid_argument naming the field when a size would make a tensor impossible.
  void validate() const;
  int64_t head_size() const { return head_dim > 0 ? head_dim : d_model / heads; }
  // The width of q, k, v and of the projection's input: heads x head size (d_model unless heads were pruned).
  int64_t attention_dim() const { return heads * head_size(); }
  // The encoder's depth: encoder_layers for a translate model, layers otherwise.
  int64_t encoder_depth() const { return task == Task::Translate ? encoder_layers : layers; }
};

}  // namespace trainlarge
