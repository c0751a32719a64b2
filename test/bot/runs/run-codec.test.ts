import { describe, expect, it } from 'vitest';
import { decodeRun, encodeNewRun, encodePatch } from '../../../bot/runs/run-codec.ts';

const conversation = { bot: { id: 'b' }, channelId: 'msteams', conversation: { id: 'c' }, serviceUrl: 'https://smba.example.net/' };

describe('the run hash', () => {
  it('reads a run stored before the tree moved (field names and encodings unchanged)', () => {
    // As RunStore.create and the relay wrote it (bot/run-store.ts before the split).
    const stored: Record<string, string> = {
      runId: 'r-1',
      deployment: 'default',
      kind: 'cert-rotate',
      state: 'halted',
      requester: JSON.stringify({ aadObjectId: 'a', name: 'Ana' }),
      conversation: JSON.stringify(conversation),
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:01:00.000Z',
      progressSeq: '3',
      lastPostedSeq: '3',
      lastPostedAt: '1767225660000',
      finalPostedSeq: '3',
      resultsSentSeq: '-1',
      attempt: '2',
      registrationTouched: '1',
      expiresAtMs: '1767229200000',
      approval: JSON.stringify({ decision: 'approved', decidedBy: { aadObjectId: 'b', name: 'Ben' }, decidedAt: '2026-01-01T00:00:30.000Z' }),
      error: JSON.stringify({ code: 'STEP_FAILED', message: 'm' }),
    };
    expect(decodeRun(stored)).toMatchObject({
      runId: 'r-1',
      kind: 'cert-rotate',
      state: 'halted',
      attempt: 2,
      registrationTouched: true,
      expiresAt: '2026-01-01T01:00:00.000Z',
      approval: { decision: 'approved' },
      error: { code: 'STEP_FAILED' },
      progressSeq: 3,
      resultsSentSeq: -1,
    });
  });

  it('writes the same fields it reads', () => {
    const fields = encodeNewRun({ runId: 'r-2', deployment: 'default', kind: 'setup', state: 'planning', requester: { aadObjectId: 'a', name: 'Ana' }, conversation, dryRun: true, expiresAtMs: 5 }, '2026-01-01T00:00:00.000Z');
    expect(Object.keys(fields).sort()).toEqual(['attempt', 'conversation', 'createdAt', 'deployment', 'dryRun', 'expiresAtMs', 'finalPostedSeq', 'kind', 'lastPostedAt', 'lastPostedSeq', 'progressSeq', 'requester', 'resultsSentSeq', 'runId', 'state', 'updatedAt']);
    expect(decodeRun(fields)).toMatchObject({ runId: 'r-2', kind: 'setup', dryRun: true, attempt: 1 });
    expect(encodePatch({ steps: [{ id: 'register-crm', state: 'running' }] })).toContain('registrationTouched');
  });
});
