// Starts the inference service: the same program as `trainlarge serve` (lib/cli/serve.ts, over lib/serve/).
//   node dist/examples/service/main.js --help
//   node dist/examples/service/main.js runs/sentiment                  (served as "sentiment"; tokenizer and labels from the directory)
//   node dist/examples/service/main.js --model NAME=DIR[:int8] [--model ...] [--port 8080] [--max-batch 16] [--max-wait-ms 2] [--max-queue 256]
//   node dist/examples/service/main.js --config service.json [--host 127.0.0.1] [--port 8080]
// Routes: POST /v1/models/NAME/classify, /fill-mask and (translate models) /translate {"text": [...], "beam"?: 1..16}.
// SIGINT/SIGTERM: stop accepting, answer every admitted request, free the models, exit 0.
import { runCli } from '../../lib';

void runCli(['serve', ...process.argv.slice(2)], { prog: 'node dist/examples/service/main.js' }).then((code) => process.exit(code));
