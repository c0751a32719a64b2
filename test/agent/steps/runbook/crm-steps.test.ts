import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CrmClient } from '../../../../agent/adapters/crm/client.ts';
import type { JobContext } from '../../../../agent/runtime/job-context.ts';
import type { RunbookEnv, RunbookStep } from '../../../../agent/steps/step.ts';
import { approveEmailStep } from '../../../../agent/steps/runbook/approve-email.ts';
import { configureMailboxesStep } from '../../../../agent/steps/runbook/configure-mailboxes.ts';
import { testEnableStep } from '../../../../agent/steps/runbook/test-enable.ts';
import { orgDefaultsStep } from '../../../../agent/steps/runbook/org-defaults.ts';
import { emailProfileStep } from '../../../../agent/steps/runbook/email-profile.ts';
import { readEmailDeliveryDefaults, writeEmailDeliveryDefaults } from '../../../../agent/adapters/crm/email-settings-xml.ts';
import { silentLogger } from '../../../../core/logger.ts';
import { SetupError } from '../../../../core/setup-error.ts';
import type { Verification } from '../../../../jobs/cert-types.ts';
import { EmailRouterAccessApproval as A, MailboxTestStatus as T, StateCode } from '../../../../jobs/crm-values.ts';
import type { MailboxFilter } from '../../../../jobs/mailbox-filter.ts';
import type { ProfileValues } from '../../../../jobs/runbook-types.ts';
import { startCrmSimulator, type CrmSimulator } from '../../../../sim/crm-simulator.ts';
import type { MailboxRecord } from '../../../../sim/sim-state.ts';

/**
 * The runbook's CRM steps against the CRM simulator over HTTP (the real CrmClient): for each step,
 * check on a state that needs the change says "would …", apply makes it (and reads it back), check
 * again says "already done", and apply again writes nothing.
 */
let sim: CrmSimulator;
let crm: CrmClient;

beforeAll(async () => {
  sim = await startCrmSimulator({ port: 0, seed: 5, mailboxCount: 80, testDelayMs: 20 });
});
afterAll(async () => {
  crm.close();
  await sim.close();
});
beforeEach(() => {
  sim.reset();
  crm?.close();
  crm = CrmClient.create({ orgUrl: sim.orgUrl, auth: { kind: 'none' }, pageSize: 30, timeoutMs: 5_000, maxRetries: 1, maxSockets: 4 });
});

function context(): JobContext {
  return {
    crm: crm.scope(),
    settings: { CRM_BATCH_SIZE: 10, CRM_CONCURRENCY: 3, TEST_POLL_INTERVAL_MS: 40, TEST_TIMEOUT_MS: 10_000, PROGRESS_INTERVAL_MS: 0 },
    logger: silentLogger(),
    report: () => undefined,
    now: Date.now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    signal: new AbortController().signal,
  };
}

const baseProfile: ProfileValues & { ownerId: string | null } = {
  name: 'Exchange Online SSS',
  description: 'Server-side synchronization with Exchange Online (managed by @setup)',
  useDefaultTenantId: true,
  tenantId: null,
  autodiscover: true,
  incomingUrl: null,
  outgoingUrl: null,
  processEmailsReceivedAfter: null,
  minPollingIntervalMinutes: 0,
  moveUndeliveredEmails: false,
  owner: 'CRM Setup Service',
  ownerId: null,
};

function env(overrides: { profile?: Partial<RunbookEnv['profile']>; filter?: MailboxFilter; facts?: RunbookEnv['facts'] } = {}): RunbookEnv {
  return {
    ctx: context(),
    scope: 'setup',
    filter: overrides.filter ?? { kind: 'all' },
    profile: { ...baseProfile, ...overrides.profile },
    facts: { ...overrides.facts },
  };
}

/** API writes since the last reset: top-level PATCH/POST (a $batch is a POST of its own) and PATCH parts. */
function writes(): { patch: number; post: number; batchPatch: number } {
  const m = sim.stats.byMethod;
  return { patch: m.PATCH ?? 0, post: m.POST ?? 0, batchPatch: m['batch:PATCH'] ?? 0 };
}

async function applyStep(step: RunbookStep, e: RunbookEnv) {
  const updates: string[] = [];
  const outcome = await step.apply(e, { update: (d) => updates.push(d), keep: () => undefined });
  return { outcome, updates };
}

