// Flags of the trainlarge commands: each command declares its flags once (name, kind, help, and the config
// field a value feeds), and that declaration gives the parser, the --help text and the error messages.
import { z } from 'zod';
import { ConfigError, defaultOf } from '../config/parse';

/** A mistake in the command line: exit code 2, the message names the flag and what it accepts. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose help to point at. */
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export type FlagKind = 'string' | 'int' | 'number' | 'bool' | 'list' | readonly string[];

export interface Flag {
  name: string;
  kind: FlagKind;
  /** Placeholder in the help (default: by kind). */
  value?: string;
  help: string;
  /** May be given more than once (each value kept). */
  repeat?: boolean;
  /**
   * The library option this flag sets (a path of a ConfigError issue, e.g. 'lr' or 'sparsity'): a value the
   * library refuses is reported under the flag's name, with the library's own message.
   */
  field?: string;
  /** The schema `field` belongs to: the help states the default it fills in (lib/config/ holds every default). */
  defaults?: z.ZodType;
}

export interface Command {
  /** 'train', 'data prepare', ... */
  name: string;
  /** What it does, for its --help. */
  summary: string;
  /** One line for `trainlarge help` (default: summary). */
  brief?: string;
  /** The synopsis after `trainlarge NAME`, e.g. '--corpus DIR|NAME [options]'. */
  synopsis: string;
  /** Paragraphs after the flags (examples, notes). */
  notes?: string;
  flags: Flag[];
  /** What its arguments that are not flags are (e.g. 'SOURCE'); a command without it takes none. */
  operands?: string;
  /**
   * The first operand ends the flags: it and everything after it are operands, verbatim (a `--` right after
   * it, or before it, is dropped). `launch` takes a script and the script's own arguments this way.
   */
  passThrough?: boolean;
  run(args: Args): Promise<void>;
}

/** Flags every command takes. */
const HELP: Flag = { name: 'help', kind: 'bool', help: 'print this help and exit' };

function placeholder(f: Flag): string {
  if (f.value) return f.value;
  if (Array.isArray(f.kind)) return (f.kind as readonly string[]).join('|');
  switch (f.kind) {
    case 'int':
      return 'N';
    case 'number':
      return 'X';
    case 'list':
      return 'A,B,...';
    case 'bool':
      return '';
    default:
      return 'VALUE';
  }
}

/** A flag's help, with the default its schema fills in (for a flag that declares `defaults`). */
export function flagHelp(f: Flag): string {
  if (!f.defaults || f.field === undefined) return f.help;
  const v = defaultOf(f.defaults, f.field);
  if (v === undefined) return f.help;
  const text = Array.isArray(v) ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : `${v as string | number | boolean}`;
  return `${f.help} (default ${text})`;
}

export function commandHelp(cmd: Command): string {
  const rows = [...cmd.flags, HELP].map((f) => {
    const head = `  --${f.name}${f.kind === 'bool' ? '' : ` ${placeholder(f)}`}`;
    const help = flagHelp(f);
    return head.length > 30 ? `${head}\n${' '.repeat(32)}${help}` : `${head.padEnd(32)}${help}`;
  });
  return `trainlarge ${cmd.name} ${cmd.synopsis}\n\n${cmd.summary}\n\n${rows.join('\n')}${cmd.notes ? `\n\n${cmd.notes}` : ''}\n`;
}

/** The parsed command line of one command: typed getters; every flag was checked against the command's list. */
export class Args {
  constructor(
    readonly command: Command,
    readonly positional: string[],
    private readonly values: Map<string, string[]>,
  ) {}

  has(name: string): boolean {
    return this.values.has(this.flag(name).name);
  }

  string(name: string): string | undefined {
    const v = this.values.get(this.flag(name).name);
    return v?.[v.length - 1];
  }

  /** Every value of a repeatable flag, in order. */
  all(name: string): string[] {
    return this.values.get(this.flag(name).name) ?? [];
  }

