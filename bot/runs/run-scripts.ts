import { z } from 'zod';
import { LuaScript } from './lua-script.ts';
import { finalStates } from './run-model.ts';

/**
 * The run store's Lua scripts (bot/runs/lua/*.lua) with the shape of their replies. Every state change
 * of a run is one of these, so a double click, a replayed invoke or a second bot instance cannot move
 * a run twice. The script files document KEYS, ARGV and the replies.
 */

/** `{status, value...}`: a status from `statuses`, then `extra` strings. */
function statusReply<const T extends readonly [string, ...string[]]>(statuses: T, extra: 1 | 2) {
  return extra === 1 ? z.tuple([z.enum(statuses), z.string()]) : z.tuple([z.enum(statuses), z.string(), z.string()]);
}
const count = z.number().int();

/** The final run states as a Lua set (`final[state]` is true), from `finalStates`. */
const finalStatesLua = `{ ${finalStates.map((s) => `['${s}'] = true`).join(', ')} }`;

export const runScripts = {
  create: new LuaScript('create', count),
  patch: new LuaScript('patch', count),
  transition: new LuaScript('transition', statusReply(['ok', 'missing', 'conflict', 'expired'], 1)),
  resume: new LuaScript('resume', statusReply(['ok', 'missing', 'conflict', 'rollback-pending', 'attempt-changed'], 2)),
  requestCancel: new LuaScript('request-cancel', statusReply(['ok', 'missing', 'conflict'], 1)),
  approveCert: new LuaScript('approve-cert', statusReply(['ok', 'missing', 'conflict', 'expired', 'retry', 'busy', 'parent'], 2), { finalStates: finalStatesLua }),
  requestRollback: new LuaScript('request-rollback', statusReply(['ok', 'missing', 'conflict', 'pending'], 1)),
  clearPendingRollback: new LuaScript('clear-pending-rollback', count),
  rollbackFailed: new LuaScript('rollback-failed', statusReply(['ok', 'missing', 'conflict'], 2)),
  abandon: new LuaScript('abandon', statusReply(['ok', 'missing', 'conflict', 'rollback-pending', 'registration-touched'], 1)),
  relayProgress: new LuaScript('relay-progress', statusReply(['post', 'wait', 'stale', 'missing'], 1)),
  markSeq: new LuaScript('mark-seq', count),
  releaseLock: new LuaScript('release-lock', count),
} as const;