async function failure(promise: Promise<unknown>): Promise<SetupError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(SetupError);
  return error as SetupError;
}

const active = (): MailboxRecord[] => [...sim.state.mailboxes.values()].filter((m) => m.statecode === StateCode.Active);
const profileNamed = (name: string) => [...sim.state.profiles.values()].find((p) => p.name === name);

/** Mailboxes that pass once configured and approved: good addresses, owners with the privilege. */
function goodMailboxes(n: number): MailboxRecord[] {
  return active()
    .filter((m) => m.emailaddress && !sim.state.badAddresses.has(m.emailaddress.toLowerCase()))
    .filter((m) => sim.state.principals.get(m._ownerid_value)?.hasApprovePrivilege !== false)
    .slice(0, n);
}

describe('email-profile', () => {
  it('creates the profile with the procedure values, then finds it done and writes nothing', async () => {
    const e = env();
    const planned = await emailProfileStep.check(e);
    expect(planned).toEqual({ upToDate: false, detail: "would create profile 'Exchange Online SSS' (Exchange Online (Hybrid), autodiscover, server-to-server)" });
    expect(e.facts.profileId).toBeUndefined();
    expect(writes()).toEqual({ patch: 0, post: 0, batchPatch: 0 });

    const before = Date.now();
    const { outcome } = await applyStep(emailProfileStep, e);
    expect(outcome).toMatchObject({ wrote: true, changed: false, detail: "created profile 'Exchange Online SSS' (Exchange Online (Hybrid), autodiscover, server-to-server)" });
    const created = profileNamed('Exchange Online SSS');
    expect(created).toMatchObject({
      servertype: 3,
      usedefaulttenantid: true,
      exchangeonlinetenantid: null,
      useautodiscover: true,
      incomingserverlocation: null,
      minpollingintervalinminutes: 0,
      moveundeliveredemails: false,
      incomingcredentialretrieval: 2,
      outgoingcredentialretrieval: 2,
      _ownerid_value: sim.state.callerUserId,
      description: baseProfile.description,
    });
    expect(Date.parse(created?.processemailsreceivedafter ?? '')).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(e.facts.profileId).toBe(created?.emailserverprofileid);
    expect(writes()).toMatchObject({ post: 1, patch: 0 });

    sim.resetStats();
    const again = env();
    expect(await emailProfileStep.check(again)).toEqual({ upToDate: true, detail: "already done: profile 'Exchange Online SSS' has every value" });
    expect(again.facts.profileId).toBe(created?.emailserverprofileid);
    const second = await applyStep(emailProfileStep, again);
    expect(second.outcome).toMatchObject({ wrote: false, detail: "already done: profile 'Exchange Online SSS' has every value" });
    expect(writes()).toEqual({ patch: 0, post: 0, batchPatch: 0 });
  });

  it('PATCHes only the differing values of an existing profile (explicit tenant, explicit locations, owner)', async () => {
    await applyStep(emailProfileStep, env());
    const id = profileNamed('Exchange Online SSS')?.emailserverprofileid ?? '';
    const processFrom = profileNamed('Exchange Online SSS')?.processemailsreceivedafter;
    const owner = [...sim.state.principals.values()].find((p) => p.logicalName === 'systemuser' && p.id !== sim.state.callerUserId)?.id ?? '';
    const tenant = '7e3c1a52-0000-4000-8000-0000000000aa';
    const changed = {
      useDefaultTenantId: false,
      tenantId: tenant,
      autodiscover: false,
      incomingUrl: 'https://outlook.office365.com/EWS/Exchange.asmx',
      outgoingUrl: 'https://outlook.office365.com/EWS/Exchange.asmx',
      minPollingIntervalMinutes: 5,
      ownerId: owner,
    };
    sim.resetStats();
    const e = env({ profile: changed });
    const planned = await emailProfileStep.check(e);
    expect(planned.upToDate).toBe(false);
    expect(planned.detail).toBe(
      "would update profile 'Exchange Online SSS': usedefaulttenantid, useautodiscover, minpollingintervalinminutes, exchangeonlinetenantid, incomingserverlocation, outgoingserverlocation, owner",
    );
    const { outcome } = await applyStep(emailProfileStep, e);
    expect(outcome.wrote).toBe(true);
    expect(writes()).toEqual({ patch: 1, post: 0, batchPatch: 0 });
    expect(sim.state.profiles.get(id)).toMatchObject({
      usedefaulttenantid: false,
      exchangeonlinetenantid: tenant,
      useautodiscover: false,
      incomingserverlocation: changed.incomingUrl,
      minpollingintervalinminutes: 5,
      _ownerid_value: owner,
      processemailsreceivedafter: processFrom, // not managed unless PROFILE_PROCESS_EMAIL_FROM is set
    });
    sim.resetStats();
    expect(await emailProfileStep.check(env({ profile: changed }))).toMatchObject({ upToDate: true });
    expect((await applyStep(emailProfileStep, env({ profile: changed }))).outcome.wrote).toBe(false);
    expect(writes()).toEqual({ patch: 0, post: 0, batchPatch: 0 });
  });

  it('blocks on a profile of that name with another server type, and refuses to apply', async () => {
    const pop3 = [...sim.state.profiles.values()].find((p) => p.servertype === 1);
    const e = env({ profile: { name: pop3?.name ?? '' } });
    const planned = await emailProfileStep.check(e);
    expect(planned.upToDate).toBe(false);
    expect(planned.blocker?.message).toMatch(/is of type Other \(POP3\/SMTP\), not Exchange Online \(Hybrid\)/);
    expect(planned.blocker?.fix).toMatch(/PROFILE_NAME/);
    const error = await failure(applyStep(emailProfileStep, e));
    expect(error).toMatchObject({ code: 'STEP_FAILED', hint: expect.stringMatching(/Rename that profile.*PROFILE_NAME/) as unknown });
    expect(writes()).toEqual({ patch: 0, post: 0, batchPatch: 0 });
  });

  it('blocks on an inactive profile of that name', async () => {
    const seeded = profileNamed('Exchange Online');
    if (seeded) seeded.statecode = StateCode.Inactive;
    const e = env({ profile: { name: 'Exchange Online' } });
    expect((await emailProfileStep.check(e)).blocker).toEqual({ message: "The email server profile 'Exchange Online' is inactive.", fix: expect.stringMatching(/^Activate it in CRM/) as unknown });
    expect(e.facts.profileId).toBeUndefined();
    await expect(applyStep(emailProfileStep, e)).rejects.toMatchObject({ code: 'STEP_FAILED' });
    expect(writes()).toEqual({ patch: 0, post: 0, batchPatch: 0 });
  });

  it('a read-back that does not show the change fails the step with a hint', async () => {
    await applyStep(emailProfileStep, env());
    const e = env({ profile: { minPollingIntervalMinutes: 7 } });
    // The write "succeeds" but changes nothing: a plug-in that resets the value.
    const patch = e.ctx.crm.patch.bind(e.ctx.crm);
    e.ctx.crm.patch = (set, id, body) => patch(set, id, { ...body, minpollingintervalinminutes: 0 });
    const error = await failure(applyStep(emailProfileStep, e));
    expect(error.code).toBe('STEP_FAILED');
    expect(error.message).toMatch(/did not keep the email server profile 'Exchange Online SSS'.*minpollingintervalinminutes/);
    expect(error.hint).toMatch(/plug-in/);
  });
});

