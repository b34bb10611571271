import { z } from 'zod';

/** A configuration or argument that failed validation. The message names every offending field. */
export class ConfigError extends Error {
  readonly issues: { path: string; message: string }[];
  constructor(what: string, issues: { path: string; message: string }[]) {
    super(`${what}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** Validates `input` against `schema`, filling defaults; throws ConfigError naming the fields. */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  throw new ConfigError(
    what,
    r.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
  );
}

/**
 * The value `schema` fills in for its field `key` when it is not given, or undefined when the field has no
 * default: what help texts state (trainlarge's CLI) instead of restating the number.
 */
export function defaultOf(schema: z.ZodType, key: string): unknown {
  let s: unknown = schema;
  // Through transforms (a pipe's input) to the object itself.
  while (s instanceof z.ZodPipe) s = s.in;
  if (!(s instanceof z.ZodObject)) throw new TypeError(`defaultOf: '${key}': the schema is not an object`);
  const field = (s.shape as Record<string, z.ZodType | undefined>)[key];
  if (!field) throw new TypeError(`defaultOf: the schema has no field '${key}'`);
  const r = field.safeParse(undefined);
  return r.success ? r.data : undefined;
}
