// trainlarge compress --task translate: the translator flow of lib/cli/compress.ts.
import * as fs from 'fs';
import * as path from 'path';
import { compressedSize, CompressionTraining, Int8Engine, PruneOptions, QuantizeOptions, toInt8 } from '../compress/ops';
import { TrainConfigInput } from '../config/train';
import { ParallelFilesSpec } from '../data/parallel-files';
import { Dataset } from '../data/task';
import { Tokenizer } from '../data/tokenizer';
import { RUN_FILES } from '../io';
import { Transformer } from '../model';
import { progressReporter } from '../train/progress';
import { Args, UsageError } from './args';
import { device, TRANSLATE_TASK, writeTaskRecord } from './common';
import { applyCompression, partBytes, printParts } from './compress-steps';

/**
 * compress on a translator (trainlarge finetune --task translate): pruned and/or quantized, saved packed with its
 * tokenizer and task.json; BLEU before and after on the first 200 test pairs (valid when there is no test split)
 * when the pairs are known, and the file's bytes.
 */
export async function compressTranslator(o: {
  args: Args;
  dir: string;
  out: string;
  tok: Tokenizer;
  spec?: ParallelFilesSpec;
  maxLen?: number;
  pruneOptions?: PruneOptions;
  quantizeOptions?: QuantizeOptions;
  config: TrainConfigInput;
  int8: boolean;
}): Promise<void> {
  const { args } = o;
  let model = await Transformer.load(o.dir, { device: device(args) });
  const done: Transformer[] = [];
  const bars: { stop: () => void }[] = [];
  let task: Awaited<ReturnType<typeof Dataset.parallel>> | undefined;
  try {
    if (model.config.task !== 'translate')
      throw new UsageError(`--task translate: ${o.dir} holds a '${model.config.task}' model, not a translator`, 'compress');
    const maxLen = o.maxLen ?? model.config.maxLen;
    task = o.spec ? await Dataset.parallel({ source: o.spec, tokenizer: o.tok, maxLen }) : undefined;
    const evalSet = task?.test ?? task?.valid;
    const bleu = async (m: Transformer) => (evalSet ? (await m.evaluate(evalSet, { metric: 'bleu', maxSamples: 200 })).bleu : undefined);
    const training = (what: string): CompressionTraining => {
      if (!task) throw new UsageError(`${what}: fine-tunes, so it needs the pairs: give --task translate --train FILE,...`, 'compress');
      const bar = progressReporter(`${what} ${task.name}`);
      bars.push(bar);
      return { data: task.train, config: o.config, fit: { onProgress: bar.onProgress } };
    };
    const beforeSize = await compressedSize(model);
    const before = { bleu: await bleu(model), bytes: beforeSize.bytes };
    model = await applyCompression(model, o, training, done);
    for (const b of bars.splice(0)) b.stop();
    await model.save(o.out, { tokenizer: o.tok });
    await writeTaskRecord(o.out, { source: TRANSLATE_TASK, ...(o.spec ? { parallel: o.spec } : {}), maxLen });
    const fileBytes = fs.statSync(path.join(o.out, RUN_FILES.weights)).size;
    const after = { bleu: await bleu(model), bytes: (await compressedSize(model)).bytes, fileBytes };
    let int8Bleu: number | undefined;
    if (o.int8) {
      const fast = await toInt8(model, { engine: args.string('engine') as Int8Engine | undefined });
      int8Bleu = await bleu(fast);
      fast.dispose();
    }
    const parts = await partBytes(beforeSize, model);
    const result = {
      dir: o.out,
      task: TRANSLATE_TASK,
      parts,
      before,
      after,
      ...(int8Bleu !== undefined ? { int8Bleu } : {}),
      ...(evalSet ? { bleuPairs: Math.min(200, evalSet.size) } : {}),
      compression: { pruned: Object.keys(model.compression.pruned).length, quantized: Object.keys(model.compression.quantized).length },
    };
    if (args.bool('json')) console.log(JSON.stringify(result));
    else {
      if (evalSet)
        console.log(
          `BLEU on ${result.bleuPairs} ${task?.test ? 'test' : 'validation'} pairs: ${before.bleu!.toFixed(2)} before, ${after.bleu!.toFixed(2)} after` +
            `${int8Bleu !== undefined ? `, ${int8Bleu.toFixed(2)} on int8 kernels` : ''}`,
        );
      else console.log('no test or validation pairs known (task.json names none): BLEU not measured');
      console.log(
        `bytes: ${before.bytes.toLocaleString('en-US')} before, ${after.bytes.toLocaleString('en-US')} after ` +
          `(${(before.bytes / after.bytes).toFixed(2)}x smaller)`,
      );
      printParts(parts);
      console.log(`saved ${o.out}: model.safetensors (${fileBytes.toLocaleString('en-US')} bytes), config.json, the tokenizer, task.json`);
    }
  } finally {
    for (const b of bars) b.stop();
    model.dispose();
    for (const m of done) m.dispose();
    task?.dispose();
  }
}