describe('org-defaults', () => {
  it('sets the default profile, the three delivery values (keeping the rest of the XML) and the channel; then nothing', async () => {
    sim.state.organization.defaultemailsettings =
      '<EmailSettings><IncomingEmailDeliveryMethod>0</IncomingEmailDeliveryMethod><Keep attr="1">x</Keep><ACTDeliveryMethod>2</ACTDeliveryMethod></EmailSettings>';
    sim.state.organization.emailconnectionchannel = 1;
    const plan = env();
    expect(await orgDefaultsStep.check(plan)).toEqual({
      upToDate: false,
      detail:
        "would set the default profile to 'Exchange Online SSS' (created by the email-profile step), server-side sync for incoming, outgoing and ACT, server-side sync as the connection channel",
    });
    await expect(orgDefaultsStep.apply(plan, { update: () => undefined, keep: () => undefined })).rejects.toMatchObject({ code: 'STEP_FAILED' });

    const e = env();
    await applyStep(emailProfileStep, e);
    sim.resetStats();
    const { outcome } = await applyStep(orgDefaultsStep, e);
    expect(outcome.wrote).toBe(true);
    expect(writes()).toEqual({ patch: 1, post: 0, batchPatch: 0 });
    const org = sim.state.organization;
    expect(org._defaultemailserverprofileid_value).toBe(e.facts.profileId);
    expect(org.emailconnectionchannel).toBe(0);
    expect(org.defaultemailsettings).toBe(
      '<EmailSettings><IncomingEmailDeliveryMethod>2</IncomingEmailDeliveryMethod><Keep attr="1">x</Keep><ACTDeliveryMethod>1</ACTDeliveryMethod><OutgoingEmailDeliveryMethod>2</OutgoingEmailDeliveryMethod></EmailSettings>',
    );

    sim.resetStats();
    expect(await orgDefaultsStep.check(e)).toMatchObject({ upToDate: true, detail: expect.stringMatching(/^already done: default profile 'Exchange Online SSS'/) as unknown });
    expect((await applyStep(orgDefaultsStep, e)).outcome.wrote).toBe(false);
    expect(writes()).toEqual({ patch: 0, post: 0, batchPatch: 0 });
  });

  it('writes only what differs (the delivery values alone)', async () => {
    const e = env({ profile: { name: 'Exchange Online' } });
    await emailProfileStep.check(e); // the seeded profile, already the default
    sim.state.organization.defaultemailsettings = writeEmailDeliveryDefaults(sim.state.organization.defaultemailsettings, { incoming: 2, outgoing: 1, act: 1 });
    const planned = await orgDefaultsStep.check(e);
    expect(planned.detail).toBe('would set server-side sync for incoming, outgoing and ACT');
    let body: Record<string, unknown> | undefined;
    const patch = e.ctx.crm.patch.bind(e.ctx.crm);
    e.ctx.crm.patch = (set, id, b) => {
      body = b;
      return patch(set, id, b);
    };
    await applyStep(orgDefaultsStep, e);
    expect(Object.keys(body ?? {})).toEqual(['defaultemailsettings']);
    expect(readEmailDeliveryDefaults(sim.state.organization.defaultemailsettings)).toEqual({ incoming: 2, outgoing: 2, act: 1 });
  });
});

