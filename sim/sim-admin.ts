import { createHash } from 'node:crypto';
import { z } from 'zod';
import { approvalLabels, testStatusLabels } from '../jobs/crm-values.ts';
import { s2sHealth, type S2SBreakage, type S2SFault, type S2SHealth, type S2SState } from './s2s-state.ts';
import type { SimState } from './sim-state.ts';
import type { TestEnableEngine } from './test-enable-engine.ts';

/**
 * The simulator's own admin surface under `/_sim/` (outside the organization path, never delayed
 * or failed): state summary, fault injection, reset.
 */
export interface Faults {
  /** Added to every API request. */
  latencyMs: number;
  /** 0..1: probability that an API request answers 503 (seeded). */
  failRate: number;
  /** How long after scheduling a Test & Enable run completes (plus small jitter). */
  testDelayMs: number;
  /** The next n API requests answer 503. */
  failNext: number;
}

export const faultsSchema = z
  .object({
    latencyMs: z.number().int().min(0).max(600_000),
    failRate: z.number().min(0).max(1),
    testDelayMs: z.number().int().min(0).max(86_400_000),
    failNext: z.number().int().min(0).max(1_000_000),
  })
  .partial()
  .strict();

export interface StateSummary {
  mailboxes: number;
  active: number;
  inactive: number;
  byApproval: Record<string, number>;
  byTestStatus: { incoming: Record<string, number>; outgoing: Record<string, number>; act: Record<string, number>; mailbox: Record<string, number> };
  testsScheduled: number;
  testsPending: number;
  profiles: number;
  tracelogs: number;
}

function bump(counts: Record<string, number>, label: string): void {
  counts[label] = (counts[label] ?? 0) + 1;
}

export function summarizeState(state: SimState, engine: TestEnableEngine): StateSummary {
  const summary: StateSummary = {
    mailboxes: state.mailboxes.size,
    active: 0,
    inactive: 0,
    byApproval: {},
    byTestStatus: { incoming: {}, outgoing: {}, act: {}, mailbox: {} },
    testsScheduled: 0,
    testsPending: engine.pendingCount,
    profiles: state.profiles.size,
    tracelogs: state.tracelogs.size,
  };
  const label = (value: number): string => testStatusLabels[value] ?? String(value);
  for (const m of state.mailboxes.values()) {
    if (m.statecode === 0) summary.active++;
    else summary.inactive++;
    bump(summary.byApproval, approvalLabels[m.emailrouteraccessapproval] ?? String(m.emailrouteraccessapproval));
    bump(summary.byTestStatus.incoming, label(m.incomingemailstatus));
    bump(summary.byTestStatus.outgoing, label(m.outgoingemailstatus));
    bump(summary.byTestStatus.act, label(m.actstatus));
    bump(summary.byTestStatus.mailbox, label(m.mailboxstatus));
    if (m.testemailconfigurationscheduled) summary.testsScheduled++;
  }
  return summary;
}

// ---- S2S (the certificate lifecycle's simulated side) ------------------------------------------

/** `POST /_sim/s2s/faults`: one fault or several (`target` a script name, `Script@SERVER`, or a Graph target). */
export const s2sFaultSchema = z.object({
  target: z.string().min(1).max(200),
  message: z.string().min(1).max(1000).optional(),
  times: z.number().int().min(1).max(1_000_000).default(1),
  /** CRM write targets (`crm:<METHOD> <set>`): the answer's status, default 400. */
  status: z.number().int().min(400).max(599).optional(),
  /** CRM write targets: the error code, default 0x80040220. */
  code: z.string().regex(/^0x[0-9A-Fa-f]{8}$/).optional(),
  /** The call takes effect, then its answer waits this long (message, status and code are ignored). */
  hangMs: z.number().int().min(0).max(600_000).optional(),
}).strict().refine((f) => f.message !== undefined || f.hangMs !== undefined, { message: 'give a message (the error) or hangMs (a late answer)' });
export const s2sFaultsSchema = z.union([s2sFaultSchema, z.array(s2sFaultSchema).max(100)]);

/** `POST /_sim/s2s/breakage`: the silent breakages to switch on or off. */
export const s2sBreakageSchema = z.object({
  keyAccessNotApplied: z.boolean(),
  keyCredentialDropped: z.boolean(),
}).partial().strict();

// ---- knobs (the deployment's rights and grants) ----------------------------------------------

/**
 * `GET|POST /_sim/knobs`: how the deployment is set up around the agent. Each field given replaces
 * the current value; a reset returns to the seed (local admin, System Administrator, the three
 * Graph permissions, every owner with its privileges).
 */
