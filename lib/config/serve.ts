import { isIP } from 'net';
import { z } from 'zod';

// The inference service's options (createService, `trainlarge serve`, a service.json): the models, batching,
// the address, and what keeps it safe off loopback (a bearer token) and under load (limits on a request's
// body, texts and time). lib/serve/ reads these; the CLI's help states their defaults from here.

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and 'localhost': addresses only this machine reaches. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

export const ServiceConfigSchema = z
  .object({
    models: z
      .array(
        z
          .object({
            name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
            dir: z.string().min(1),
            tokenizer: z.string().min(1).optional(),
            labels: z.array(z.string()).optional(),
            int8: z.boolean().optional(),
            device: z.enum(['cpu', 'cuda']).optional(),
          })
          .strict(),
      )
      .min(1, 'list at least one model'),
    /** The address `listen` binds. Anything but loopback needs `token` (or `insecure: true`). */
    host: z.string().min(1).default('127.0.0.1'),
    /** The port `listen` binds (0: a free one). */
    port: z.number().int().min(0).max(65535).default(8080),
    /**
     * The bearer token every request but `GET /health` must send (`authorization: Bearer TOKEN`; others get
     * 401). Required to listen off loopback, as TorchServe requires its tokens by default since 2023.
     */
    token: z.string().min(1, 'must not be empty').optional(),
    /** Listen off loopback without a token: anyone who reaches the port may use the models. */
    insecure: z.boolean().default(false),
    /** Largest request body in bytes (larger: 413). 4 MiB holds maxItems texts and pairs of maxTextChars UTF-8 characters. */
    bodyLimit: z
      .number()
      .int()
      .min(1024)
      .default(4 * 1024 * 1024),
    /** Longest a request may take, from arrival to answer, in ms (longer: 503; its queued inputs are dropped). */
    requestTimeoutMs: z.number().int().min(1).default(30_000),
    /** Most inputs in one batch (a classify batch may run as several native calls, one per part of similar lengths). */
    maxBatch: z.number().int().min(1).max(1024).default(16),
    /** How long the first input of a batch waits for others (ms). */
    maxWaitMs: z.number().min(0).max(1000).default(2),
    /** Inputs waiting per model before requests are refused with 503. */
    maxQueue: z.number().int().min(1).default(256),
    /** Longest text accepted, in characters (longer: 413). Token limits come from each model's maxLen. */
    maxTextChars: z.number().int().min(1).default(10_000),
    /** Most texts in one request (more: 413). */
    maxItems: z.number().int().min(1).default(64),
    /** libtorch intra-op and OpenBLAS threads (0: the engine's defaults). */
    threads: z.number().int().min(0).default(0),
    blasThreads: z.number().int().min(0).default(0),
    logger: z.boolean().default(false),
  })
  .strict()
  .refine((c) => new Set(c.models.map((m) => m.name)).size === c.models.length, {
    message: 'model names must be unique',
    path: ['models'],
  })
  .refine((c) => isLoopback(c.host) || c.token !== undefined || c.insecure, {
    error: (iss) => {
      const host = (iss.input as { host: string }).host;
      return `host ${host} is not loopback: give a token (requests must then send it as a bearer token), or insecure: true to serve anyone who reaches the port`;
    },
    path: ['token'],
  });
export type ServiceConfig = z.input<typeof ServiceConfigSchema>;
