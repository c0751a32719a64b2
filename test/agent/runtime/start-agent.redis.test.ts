import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { jobSeenKey, STALLED_REASON } from '../../../agent/runtime/worker.ts';
import { agentHeartbeatKey } from '../../../jobs/deployment.ts';
import { EnvelopeSigner } from '../../../jobs/envelope-signer.ts';
import { jobAddOptions, signJob } from '../../../jobs/job-options.ts';
import type { JobPayload } from '../../../jobs/job-types.ts';
import { sendJson, startLocalServer, type LocalServer } from '../support/local-server.ts';
import { SIGNING_KEY, createHarness, settled, waitFor, type Harness } from '../support/redis-harness.ts';

const mailbox = (n: number, approval: number) => ({
  mailboxid: `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`,
  emailrouteraccessapproval: approval,
  incomingemailstatus: 1,
  outgoingemailstatus: n % 2 ? 1 : 2,
  actstatus: 0,
});

let h: Harness;
let crm: LocalServer;
let crmMode: 'ok' | 'busy' | 'hang' = 'ok';

beforeEach(async () => {
  crmMode = 'ok';
  crm = await startLocalServer((req, res) => {
    if (crmMode === 'busy') return sendJson(res, 503, { error: { code: '0x80044150', message: 'server busy' } });
    if (crmMode === 'hang') return; // never answers (the connection closes with the server)
    if (req.url.includes('/WhoAmI')) return sendJson(res, 200, { UserId: 'c0ffee00-0000-0000-0000-000000000001', BusinessUnitId: 'b', OrganizationId: 'o' });
    if (req.url.includes('/mailboxes')) return sendJson(res, 200, { value: [mailbox(1, 1), mailbox(2, 2), mailbox(3, 1)] });
    return sendJson(res, 404, { error: { code: '0x80060888', message: 'not found' } });
  });
  h = await createHarness();
  await h.start({ CRM_URL: `${crm.origin}/contoso`, CRM_MAX_RETRIES: '0' });
});

afterEach(async () => {
  await h.close();
  await crm.close();
});

const statusJob = (runId = 'run0000001', deployment = 'default'): JobPayload => ({
  type: 'status',
  runId,
  deployment,
  requestedBy: 'aaaaaaaa-0000-0000-0000-000000000001',
});