export const knobsSchema = z.object({
  /** Test-LocalAdministrator's answer: the agent runs as a local administrator. */
  localAdministrator: z.boolean(),
  /** The agent's CRM user's security roles (systemuserroles_association), by name. */
  callerRoles: z.array(z.string().min(1).max(100)).max(50),
  /** The Graph application permissions granted to the helper app (tokens' roles, 403 without). */
  graphPermissions: z.array(z.string().regex(/^[A-Za-z]+(\.[A-Za-z]+)+$/)).max(50),
  /** Mailbox addresses whose owner lacks the Mailbox privileges: Test & Enable fails with Crm.80048306. */
  ownersWithoutPrivileges: z.array(z.string().min(3).max(320)).max(200_000),
  /** Mailbox addresses whose ACT is tied to another CRM organization: ACT fails "configured with another org" until orgmarkedasprimaryforexchangesync is true. */
  actInAnotherOrganization: z.array(z.string().min(3).max(320)).max(200_000),
  /** Exchange Online: the organization's EwsEnabled (null: unset). */
  ewsEnabled: z.boolean().nullable(),
  /** Exchange Online: EwsAllowedAppIDs (null: no list). */
  ewsAllowedAppIds: z.array(z.string().regex(/^[0-9a-fA-F-]{36}$/)).max(100).nullable(),
  /** Exchange Online: mailbox addresses whose EwsEnabled is false. */
  mailboxesEwsDisabled: z.array(z.string().min(3).max(320)).max(200_000),
}).partial().strict();
export type KnobChanges = z.infer<typeof knobsSchema>;
export type Knobs = Required<KnobChanges>;

/** Changing calls since the start or the last reset (GET /_sim/state `counters`). */
export interface SimCounters {
  /** Committed CRM writes by `<METHOD> <entity set>` (one row each, $batch parts included). */
  crmWrites: Record<string, number>;
  /** Script runs that changed something, by script name; `graph:patch-service-principal` for Graph. */
  changes: Record<string, number>;
}

export interface S2SSummary {
  serviceAccount: string;
  servers: Array<{
    name: string;
    store: Array<{ thumbprint: string; subject: string; notAfter: string; keySpec: number; hasPrivateKey: boolean; readers: string[] }>;
    services: Array<{ name: string; status: string; startedAt: string }>;
  }>;
  crmCertificate: { thumbprint: string; subject: string; notAfter: string; registeredAt: string } | null;
  serverSettings: { principalId: string | null; metadataUrl: string | null };
  servicePrincipal: {
    id: string;
    appId: string;
    servicePrincipalNames: string[];
    keyCredentials: Array<{ keyId: string; thumbprint: string | null; displayName: string | null; startDateTime: string; endDateTime: string }>;
  };
  lastS2SChangeAt: string;
  faults: S2SFault[];
  breakage: S2SBreakage;
  health: S2SHealth;
}

function thumbprintOfKey(base64: string): string | null {
  if (!base64) return null;
  return createHash('sha1').update(Buffer.from(base64, 'base64')).digest('hex').toUpperCase();
}

export function summarizeS2S(state: S2SState, now: number): S2SSummary {
  const iso = (ms: number): string => new Date(ms).toISOString();
  return {
    serviceAccount: state.serviceAccount,
    servers: state.servers.map((server) => ({
      name: server.name,
      store: [...server.store.values()].map((c) => ({
        thumbprint: c.thumbprint,
        subject: c.subject,
        notAfter: c.notAfter,
        keySpec: c.keySpec,
        hasPrivateKey: c.hasPrivateKey,
        readers: [...c.keyReaders],
      })),
      services: Object.entries(server.services).map(([name, s]) => ({ name, status: s.status, startedAt: iso(s.startedAt) })),
    })),
    crmCertificate: state.crmCertificate
      ? { thumbprint: state.crmCertificate.thumbprint, subject: state.crmCertificate.subject, notAfter: state.crmCertificate.notAfter, registeredAt: iso(state.crmCertificate.registeredAt) }
      : null,
    serverSettings: { ...state.serverSettings },
    servicePrincipal: {
      id: state.servicePrincipal.id,
      appId: state.servicePrincipal.appId,
      servicePrincipalNames: [...state.servicePrincipal.servicePrincipalNames],
      keyCredentials: state.servicePrincipal.keyCredentials.map((k) => ({
        keyId: k.keyId,
        thumbprint: thumbprintOfKey(k.key),
        displayName: k.displayName,
        startDateTime: k.startDateTime,
        endDateTime: k.endDateTime,
      })),
    },
    lastS2SChangeAt: iso(state.lastS2SChangeAt),
    faults: state.faults.map((f) => ({ ...f })),
    breakage: { ...state.breakage },
    health: s2sHealth(state, now),
  };
}