describe('email settings XML', () => {
  it('replaces values in place, adds missing elements, starts a document when there is none', () => {
    const values = { incoming: 2, outgoing: 2, act: 1 };
    expect(writeEmailDeliveryDefaults(null, values)).toBe(
      '<EmailSettings><IncomingEmailDeliveryMethod>2</IncomingEmailDeliveryMethod><OutgoingEmailDeliveryMethod>2</OutgoingEmailDeliveryMethod><ACTDeliveryMethod>1</ACTDeliveryMethod></EmailSettings>',
    );
    expect(writeEmailDeliveryDefaults('<EmailSettings><OutgoingEmailDeliveryMethod/><Other>5</Other></EmailSettings>', values)).toBe(
      '<EmailSettings><OutgoingEmailDeliveryMethod>2</OutgoingEmailDeliveryMethod><Other>5</Other><IncomingEmailDeliveryMethod>2</IncomingEmailDeliveryMethod><ACTDeliveryMethod>1</ACTDeliveryMethod></EmailSettings>',
    );
    expect(writeEmailDeliveryDefaults('<EmailSettings />', values)).toContain('<ACTDeliveryMethod>1</ACTDeliveryMethod></EmailSettings>');
    expect(readEmailDeliveryDefaults('<EmailSettings><ACTDeliveryMethod> 1 </ACTDeliveryMethod><IncomingEmailDeliveryMethod>x</IncomingEmailDeliveryMethod></EmailSettings>')).toEqual({ act: 1 });
  });
});

