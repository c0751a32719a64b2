import type { AuditEntry } from '../core/audit-log.ts';
import { z } from 'zod';
import { runIdSchema } from '../jobs/job-types.ts';
import type { ActivityRequest } from './bot-services.ts';
import { normaliseText } from './inbound/command-parser.ts';
import { clip } from './cards/common/card-kit.ts';

/**
 * What the bot appends to the audit log for what people do (commands, refusals, card clicks). The
 * texts are built from parsed values only (a command's kind and filter description, a verb, a
 * reason code), never from what was typed.
 */

/**
 * How long a command or a click waits for its audit entry. A healthy Redis answers in a
 * millisecond; a stalled one would otherwise add the producer's 2 s command timeout to what Teams
 * gives an invoke (~5 s). Past it the append goes on in the background and only its failure is logged.
 */
export const AUDIT_WAIT_MS = 750;

export type BotAuditEntry = Pick<AuditEntry, 'kind' | 'what' | 'outcome'> & { runId?: string };

/**
 * Appends one entry for `req`'s person (actor: the name Teams gives, actorId: the Entra object id)
 * in the bot's deployment. Never throws: a failed append is logged and the command goes on.
 */
export async function recordAudit(req: ActivityRequest, entry: BotAuditEntry, waitMs = AUDIT_WAIT_MS): Promise<void> {
  const runId = entry.runId !== undefined && runIdSchema.safeParse(entry.runId).success ? entry.runId : undefined;
  const appended = req.services.audit
    .append({
      deployment: req.services.config.deployment,
      actor: req.from.name || '(unknown)',
      ...(req.from.aadObjectId ? { actorId: req.from.aadObjectId } : {}),
      kind: entry.kind,
      what: entry.what,
      ...(runId ? { runId } : {}),
      outcome: entry.outcome,
    })
    .then(
      () => true,
      (error: unknown) => {
        req.log.warn({ err: error, auditKind: entry.kind }, 'could not append to the audit log');
        return false;
      },
    );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), waitMs);
  });
  try {
    const outcome = await Promise.race([appended, late]);
    if (outcome === 'late') req.log.warn({ auditKind: entry.kind, waitMs }, 'the audit log is slow: the entry is appended in the background');
  } finally {
    clearTimeout(timer);
  }
}

const commandWords = [
  'approve',
  'test',
  'cert',
  'status',
  'run',
  'preflight',
  'profile',
  'tenant',
  'configure',
  'ews',
  'sync',
  'jobs',
  'resume',
  'cancel',
  'audit',
] as const;

/**
 * What a message that did not parse was meant to be, as one of the fixed command words (never the
 * text itself): "invalid `audit` command", or "unrecognised message".
 */
export function describeUnparsed(rawText: string | undefined): string {
  const first = /^\S+/.exec(normaliseText((rawText ?? '').slice(0, 500)))?.[0]?.toLowerCase();
  const word = commandWords.find((w) => w === first);
  return word ? `invalid \`${word}\` command` : 'unrecognised message';
}

const clickDataSchema = z.object({ runId: runIdSchema }).passthrough();

/** The longest refusal text kept in a click's outcome. */
const CLICK_REASON_MAX = 160;

/**
 * A card click, once its action is decided: `ok` when the click answered with a card, `refused: …`
 * when it answered with a message (who may, or why not now), `failed: …` when it threw. The run id
 * comes from the card's data only when it is a run id.
 */
export async function recordClick(req: ActivityRequest, verb: string, data: unknown, reply: string | object, failed = false): Promise<void> {
  const parsed = clickDataSchema.safeParse(data);
  const reason = typeof reply === 'string' ? clip(reply, CLICK_REASON_MAX) : undefined;
  await recordAudit(req, {
    kind: 'click',
    what: clip(verb, 60),
    ...(parsed.success ? { runId: parsed.data.runId } : {}),
    outcome: reason === undefined ? 'ok' : failed ? `failed: ${reason}` : `refused: ${reason}`,
  });
}