  required(name: string, why = ''): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`${this.command.name}: --${name} is required${why ? ` (${why})` : ''}`, this.command.name);
    return v;
  }

  int(name: string): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n)) throw new UsageError(`--${name}: expected an integer, got '${v}'`, this.command.name);
    return n;
  }

  number(name: string): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name}: expected a number, got '${v}'`, this.command.name);
    return n;
  }

  bool(name: string): boolean {
    return this.string(name) === 'true';
  }

  list(name: string): string[] | undefined {
    return this.string(name)
      ?.split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }

  private flag(name: string): Flag {
    const f = name === 'help' ? HELP : this.command.flags.find((x) => x.name === name);
    if (!f) throw new Error(`trainlarge ${this.command.name}: no flag --${name} declared`); // a bug in the command, not the user's
    return f;
  }
}

/**
 * Parses `--flag value`, `--flag=value` and bare booleans (`--int8`, `--int8=false`) against the command's
 * flags: an unknown flag, a missing value, a second value of a flag that takes one, a value outside a
 * choice are usage errors naming the flag and what it accepts.
 */
export function parseArgs(cmd: Command, argv: string[]): Args {
  const positional: string[] = [];
  const values = new Map<string, string[]>();
  const flags = [...cmd.flags, HELP];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (cmd.passThrough && (a === '--' || !a.startsWith('--'))) {
      const rest = argv.slice(a === '--' ? i + 1 : i);
      if (rest[1] === '--') rest.splice(1, 1);
      positional.push(...rest);
      break;
    }
    if (!a.startsWith('--') || a === '--') {
      if (!cmd.operands) throw new UsageError(`${cmd.name}: unexpected argument '${a}' (it takes flags only)`, cmd.name);
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const f = flags.find((x) => x.name === name);
    if (!f) {
      const near = flags.filter((x) => x.name.includes(name) || name.includes(x.name)).map((x) => `--${x.name}`);
      throw new UsageError(
        `${cmd.name}: unknown flag --${name}${near.length ? ` (did you mean ${near.join(' or ')}?)` : ''}; ` +
          `its flags: ${flags.map((x) => `--${x.name}`).join(', ')}`,
        cmd.name,
      );
    }
    let value: string;
    if (eq >= 0) value = a.slice(eq + 1);
    else if (f.kind === 'bool') value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2))
        throw new UsageError(`--${name}: needs a value (${placeholder(f)})`, cmd.name);
      value = next;
      i++;
    }
    if (f.kind === 'bool' && value !== 'true' && value !== 'false')
      throw new UsageError(`--${name}: expected true or false, got '${value}'`, cmd.name);
    if (Array.isArray(f.kind) && !(f.kind as readonly string[]).includes(value)) {
      throw new UsageError(`--${name}: expected one of ${(f.kind as readonly string[]).join(', ')}; got '${value}'`, cmd.name);
    }
    const seen = values.get(name);
    if (seen && !f.repeat && f.kind !== 'bool')
      throw new UsageError(`--${name}: given twice ('${seen[0]}', '${value}'); give it once`, cmd.name);
    values.set(name, f.repeat && seen ? [...seen, value] : [value]);
  }
  return new Args(cmd, positional, values);
}

/**
 * A ConfigError the library raised for values that came from flags, said in the flags' names: each issue
 * whose path is a flag's `field` becomes `--flag: <the library's message>` (others keep their path).
 * Undefined when no issue is about a flag (the library's message then stands as it is).
 */
export function flagConfigError(cmd: Command, e: ConfigError): UsageError | undefined {
  const parts = e.issues.map((issue) => {
    const f = cmd.flags.find((x) => x.field !== undefined && x.field === issue.path);
    return { flag: f !== undefined, text: `${f ? `--${f.name}` : issue.path}: ${issue.message}` };
  });
  return parts.some((p) => p.flag) ? new UsageError(parts.map((p) => p.text).join('; '), cmd.name) : undefined;
}