describe('configure-mailboxes', () => {
  it('configures the mailboxes that differ in $batch, reads them back, then finds all done', async () => {
    const e = env();
    const planEnv = env();
    const all = active().length;
    expect(await configureMailboxesStep.check(planEnv)).toEqual({
      upToDate: false,
      detail: `would configure ${all} of ${all} mailboxes with profile 'Exchange Online SSS' and server-side sync (the profile is created by the email-profile step)`,
    });
    await applyStep(emailProfileStep, e);
    const profileId = e.facts.profileId ?? '';
    // A few already right: they are not written.
    const right = active().slice(0, 4);
    for (const m of right) Object.assign(m, { _emailserverprofile_value: profileId, incomingemaildeliverymethod: 2, outgoingemaildeliverymethod: 2, actdeliverymethod: 1 });
    const inactive = [...sim.state.mailboxes.values()].find((m) => m.statecode === StateCode.Inactive);
    const inactiveBefore = inactive ? { ...inactive } : undefined;

    expect(await configureMailboxesStep.check(e)).toMatchObject({ upToDate: false, detail: expect.stringMatching(new RegExp(`^would configure ${all - 4} of ${all} mailboxes`)) as unknown });
    sim.resetStats();
    const { outcome, updates } = await applyStep(configureMailboxesStep, e);
    expect(outcome).toMatchObject({ wrote: true, changed: false, detail: `configured ${all - 4} of ${all} mailboxes` });
    expect(writes().batchPatch).toBe(all - 4);
    expect(updates.at(-1)).toBe(`configured ${all - 4} of ${all - 4} mailboxes`);
    for (const m of active()) {
      expect(m).toMatchObject({ _emailserverprofile_value: profileId, incomingemaildeliverymethod: 2, outgoingemaildeliverymethod: 2, actdeliverymethod: 1 });
    }
    if (inactive) expect(inactive).toEqual(inactiveBefore); // only active mailboxes are selected

    sim.resetStats();
    expect(await configureMailboxesStep.check(e)).toEqual({ upToDate: true, detail: `already done: all ${all} mailboxes` });
    expect((await applyStep(configureMailboxesStep, e)).outcome).toMatchObject({ wrote: false, detail: `already done: all ${all} mailboxes` });
    expect(writes()).toEqual({ patch: 0, post: 0, batchPatch: 0 });
  });

  it('finds the profile by name when no earlier step set it (a resume, `configure mailboxes` alone); none: a blocker', async () => {
    const alone = { ...env({ profile: { name: 'No Such Profile' } }), scope: 'configure' as const };
    const blocked = await configureMailboxesStep.check(alone);
    expect(blocked.upToDate).toBe(false);
    expect(blocked.blocker).toEqual({
      message: "There is no email server profile 'No Such Profile' of type Exchange Online (Hybrid) to configure the mailboxes with.",
      fix: expect.stringMatching(/@setup profile create/) as unknown,
    });
    await expect(applyStep(configureMailboxesStep, alone)).rejects.toMatchObject({ code: 'STEP_FAILED' });

    const seeded = profileNamed('Exchange Online');
    const resumed = { ...env({ profile: { name: 'Exchange Online' } }), scope: 'configure' as const };
    const planned = await configureMailboxesStep.check(resumed);
    expect(planned.blocker).toBeUndefined();
    expect(resumed.facts.profileId).toBe(seeded?.emailserverprofileid);
    expect((await applyStep(configureMailboxesStep, resumed)).outcome.wrote).toBe(true);
    expect(active().every((m) => m._emailserverprofile_value === seeded?.emailserverprofileid)).toBe(true);
    expect(writes().post).toBeGreaterThan(0); // the $batch requests
    expect(writes().patch).toBe(0);
  });

  it('names how many failed and the top cause with its remediation', async () => {
    const e = env();
    await applyStep(emailProfileStep, e);
    const ctx = e.ctx;
    const batch = ctx.crm.batch.bind(ctx.crm);
    // Two mailboxes answer like CRM does when the owner lacks the Mailbox privileges.
    const victims = new Set(active().slice(0, 2).map((m) => m.mailboxid));
    ctx.crm.batch = async (requests, options) => {
      const result = await batch(requests, options);
      return {
        ...result,
        responses: result.responses.map((r, i) =>
          [...victims].some((id) => requests[i]?.path.includes(id))
            ? { status: 403, headers: {}, body: { error: { code: '0x80040220', message: 'Crm.80048306: insufficient permissions on mailbox' } } }
            : r,
        ),
      };
    };
    const error = await failure(applyStep(configureMailboxesStep, e));
    expect(error.code).toBe('STEP_FAILED');
    expect(error.message).toMatch(new RegExp(`^2 of ${active().length} mailboxes could not be configured: Insufficient permissions \\(Crm\\.80048306\\) \\(2\\)\\. ${active().length - 2} were configured\\.$`));
    expect(error.hint).toMatch(/Mailbox privileges/);
  });
});

