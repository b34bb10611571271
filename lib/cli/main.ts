// The trainlarge command line: the command table, `help`, and how each kind of failure is reported.
//   exit 0: done; 1: the work failed (the library's message); 2: a usage mistake (a bad or missing flag);
//   130: stopped by Ctrl-C after a checkpoint.
import { ConfigError } from '../config/parse';
import { Command, commandHelp, flagConfigError, parseArgs, UsageError } from './args';
import { compress } from './compress';
import { dataFetch, dataList, dataPrepare, dataVerify } from './data';
import { experimentReport, experimentRun, recommend } from './experiment';
import { exportCommand } from './export';
import { finetune } from './finetune';
import { launch } from './launch';
import { serve } from './serve';
import { train } from './train';
import { translate } from './translate';

/** In the order `trainlarge help` lists them: the paper's workflow first. */
export const COMMANDS: Command[] = [
  train,
  finetune,
  compress,
  exportCommand,
  translate,
  serve,
  dataList,
  dataFetch,
  dataPrepare,
  dataVerify,
  experimentRun,
  experimentReport,
  recommend,
  launch,
];

function usage(): string {
  const rows = COMMANDS.map((c) => `  ${c.name.padEnd(18)} ${c.brief ?? c.summary}`);
  return (
    'trainlarge <command> [flags]   (trainlarge <command> --help for its flags)\n\n' +
    `${rows.join('\n')}\n\n` +
    'The workflow:\n' +
    '  trainlarge train    --corpus english-prose --dir runs/mlm --steps 2000\n' +
    '  trainlarge finetune --from runs/mlm --task sentiment --dir runs/sentiment\n' +
    '  trainlarge compress --model runs/sentiment --prune 0.5 --bits 4 --dir runs/sentiment-p50-q4\n' +
    '  trainlarge export   --model runs/sentiment-p50-q4 --format hf --dir runs/sentiment-hf\n' +
    '  trainlarge serve    runs/sentiment-p50-q4\n'
  );
}

/** The command `argv` names, and the arguments after its name; undefined when it names none. */
function find(argv: string[]): { cmd: Command; rest: string[] } | undefined {
  for (const cmd of COMMANDS) {
    const words = cmd.name.split(' ');
    if (words.every((w, i) => argv[i] === w)) return { cmd, rest: argv.slice(words.length) };
  }
  return undefined;
}

/**
 * Runs one command line and returns the exit code (errors are printed, not thrown). `prog` names the program
 * in messages (examples/service/main.js passes its own).
 */
export async function runCli(argv: string[], opts: { prog?: string } = {}): Promise<number> {
  const prog = opts.prog ?? 'trainlarge';
  const words = argv.filter((a) => !a.startsWith('--'));
  if (argv.length === 0 || words[0] === 'help' || (argv[0] === '--help' && words.length === 0)) {
    const about = words[0] === 'help' && words.length > 1 ? find(words.slice(1)) : undefined;
    console.log(about ? commandHelp(about.cmd) : usage());
    return 0;
  }
  const found = find(argv);
  let cmd: Command | undefined;
  try {
    if (!found) {
      const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `)).map((c) => c.name);
      throw new UsageError(
        group.length
          ? `'${argv.slice(0, 2).join(' ')}' is not a command; ${argv[0]} has: ${group.join(', ')}`
          : `unknown command '${words.join(' ')}'; the commands: ${COMMANDS.map((c) => c.name).join(', ')}`,
      );
    }
    cmd = found.cmd;
    const args = parseArgs(cmd, found.rest);
    if (args.has('help')) {
      console.log(commandHelp(cmd));
      return 0;
    }
    await cmd.run(args);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    const usageError = e instanceof UsageError ? e : e instanceof ConfigError && cmd ? flagConfigError(cmd, e) : undefined;
    if (usageError) {
      const about = usageError.command ?? cmd?.name;
      console.error(
        `${prog}: ${usageError.message}\n${about ? `(${prog === 'trainlarge' ? `trainlarge ${about}` : prog} --help lists the flags)` : `(${prog} help lists the commands)`}`,
      );
      return 2;
    }
    const err = e as Error;
    console.error(`${prog}: ${process.env.TRAINLARGE_DEBUG && !(e instanceof ConfigError) ? err.stack : err.message}`);
    return typeof process.exitCode === 'number' && process.exitCode !== 0 ? process.exitCode : 1;
  }
}
