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