describe('approve-email', () => {
  it('approves the unapproved mailboxes; an owner without the privilege halts with the cause; after the fix only the rest is written', async () => {
    const e = env();
    const todo = active().filter((m) => m.emailrouteraccessapproval !== A.Approved);
    // An owner without prvApproveRejectEmailAddress (the simulator answers 403 as CRM does).
    const owner = sim.state.principals.get(todo[0]?._ownerid_value ?? '');
    if (owner) owner.hasApprovePrivilege = false;
    const noPrivilege = todo.filter((m) => sim.state.principals.get(m._ownerid_value)?.hasApprovePrivilege === false);
    expect(todo.length).toBeGreaterThan(noPrivilege.length);
    expect(noPrivilege.length).toBeGreaterThan(0);
    expect(await approveEmailStep.check(e)).toEqual({ upToDate: false, detail: `would approve ${todo.length} of ${active().length} mailboxes` });

    const error = await failure(applyStep(approveEmailStep, e));
    expect(error.code).toBe('STEP_FAILED');
    expect(error.message).toMatch(new RegExp(`^${noPrivilege.length} of ${todo.length} mailboxes could not be approved: Insufficient permissions`));
    expect(error.hint).toMatch(/prvApproveRejectEmailAddress/);
    expect(active().filter((m) => m.emailrouteraccessapproval !== A.Approved).map((m) => m.mailboxid).sort()).toEqual(noPrivilege.map((m) => m.mailboxid).sort());

    for (const m of noPrivilege) {
      const owner = sim.state.principals.get(m._ownerid_value);
      if (owner) owner.hasApprovePrivilege = true;
    }
    sim.resetStats();
    expect((await applyStep(approveEmailStep, e)).outcome).toMatchObject({ wrote: true, detail: `approved ${noPrivilege.length} of ${active().length} mailboxes` });
    expect(writes().batchPatch).toBe(noPrivilege.length);
    sim.resetStats();
    expect(await approveEmailStep.check(e)).toEqual({ upToDate: true, detail: `already done: all ${active().length} mailboxes approved` });
    expect((await applyStep(approveEmailStep, e)).outcome.wrote).toBe(false);
    expect(writes()).toEqual({ patch: 0, post: 0, batchPatch: 0 });
  });
});

describe('test-enable', () => {
  it('tests only the mailboxes whose last test did not succeed; a failure halts with the report; the retry tests only the failed', async () => {
    const good = goodMailboxes(5);
    const bad = active().find((m) => m.emailaddress && sim.state.badAddresses.get(m.emailaddress.toLowerCase()) === 'unauthorized');
    expect(good).toHaveLength(5);
    expect(bad).toBeDefined();
    const selected = [...good, ...(bad ? [bad] : [])];
    const filter: MailboxFilter = { kind: 'addresses', addresses: selected.map((m) => m.emailaddress ?? '') };
    const e = env({ filter, profile: { name: 'Exchange Online' } });
    await emailProfileStep.check(e);
    await applyStep(configureMailboxesStep, e);
    await applyStep(approveEmailStep, e);
    // Configured in an earlier run (this run changed nothing of theirs).
    delete e.facts.reconfigured;
    // One of them already passed its last test: it is not tested again.
    for (const m of selected) Object.assign(m, { incomingemailstatus: T.NotRun, outgoingemailstatus: T.NotRun });
    const passed = good[0];
    if (passed) Object.assign(passed, { incomingemailstatus: T.Success, outgoingemailstatus: T.Success, actstatus: T.Success });

    expect(await testEnableStep.check(e)).toEqual({ upToDate: false, detail: 'would Test & Enable 5 of 6 mailboxes' });
    sim.resetStats();
    const error = await failure(applyStep(testEnableStep, e));
    expect(writes().batchPatch).toBe(5);
    expect(error.code).toBe('TEST_ENABLE_FAILED');
    expect(error.message).toMatch(/^1 of 5 mailboxes failed Test & Enable: /);
    const report = error.details?.testReport as Verification;
    expect(report).toMatchObject({ selected: 5, succeeded: 4, failed: 1, noResult: 0 });
    expect(report.failures[0]?.sample).toEqual([bad?.emailaddress]);
    expect(error.hint).toBe(`${report.failures[0]?.remediation ?? ''} Then retry the step: only the mailboxes still not done are worked on again.`);

    // The fix: the address now resolves. The retry schedules only the failed mailbox.
    if (bad?.emailaddress) sim.state.badAddresses.delete(bad.emailaddress.toLowerCase());
    expect(await testEnableStep.check(e)).toEqual({ upToDate: false, detail: 'would Test & Enable 1 of 6 mailboxes' });
    sim.resetStats();
    const { outcome } = await applyStep(testEnableStep, e);
    expect(writes().batchPatch).toBe(1);
    expect(outcome).toMatchObject({ wrote: true, detail: 'Test & Enable succeeded for 1 of 6 mailboxes', testReport: { selected: 1, succeeded: 1, failed: 0, noResult: 0, failures: [] } });

    sim.resetStats();
    expect(await testEnableStep.check(e)).toEqual({ upToDate: true, detail: 'already done: all 6 mailboxes passed Test & Enable' });
    expect((await applyStep(testEnableStep, e)).outcome).toMatchObject({ wrote: false });
    expect(writes()).toEqual({ patch: 0, post: 0, batchPatch: 0 });
  });
});

