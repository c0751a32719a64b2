import { DEFAULT_EWS_APP_ID } from '../../../jobs/ews-access.ts';
import { SIM_EXO_CERT_THUMBPRINT, SIM_INITIAL_DOMAIN } from '../../../sim/exchange-online.ts';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { readCertificateFile, summarizeDer } from '../../../agent/certkit/kit.ts';
import { createChangeLock, type LockScheduler } from '../../../agent/runtime/change-lock.ts';
import { createStepJournal, type StepJournal } from '../../../agent/steps/journal.ts';
import { makeEvaluationPfx } from '../../../agent/certkit/evaluation-pfx.ts';
import type { CertServices, CertSettings } from '../../../agent/runtime/job-context.ts';
import { silentLogger } from '../../../core/logger.ts';
import { FAKE_GRAPH_CLIENT_ID, FakeS2S, type FakeCert } from './fake-s2s.ts';
import { fakeMailCrm } from './fake-mail-crm.ts';
import { testContext, type TestContext } from './job-context.ts';

export const PFX_PASSWORD = 'pfx-pass-7Qx!';
export const SERVERS = ['CRMAPP01', 'CRMAPP02'] as const;
export const ACCOUNT = 'CONTOSO\\crmasync';

export interface Pfx extends FakeCert {
  pfx: Buffer;
}

/** A PFX made with the kit's evaluation writer, with its public facts. */
export function makePfx(subject: string, days: number, options: { keySize?: number } = {}): Pfx {
  const made = makeEvaluationPfx({ subject, days, password: PFX_PASSWORD, ...(options.keySize ? { keySize: options.keySize } : {}) });
  const read = readCertificateFile(made.pfx, { fileName: 'x.pfx', password: PFX_PASSWORD, now: Date.now(), minDaysLeft: 0 });
  return { pfx: made.pfx, thumbprint: read.summary.thumbprint, subject: read.summary.subject, derBase64: read.derBase64, notBefore: read.summary.notBefore, notAfter: read.summary.notAfter };
}

export async function certDirWith(files: Record<string, Buffer>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cert-dir-'));
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
  return dir;
}

export interface CertWorld {
  s2s: FakeS2S;
  ctx: TestContext & { certs: CertServices };
  mail: ReturnType<typeof fakeMailCrm>;
  journal: StepJournal;
  /** The lock's renewals, run by hand (no timers in tests): one per held lock. */
  renewals: (() => void)[];
}

/**
 * A deployment with `current` in place (registered, on both servers, key credential, restarted),
 * five approved mailboxes whose last test succeeded, and a job context whose certificate services
 * are the fakes, the real kit and a real Redis journal under `prefix`.
 */
export function certWorld(redis: Redis, prefix: string, current: FakeCert | null, settings: Partial<CertSettings> = {}): CertWorld {
  const s2s = new FakeS2S(ACCOUNT, SERVERS);
  if (current) s2s.seed(current);
  const clock = { now: Date.now() };
  const mail = fakeMailCrm(5, () => s2s.health(clock.now), () => clock.now);
  const base = testContext(mail.crm, { TEST_POLL_INTERVAL_MS: 1_000, TEST_TIMEOUT_MS: 10_000 }, () => {
    clock.now = base.clock.now;
  });
  base.clock.now = clock.now;
  const journal = createStepJournal({ redis, prefix, signingKey: 'test-signing-key-0123456789-abcdefghij', ttlMs: 60_000 });
  const renewals: (() => void)[] = [];
  const schedule: LockScheduler = (renew) => {
    renewals.push(renew);
    return () => {
      renewals.splice(renewals.indexOf(renew), 1);
    };
  };
  const certs: CertServices = {
    settings: {
      ASYNC_SERVERS: [...SERVERS],
      ASYNC_SERVICE_ACCOUNT: ACCOUNT,
      CERT_DIR: undefined,
      CERT_NEW_PFX: 's2s-new.pfx',
      CERT_PFX_PASSWORD: PFX_PASSWORD,
      CERT_MIN_DAYS_LEFT: 30,
      CERT_VERIFY_MAILBOXES: 3,
      CERT_RETIRE_OLD: 'remove',
      CLOUD: 'public',
      ...settings,
    },
    exchange: { ewsAppId: DEFAULT_EWS_APP_ID, clientId: FAKE_GRAPH_CLIENT_ID, certificateThumbprint: SIM_EXO_CERT_THUMBPRINT, organization: SIM_INITIAL_DOMAIN, environment: 'O365Default' },
    powershell: s2s,
    kit: { readCertificateFile, summarizeDer },
    graph: () => s2s.graph,
    graphMissing: [],
    journal,
    lock: createChangeLock({ redis, prefix, logger: silentLogger(), schedule }),
  };
  return { s2s, ctx: Object.assign(base, { certs }), mail, journal, renewals };
}

export const newRunIdForTest = () => randomUUID().replace(/-/g, '').slice(0, 12);