describe('agent runtime (real Redis)', () => {
  it('processes a signed job and publishes signed started / progress / result reports with increasing seq', async () => {
    const payload = statusJob();
    await h.jobs.add('status', signJob(h.signer, payload), jobAddOptions(payload.runId, 'status'));
    const { state, job } = await settled(h.jobs, 'run0000001-status');
    expect(state).toBe('completed');
    expect(job.returnvalue).toMatchObject({ type: 'status', total: 3, approval: { approved: 2, pending: 1 }, test: { success: 2, failure: 1 } });
    await waitFor('result report', () => h.reports.find((r) => r.event.kind === 'result'));
    const kinds = [...h.reports].sort((a, b) => a.seq - b.seq).map((r) => r.event.kind);
    expect(kinds[0]).toBe('started');
    expect(kinds.at(-1)).toBe('result');
    expect(kinds).toContain('progress');
    const seqs = h.reports.map((r) => r.seq).sort((a, b) => a - b);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(h.reports.every((r) => r.runId === 'run0000001' && r.jobType === 'status' && r.deployment === 'default')).toBe(true);
    expect(await h.redis.get(`${h.prefix}:report-seq:run0000001`)).toBe(String(Math.max(...seqs)));
    expect(crm.requests.map((r) => r.url.split('?')[0])).toEqual(['/contoso/api/data/v9.0/WhoAmI', '/contoso/api/data/v9.0/mailboxes']);
    // Heartbeat with a time-out.
    const beat = await h.redis.get(agentHeartbeatKey(h.prefix, 'default'));
    expect(Number.isNaN(Date.parse(beat ?? ''))).toBe(false);
    const ttl = await h.redis.pttl(agentHeartbeatKey(h.prefix, 'default'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1_500);
  });

  it('refuses a job whose body was changed after signing, without retry and without any CRM request', async () => {
    const envelope = signJob(h.signer, statusJob());
    const tampered = { ...envelope, body: { ...envelope.body, requestedBy: 'bbbbbbbb-0000-0000-0000-000000000666' } };
    await h.jobs.add('status', tampered, jobAddOptions('run0000001', 'status'));
    const { state, job } = await settled(h.jobs, 'run0000001-status');
    expect(state).toBe('failed');
    expect(job.failedReason).toMatch(/^JOB_SIGNATURE_INVALID/);
    expect(job.attemptsMade).toBe(1); // UnrecoverableError: the 3 allowed attempts were not used
    expect(crm.requests).toHaveLength(0);
    expect(h.reports).toHaveLength(0);
  });

  it('refuses an unsigned job', async () => {
    await h.jobs.add('status', statusJob(), { jobId: 'unsigned', attempts: 3 });
    const { state, job } = await settled(h.jobs, 'unsigned');
    expect(state).toBe('failed');
    expect(job.failedReason).toMatch(/^JOB_SIGNATURE_INVALID/);
    expect(job.attemptsMade).toBe(1);
    expect(crm.requests).toHaveLength(0);
    expect(h.reports).toHaveLength(0);
  });

  it('refuses a job signed with another key', async () => {
    const other = new EnvelopeSigner({ key: `${SIGNING_KEY}-other` });
    await h.jobs.add('status', signJob(other, statusJob()), { jobId: 'otherkey', attempts: 3 });
    const { state, job } = await settled(h.jobs, 'otherkey');
    expect(state).toBe('failed');
    expect(job.failedReason).toMatch(/^JOB_SIGNATURE_INVALID.*signed with key/);
    expect(crm.requests).toHaveLength(0);
  });

  it('refuses an expired job', async () => {
    const past = new EnvelopeSigner({ key: SIGNING_KEY, now: () => Date.now() - 60 * 60_000 });
    await h.jobs.add('status', signJob(past, statusJob()), jobAddOptions('run0000001', 'status'));
    const { state, job } = await settled(h.jobs, 'run0000001-status');
    expect(state).toBe('failed');
    expect(job.failedReason).toMatch(/^JOB_EXPIRED/);
    expect(job.attemptsMade).toBe(1);
    expect(crm.requests).toHaveLength(0);
    expect(h.reports).toHaveLength(0);
  });

  it('refuses a job for another deployment and reports it as failed', async () => {
    const payload = statusJob('run0000002', 'elsewhere');
    await h.jobs.add('status', signJob(h.signer, payload), jobAddOptions(payload.runId, 'status'));
    const { state, job } = await settled(h.jobs, 'run0000002-status');
    expect(state).toBe('failed');
    expect(job.failedReason).toMatch(/^JOB_WRONG_DEPLOYMENT/);
    expect(crm.requests).toHaveLength(0);
    const report = await waitFor('failed report', () => h.reports.find((r) => r.event.kind === 'failed'));
    expect(report).toMatchObject({ runId: 'run0000002', event: { kind: 'failed', error: { code: 'JOB_WRONG_DEPLOYMENT' } } });
    expect(report.event.kind === 'failed' && report.event.error.hint).toMatch(/DEPLOYMENT/);
  });

  it('refuses a job whose name differs from the signed type', async () => {
    await h.jobs.add('approve', signJob(h.signer, statusJob()), { jobId: 'renamed', attempts: 3 });
    const { state, job } = await settled(h.jobs, 'renamed');
    expect(state).toBe('failed');
    expect(job.failedReason).toMatch(/^JOB_INVALID: job name "approve"/);
    expect(crm.requests).toHaveLength(0);
  });

  it('refuses a replay of a signed job under another BullMQ job id', async () => {
    const envelope = signJob(h.signer, statusJob('run0000003'));
    await h.jobs.add('status', envelope, jobAddOptions('run0000003', 'status'));
    expect((await settled(h.jobs, 'run0000003-status')).state).toBe('completed');
    const requestsAfterFirst = crm.requests.length;
    expect(await h.redis.get(jobSeenKey(h.prefix, 'run0000003', 'status'))).toMatch(/^run0000003-status:\d+:done$/);

    await h.jobs.add('status', envelope, { jobId: 'replay-1', attempts: 3 });
    const replay = await settled(h.jobs, 'replay-1');
    expect(replay.state).toBe('failed');
    expect(replay.job.failedReason).toMatch(/replayed job/);
    expect(crm.requests).toHaveLength(requestsAfterFirst);
  });

  it('refuses the same signed job added again under the same job id after the first one completed', async () => {
    const envelope = signJob(h.signer, statusJob('run0000005'));
    const options = jobAddOptions('run0000005', 'status');
    await h.jobs.add('status', envelope, options);
    const first = await settled(h.jobs, 'run0000005-status');
    expect(first.state).toBe('completed');
    const requestsAfterFirst = crm.requests.length;
    const reportsAfterFirst = await waitFor('result report', () => h.reports.find((r) => r.runId === 'run0000005' && r.event.kind === 'result') && h.reports.length);

    // Someone with Redis write access removes the finished job and adds the envelope again,
    // once as BullMQ would (new timestamp) and once copying the first job's timestamp.
    for (const again of [options, { ...options, timestamp: first.job.timestamp }]) {
      await (await h.jobs.getJob('run0000005-status'))?.remove();
      await h.jobs.add('status', envelope, again);
      const replay = await settled(h.jobs, 'run0000005-status');
      expect(replay.state).toBe('failed');
      expect(replay.job.attemptsMade).toBe(1); // UnrecoverableError: no retry
      expect(replay.job.failedReason).toMatch(/^JOB_INVALID: replayed job/);
    }
    expect(crm.requests).toHaveLength(requestsAfterFirst);
    expect(h.reports).toHaveLength(reportsAfterFirst);
  });

  it('on close, gives a job that ignores the shutdown back to the queue within closeTimeoutMs; another agent then runs it', async () => {
    await h.agent?.close();
    const env = { CRM_URL: `${crm.origin}/contoso`, CRM_MAX_RETRIES: '0', CRM_TIMEOUT_MS: '60000' };
    const agent = await h.start(env, { closeTimeoutMs: 300 });
    crmMode = 'hang';
    const payload = statusJob('run0000006');
    await h.jobs.add('status', signJob(h.signer, payload), jobAddOptions(payload.runId, 'status'));
    await waitFor('the CRM request', () => crm.requests.length > 0);
    expect(await (await h.jobs.getJob('run0000006-status'))?.getState()).toBe('active');

    const started = Date.now();
    await agent.close();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(2_000);
    const job = await h.jobs.getJob('run0000006-status');
    expect(['delayed', 'waiting']).toContain(await job?.getState());
    expect(job?.attemptsMade).toBe(0); // given back, not failed: no attempt used

    crmMode = 'ok';
    await h.start(env);
    const { state, job: done } = await settled(h.jobs, 'run0000006-status');
    expect(state).toBe('completed');
    expect(done.returnvalue).toMatchObject({ type: 'status', total: 3 });
  });

  it('lets BullMQ retry a retryable CRM failure and reports failed with code and hint when attempts run out', async () => {
    crmMode = 'busy';
    const payload = statusJob('run0000004');
    await h.jobs.add('status', signJob(h.signer, payload), { jobId: 'run0000004-status', attempts: 2, backoff: { type: 'fixed', delay: 50 } });
    const { state, job } = await settled(h.jobs, 'run0000004-status');
    expect(state).toBe('failed');
    expect(job.attemptsMade).toBe(2);
    expect(job.failedReason).toMatch(/^CRM_REQUEST_FAILED/);
    expect(crm.requests).toHaveLength(2); // one per attempt (CRM_MAX_RETRIES=0)
    const failed = await waitFor('failed report', () => h.reports.find((r) => r.event.kind === 'failed'));
    expect(failed.event).toMatchObject({ kind: 'failed', error: { code: 'CRM_REQUEST_FAILED', hint: expect.stringMatching(/run the command again/) as unknown } });
    expect(h.reports.filter((r) => r.event.kind === 'started')).toHaveLength(1);
  });

  it('publishes a signed failed report (JOB_STALLED, Retry step) for a job BullMQ failed because it stalled too often, without running it', async () => {
    const payload: JobPayload = { type: 'setup-run', runId: 'run0000stall', deployment: 'default', requestedBy: 'aaaaaaaa-0000-0000-0000-000000000001', scope: 'tenant', plannedMailboxes: 0, tenantId: null, certThumbprint: null, approvedBy: 'aaaaaaaa-0000-0000-0000-000000000002', attempt: 1 };
    const added = await h.jobs.add('setup-run', signJob(h.signer, payload), { ...jobAddOptions(payload.runId, 'setup-run'), delay: 60_000 });
    // What BullMQ's stalled check leaves on a job that stalled more than maxStalledCount times (moveStalledJobsToWait).
    await h.redis.hset(`${h.prefix}:${h.jobs.name}:${added.id ?? ''}`, 'defa', STALLED_REASON, 'stc', '3');
    await added.promote();
    const { state } = await settled(h.jobs, added.id ?? '');
    expect(state).toBe('failed');
    const failed = await waitFor('failed report', () => h.reports.find((r) => r.runId === payload.runId && r.event.kind === 'failed'));
    expect(failed.jobType).toBe('setup-run');
    expect(failed.event).toMatchObject({ kind: 'failed', error: { code: 'JOB_STALLED', hint: expect.stringMatching(/agent stopped during a step.*Retry step/) as unknown } });
    // The processor never ran for it: no started report.
    expect(h.reports.filter((r) => r.runId === payload.runId && r.event.kind === 'started')).toHaveLength(0);
  });

  it('reports nothing for a stalled job that does not verify', async () => {
    const added = await h.jobs.add('status', { envelope: 'forged' }, { jobId: 'run0000forg-status', delay: 60_000 });
    await h.redis.hset(`${h.prefix}:${h.jobs.name}:${added.id ?? ''}`, 'defa', STALLED_REASON);
    await added.promote();
    expect((await settled(h.jobs, added.id ?? '')).state).toBe('failed');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(h.reports.filter((r) => r.event.kind === 'failed')).toHaveLength(0);
  });
});