describe('test-enable after configure-mailboxes', () => {
  it('tests a mailbox the run reconfigured even though its last test (with the old profile) succeeded', async () => {
    const [m] = goodMailboxes(1);
    if (!m?.emailaddress) throw new Error('no mailbox');
    const filter: MailboxFilter = { kind: 'addresses', addresses: [m.emailaddress] };
    const e = env({ filter, profile: { name: 'Exchange Online' } });
    await emailProfileStep.check(e);
    // Approved and tested fine, but with another profile and Email Router delivery.
    const other = [...sim.state.profiles.values()].find((p) => p.name !== 'Exchange Online');
    Object.assign(m, { _emailserverprofile_value: other?.emailserverprofileid ?? null, incomingemaildeliverymethod: 3, emailrouteraccessapproval: 1, incomingemailstatus: T.Success, outgoingemailstatus: T.Success });
    expect(await testEnableStep.check(e)).toEqual({ upToDate: false, detail: 'would Test & Enable 1 of 1 mailbox' });
    await applyStep(configureMailboxesStep, e);
    expect(e.facts.reconfigured?.has(m.mailboxid)).toBe(true);
    sim.resetStats();
    const { outcome } = await applyStep(testEnableStep, e);
    expect(writes().batchPatch).toBe(1);
    expect(outcome).toMatchObject({ wrote: true, testReport: { selected: 1, succeeded: 1 } });
  });
});

describe('test-enable with the "many reconfigured" marker of an earlier attempt', () => {
  it('tests every mailbox of the selection, though all passed their last test', async () => {
    const two = goodMailboxes(2);
    const filter: MailboxFilter = { kind: 'addresses', addresses: two.map((m) => m.emailaddress ?? '') };
    const e = env({ filter, profile: { name: 'Exchange Online' } });
    await emailProfileStep.check(e);
    await applyStep(configureMailboxesStep, e);
    await applyStep(approveEmailStep, e);
    for (const m of two) Object.assign(m, { incomingemailstatus: T.Success, outgoingemailstatus: T.Success, actstatus: T.Success });
    delete e.facts.reconfigured;
    expect((await applyStep(testEnableStep, e)).outcome).toMatchObject({ wrote: false });
    e.facts.reconfiguredAll = true;
    sim.resetStats();
    const { outcome } = await applyStep(testEnableStep, e);
    expect(writes().batchPatch).toBe(2);
    expect(outcome).toMatchObject({ wrote: true, testReport: { selected: 2, succeeded: 2 } });
  });
});

describe('test-enable and ACT', () => {
  it('tests a mailbox whose incoming and outgoing passed but whose server-side-sync ACT did not', async () => {
    const two = goodMailboxes(2);
    const filter: MailboxFilter = { kind: 'addresses', addresses: two.map((m) => m.emailaddress ?? '') };
    const e = env({ filter, profile: { name: 'Exchange Online' } });
    await emailProfileStep.check(e);
    await applyStep(configureMailboxesStep, e);
    await applyStep(approveEmailStep, e);
    delete e.facts.reconfigured;
    for (const m of two) Object.assign(m, { incomingemailstatus: T.Success, outgoingemailstatus: T.Success, actstatus: T.Success });
    const [actFailed] = two;
    if (!actFailed) throw new Error('no mailbox');
    actFailed.actstatus = T.Failure;
    expect(await testEnableStep.check(e)).toEqual({ upToDate: false, detail: 'would Test & Enable 1 of 2 mailboxes' });
    sim.resetStats();
    const { outcome } = await applyStep(testEnableStep, e);
    expect(writes().batchPatch).toBe(1);
    expect(outcome).toMatchObject({ wrote: true, testReport: { selected: 1, succeeded: 1 } });
    expect(actFailed.actstatus).toBe(T.Success);
    expect(await testEnableStep.check(e)).toMatchObject({ upToDate: true });
  });
});

