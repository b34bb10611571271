import { SingleBar } from 'cli-progress';
import { UNBOUNDED_STEPS } from '../config/train';
import { Progress } from './trainer';

/**
 * An onProgress callback for terminals: a progress bar with loss, validation perplexity, tokens/s and
 * ETA on a TTY; one JSON line per update otherwise (CI logs, pipes).
 */
export function progressReporter(
  label: string,
  stream: NodeJS.WriteStream = process.stderr,
): {
  onProgress: (p: Progress) => void;
  stop: () => void;
} {
  if (!stream.isTTY) {
    let last = 0;
    return {
      onProgress: (p) => {
        const now = Date.now();
        if (now - last < 2000 && p.step < p.maxSteps) return; // a line every 2 s is plenty for a log
        last = now;
        stream.write(
          JSON.stringify({
            label,
            step: p.step,
            maxSteps: p.maxSteps,
            loss: round(p.loss),
            lr: p.lr,
            tokensPerSecond: Math.round(p.tokensPerSecond),
            validLoss: p.lastEval ? round(p.lastEval.loss) : undefined,
            validPerplexity: p.lastEval ? round(p.lastEval.perplexity) : undefined,
            etaSeconds: Math.round(p.etaSeconds),
          }) + '\n',
        );
      },
      stop: () => undefined,
    };
  }
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total}{unit} | loss {loss} | valid ppl {ppl} | {tps} tok/s | ETA {eta_formatted}`,
    barsize: 24,
    stream,
    hideCursor: true,
    etaBuffer: 20,
  });
  let started = false;
  return {
    onProgress: (p) => {
      // A run bounded by seconds alone (an open-ended schedule) fills the bar with training seconds, not steps.
      const bySeconds = p.maxSteps >= UNBOUNDED_STEPS;
      const payload = {
        unit: bySeconds ? ' s' : '',
        loss: round(p.loss).toFixed(3),
        ppl: p.lastEval ? round(p.lastEval.perplexity).toFixed(2) : '-',
        tps: Math.round(p.tokensPerSecond),
      };
      const value = bySeconds ? Math.round(p.trainSeconds) : p.step;
      if (!started) {
        bar.start(bySeconds ? Math.round(p.trainSeconds + p.etaSeconds) : p.maxSteps, value, payload);
        started = true;
      } else bar.update(value, payload);
    },
    stop: () => started && bar.stop(),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
