import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { SetupError } from '../core/setup-error.ts';
import { canonicalJson } from './canonical-json.ts';

/**
 * HMAC-SHA256 signatures over a canonical form of { purpose, body, kid, iat, exp }. The bot signs
 * jobs and the agent signs reports with the shared JOB_SIGNING_KEY, so someone who can write to
 * Redis cannot make the on-premises agent act, nor make the bot post a forged result.
 * `purpose` keeps a signed report from being replayed as a job and the other way round.
 */
export const MIN_SIGNING_KEY_LENGTH = 32;

export const signatureSchema = z.object({
  kid: z.string().regex(/^[0-9a-f]{8}$/),
  iat: z.number().int().positive(),
  exp: z.number().int().positive(),
  mac: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
}).strict();
export type Signature = z.infer<typeof signatureSchema>;

export const envelopeSchema = z.object({ body: z.unknown(), sig: signatureSchema }).strict();
export interface Envelope<T> {
  body: T;
  sig: Signature;
}

export type Purpose = 'job' | 'report';

export interface EnvelopeSignerOptions {
  key: string;
  now?: () => number;
}

export class EnvelopeSigner {
  readonly #key: Buffer;
  readonly #kid: string;
  readonly #now: () => number;

  constructor(options: EnvelopeSignerOptions) {
    if (options.key.length < MIN_SIGNING_KEY_LENGTH) {
      throw new SetupError('CONFIG_INVALID', `JOB_SIGNING_KEY must be at least ${MIN_SIGNING_KEY_LENGTH} characters.`, {
        hint: 'Generate one with `openssl rand -base64 48` and give the same value to the bot and the agent.',
      });
    }
    this.#key = Buffer.from(options.key, 'utf8');
    // The key id names the key without revealing it, so a mismatch between bot and agent is obvious in logs.
    this.#kid = createHash('sha256').update(this.#key).digest('hex').slice(0, 8);
    this.#now = options.now ?? Date.now;
  }

  get kid(): string {
    return this.#kid;
  }

  sign<T>(purpose: Purpose, body: T, ttlMs: number): Envelope<T> {
    const iat = this.#now();
    const exp = iat + ttlMs;
    return { body, sig: { kid: this.#kid, iat, exp, mac: this.#mac(purpose, body, this.#kid, iat, exp) } };
  }

  /**
   * Checks shape, key id, MAC and expiry, then parses the body with `schema`. Throws SetupError
   * (never retryable): JOB_SIGNATURE_INVALID, JOB_EXPIRED or JOB_INVALID.
   */
  verify<S extends z.ZodTypeAny>(purpose: Purpose, data: unknown, schema: S): { body: z.output<S>; sig: Signature } {
    const envelope = envelopeSchema.safeParse(data);
    if (!envelope.success) {
      throw new SetupError('JOB_SIGNATURE_INVALID', 'The job has no valid signature block.');
    }
    const { body, sig } = envelope.data;
    if (sig.kid !== this.#kid) {
      throw new SetupError('JOB_SIGNATURE_INVALID', `The job was signed with key ${sig.kid}, not this process's key ${this.#kid}.`, {
        hint: 'Give the bot and the agent the same JOB_SIGNING_KEY.',
      });
    }
    let expected: string;
    try {
      expected = this.#mac(purpose, body, sig.kid, sig.iat, sig.exp);
    } catch {
      throw new SetupError('JOB_SIGNATURE_INVALID', 'The job body cannot be put in canonical form.');
    }
    const a = Buffer.from(expected);
    const b = Buffer.from(sig.mac);
    if (a.length !== b.length || !timingSafeEqual(a, b)) {
      throw new SetupError('JOB_SIGNATURE_INVALID', 'The job signature does not match its content: it was changed after signing.');
    }
    if (this.#now() > sig.exp) {
      throw new SetupError('JOB_EXPIRED', `The job expired at ${new Date(sig.exp).toISOString()} before it ran.`, {
        hint: 'Run the command again.',
      });
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      throw new SetupError('JOB_INVALID', `The job content is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    return { body: parsed.data as z.output<S>, sig };
  }

  #mac(purpose: Purpose, body: unknown, kid: string, iat: number, exp: number): string {
    return createHmac('sha256', this.#key).update(canonicalJson({ purpose, body, kid, iat, exp })).digest('base64url');
  }
}