describe('a fresh deployment', () => {
  let fresh: CrmSimulator;
  let freshCrm: CrmClient;
  beforeAll(async () => {
    fresh = await startCrmSimulator({ port: 0, seed: 9, mailboxCount: 40, testDelayMs: 20, scenario: 'fresh' });
    freshCrm = CrmClient.create({ orgUrl: fresh.orgUrl, auth: { kind: 'none' }, pageSize: 25, timeoutMs: 5_000, maxRetries: 1, maxSockets: 4 });
  });
  afterAll(async () => {
    freshCrm.close();
    await fresh.close();
  });

  function freshEnv(facts: RunbookEnv['facts'] = {}): RunbookEnv {
    return { ...env({ profile: { name: 'Exchange Online' }, facts }), ctx: { ...context(), crm: freshCrm.scope() } };
  }
  const steps = [emailProfileStep, orgDefaultsStep, configureMailboxesStep, approveEmailStep];

  it('plans every CRM step as "would …", applies them in order, then every check is "already done" and a second run writes nothing', async () => {
    const n = fresh.state.mailboxes.size;
    const unapproved = [...fresh.state.mailboxes.values()].filter((m) => m.emailrouteraccessapproval !== A.Approved).length;
    const plan = freshEnv();
    const planned = [];
    for (const step of [...steps, testEnableStep]) planned.push((await step.check(plan)).detail);
    expect(planned).toEqual([
      "would create profile 'Exchange Online' (Exchange Online (Hybrid), autodiscover, server-to-server)",
      "would set the default profile to 'Exchange Online' (created by the email-profile step), server-side sync for incoming, outgoing and ACT, server-side sync as the connection channel",
      `would configure ${n} of ${n} mailboxes with profile 'Exchange Online' and server-side sync (the profile is created by the email-profile step)`,
      `would approve ${unapproved} of ${n} mailboxes`,
      `would Test & Enable ${n} of ${n} mailboxes`,
    ]);
    expect(fresh.stats.byMethod.PATCH ?? 0).toBe(0);
    expect(fresh.stats.byMethod.POST ?? 0).toBe(0);

    const run = freshEnv();
    for (const step of steps) expect((await step.apply(run, { update: () => undefined, keep: () => undefined })).wrote).toBe(true);
    const profileId = run.facts.profileId;
    expect(fresh.state.organization._defaultemailserverprofileid_value).toBe(profileId);
    for (const m of fresh.state.mailboxes.values()) {
      expect(m).toMatchObject({ _emailserverprofile_value: profileId, incomingemaildeliverymethod: 2, outgoingemaildeliverymethod: 2, actdeliverymethod: 1, emailrouteraccessapproval: A.Approved });
    }

    fresh.resetStats();
    const again = freshEnv();
    for (const step of steps) expect((await step.check(again)).upToDate).toBe(true);
    for (const step of steps) expect((await step.apply(again, { update: () => undefined, keep: () => undefined })).wrote).toBe(false);
    expect(fresh.stats.byMethod.PATCH ?? 0).toBe(0);
    expect(fresh.stats.byMethod.POST ?? 0).toBe(0); // no create, no $batch

    // Without the S2S part (certificate, tenant id) Test & Enable fails for every mailbox: the run halts with the report.
    const error = await failure(testEnableStep.apply(freshEnv(), { update: () => undefined, keep: () => undefined }));
    expect(error.code).toBe('TEST_ENABLE_FAILED');
    const report = error.details?.testReport as Verification;
    expect(report.selected).toBe(n);
    expect(report.failed + report.noResult).toBe(n);
    expect(error.message).toMatch(new RegExp(`^${n} of ${n} mailboxes failed Test & Enable: ${report.failures[0]?.title.replace(/[()]/g, '\\$&') ?? ''}`));
    expect(error.hint).toContain(report.failures[0]?.remediation ?? '-');
  });
});
