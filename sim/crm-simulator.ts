import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ZodError } from 'zod';
import { silentLogger, type Logger } from '../core/logger.ts';
import { matchApiPath, serviceRootOf } from './api-path.ts';
import {
  commitTransaction,
  errorResponse,
  handleApiRequest,
  newTransaction,
  rollbackTransaction,
  type ApiRequest,
  type ApiResponse,
  type CrmApiContext,
} from './crm-api.ts';
import { handleBatch } from './crm-batch.ts';
import { CrmError, CrmErrorCode } from './crm-error.ts';
import { powershellRequestSchema, runSimulatedScript } from './powershell-api.ts';
import { replaceS2SState, seedS2S, type S2SSeedOptions } from './s2s-seed.ts';
import type { S2SBreakage, S2SFault, S2SState } from './s2s-state.ts';
import { DEFAULT_MAILBOX_COUNT, DEFAULT_SEED, seedDeployment } from './seed-deployment.ts';
import { seededRandom } from './seeded-random.ts';
import {
  faultsSchema,
  knobsSchema,
  s2sBreakageSchema,
  s2sFaultsSchema,
  summarizeS2S,
  summarizeState,
  type Faults,
  type KnobChanges,
  type Knobs,
  type SimCounters,
} from './sim-admin.ts';
import { takeFault } from './s2s-state.ts';
import { roleNamed } from './sim-roles.ts';
import type { SimScenario, SimState } from './sim-state.ts';
import { TestEnableEngine } from './test-enable-engine.ts';

export type { Faults, KnobChanges, Knobs, SimCounters } from './sim-admin.ts';
export type { SimState } from './sim-state.ts';
export type { S2SState } from './s2s-state.ts';

/**
 * A stand-in for the Dynamics 365 (on-premises 9.x) Web API subset the agent uses, over real
 * HTTP, with a seeded deployment, an asynchronous Test & Enable engine and fault injection. The
 * agent reaches it only through CRM_URL (= `orgUrl`), as it reaches a real organization.
 */
/** The S2S side's seed options the simulator passes on (s2s-seed.ts has their meaning and defaults). */
const s2sOptionKeys = ['certDaysLeft', 'asyncServers', 'serviceAccount', 'graphClientSecret', 'tenantId', 'graphClientId'] as const;

export interface CrmSimulatorOptions extends Pick<S2SSeedOptions, (typeof s2sOptionKeys)[number]> {
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0 = a random free port. */
  port?: number;
  /** Default 'contoso' → org URL http://host:port/contoso. */
  orgName?: string;
  /** PRNG seed for the seeded deployment, jitter and injected failures (deterministic). */
  seed?: number;
  /** Default 320. */
  mailboxCount?: number;
  /** Added to every API request (default 0). */
  latencyMs?: number;
  /** Test & Enable completes this long after scheduling, plus small jitter (default 1500). */
  testDelayMs?: number;
  /** 0..1 probability that an API request answers 503 (default 0). */
  failRate?: number;
  /** Largest page size honoured (default 5000, like CRM). */
  pageSizeMax?: number;
  /** Default silent. */
  logger?: Logger;
  /**
   * 'configured' (default): the seeded deployment on Exchange Online with healthy S2S. 'fresh':
   * nothing of the procedure done yet, for the runbook (seed-deployment.ts and s2s-seed.ts say what).
   */
  scenario?: SimScenario;
}

/** What `configureS2S` changes: faults added, breakage switched on or off. */
export interface S2SChanges {
  faults?: readonly S2SFault[];
  breakage?: Partial<S2SBreakage>;
}

export interface SimulatorStats {
  /** API requests received (a $batch counts once; /_sim/ requests are not counted). */
  requests: number;
  /** Request parts inside $batch requests. */
  batchParts: number;
  /** API requests by HTTP method (top level; parts are counted as `batch:<METHOD>`). */
  byMethod: Record<string, number>;
}

export interface CrmSimulator {
  /** e.g. http://127.0.0.1:43121/contoso */
  readonly orgUrl: string;
  /** e.g. http://127.0.0.1:43121 (PWSH_SIM_URL of the PowerShell stand-in). */
  readonly baseUrl: string;
  /**
   * The simulated S2S side (certificate stores, registration, settings, services, Entra). The same
   * object for the simulator's whole life (a reset reseeds it in place): share it with
   * `startGraphSimulator({ s2s })`.
   */
  readonly s2s: S2SState;
  /** Live state (replaced by a reset). */
  readonly state: SimState;
  readonly stats: SimulatorStats;
  /** The Test & Enable engine (pending runs, completed counts). */
  readonly engine: TestEnableEngine;
  /** Current fault settings. */
  readonly faults: Readonly<Faults>;
  configure(faults: Partial<Faults>): void;
  /** Adds S2S faults and switches breakage (as POST /_sim/s2s/faults and /_sim/s2s/breakage do). */
  configureS2S(changes: S2SChanges): void;
  readonly scenario: SimScenario;
  /** The current knobs (GET /_sim/knobs). */
  readonly knobs: Knobs;
  /** Changes knobs (as POST /_sim/knobs does); fields not given stay. */
  setKnobs(changes: KnobChanges): void;
  /** Changing calls since the start or the last reset (GET /_sim/state `counters`). */
  counters(): SimCounters;
  resetStats(): void;
  /** Reseeds the deployment and the S2S side, drops pending tests, resets stats and faults to the start options. */
  reset(): void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

class BodyTooLarge extends Error {}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLarge('request body too large');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function headerMap(req: IncomingMessage): Map<string, string> {
  const map = new Map<string, string>();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) map.set(name.toLowerCase(), Array.isArray(value) ? value.join(', ') : value);
  }
  return map;
}

function send(res: ServerResponse, response: ApiResponse): void {
  res.writeHead(response.status, response.headers);
  res.end(response.body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, { status, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) });
}

/** The JSON body of an admin request; answers 400 and gives undefined when it is not JSON. */
async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  try {
    return JSON.parse((await readBody(req)) || '{}') as unknown;
  } catch (error) {
    if (error instanceof BodyTooLarge) throw error;
    sendJson(res, 400, { error: { code: 'SIM_BAD_REQUEST', message: 'The body is not valid JSON.' } });
    return undefined;
  }
}

function badRequest(res: ServerResponse, error: ZodError): void {
  sendJson(res, 400, { error: { code: 'SIM_BAD_REQUEST', message: error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') } });
}

export async function startCrmSimulator(options: CrmSimulatorOptions = {}): Promise<CrmSimulator> {
  const host = options.host ?? '127.0.0.1';
  const orgName = options.orgName ?? 'contoso';
  const seed = options.seed ?? DEFAULT_SEED;
  const mailboxCount = options.mailboxCount ?? DEFAULT_MAILBOX_COUNT;
  const pageSizeMax = options.pageSizeMax ?? 5000;
  const logger = (options.logger ?? silentLogger()).child({ component: 'crm-simulator' });
  const initialFaults: Faults = faultsSchema.required().parse({
    latencyMs: options.latencyMs ?? 0,
    failRate: options.failRate ?? 0,
    testDelayMs: options.testDelayMs ?? 1500,
    failNext: 0,
  });
  if (!/^[A-Za-z0-9_-]+$/.test(orgName)) throw new Error(`orgName '${orgName}' must be letters, digits, - or _`);

  const scenario: SimScenario = options.scenario ?? 'configured';
  let state = seedDeployment({ seed, mailboxCount, orgName, scenario });
  const s2sSeed = (): S2SSeedOptions => ({
    scenario,
    orgName,
    organizationId: state.organization.organizationid,
    ...Object.fromEntries(s2sOptionKeys.filter((k) => options[k] !== undefined).map((k) => [k, options[k]])),
  });
  const s2s: S2SState = seedS2S(s2sSeed());
  let faults: Faults = { ...initialFaults };
  let faultRandom = seededRandom(seed ^ 0x5eed);
  let idRandom = seededRandom(seed + 2);
  const stats: SimulatorStats = { requests: 0, batchParts: 0, byMethod: {} };
  let crmWrites: Record<string, number> = {};
  const newId = (): string => idRandom.guid();

  const engine = new TestEnableEngine({
    getState: () => state,
    random: seededRandom(seed + 1),
    delayMs: faults.testDelayMs,
    logger,
    newId,
    getS2S: () => s2s,
  });
  const api: CrmApiContext = {
    getState: () => state,
    engine,
    pageSizeMax: () => pageSizeMax,
    newId,
    now: Date.now,
    takeFault: (target) => takeFault(s2s, target),
    onWrite: (kind) => {
      crmWrites[kind] = (crmWrites[kind] ?? 0) + 1;
    },
  };
  let orgUrl = '';

  const configure = (changes: Partial<Faults>): void => {
    const parsed = faultsSchema.parse(changes);
    const next: Faults = { ...faults };
    for (const key of ['latencyMs', 'failRate', 'testDelayMs', 'failNext'] as const) {
      const value = parsed[key];
      if (value !== undefined) next[key] = value;
    }
    faults = next;
    engine.delayMs = faults.testDelayMs;
    logger.info({ faults }, 'faults configured');
  };
  const configureS2S = (changes: S2SChanges): void => {
    if (changes.faults) {
      // Fields given as undefined are left out (exactOptionalPropertyTypes).
      s2s.faults.push(...changes.faults.map((f) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)) as unknown as S2SFault));
    }
    if (changes.breakage) {
      const parsed = s2sBreakageSchema.parse(changes.breakage);
      if (parsed.keyAccessNotApplied !== undefined) s2s.breakage.keyAccessNotApplied = parsed.keyAccessNotApplied;
      if (parsed.keyCredentialDropped !== undefined) s2s.breakage.keyCredentialDropped = parsed.keyCredentialDropped;
    }
    logger.info({ faults: s2s.faults.map((f) => ({ target: f.target, times: f.times })), breakage: s2s.breakage }, 's2s configured');
  };
  const knobs = (): Knobs => ({
    localAdministrator: s2s.agentHost.isAdministrator,
    callerRoles: (state.userRoles.get(state.callerUserId) ?? []).map((r) => r.name),
    graphPermissions: [...s2s.app.permissions],
    ownersWithoutPrivileges: [...state.ownersWithoutPrivileges],
    actInAnotherOrganization: [...state.actInAnotherOrganization],
    ewsEnabled: s2s.exchange.ewsEnabled,
    ewsAllowedAppIds: s2s.exchange.ewsAllowedAppIds ? [...s2s.exchange.ewsAllowedAppIds] : null,
    mailboxesEwsDisabled: [...s2s.exchange.mailboxEwsDisabled],
  });
  const setKnobs = (changes: KnobChanges): void => {
    const parsed = knobsSchema.parse(changes);
    if (parsed.localAdministrator !== undefined) s2s.agentHost.isAdministrator = parsed.localAdministrator;
    if (parsed.callerRoles !== undefined) state.userRoles.set(state.callerUserId, parsed.callerRoles.map(roleNamed));
    if (parsed.graphPermissions !== undefined) s2s.app.permissions = [...parsed.graphPermissions];
    if (parsed.ownersWithoutPrivileges !== undefined) state.ownersWithoutPrivileges = new Set(parsed.ownersWithoutPrivileges.map((a) => a.toLowerCase()));
    if (parsed.actInAnotherOrganization !== undefined) state.actInAnotherOrganization = new Set(parsed.actInAnotherOrganization.map((a) => a.toLowerCase()));
    if (parsed.ewsEnabled !== undefined) s2s.exchange.ewsEnabled = parsed.ewsEnabled;
    if (parsed.ewsAllowedAppIds !== undefined) s2s.exchange.ewsAllowedAppIds = parsed.ewsAllowedAppIds === null ? null : parsed.ewsAllowedAppIds.map((a) => a.toLowerCase());
    if (parsed.mailboxesEwsDisabled !== undefined) s2s.exchange.mailboxEwsDisabled = new Set(parsed.mailboxesEwsDisabled.map((a) => a.toLowerCase()));
    logger.info({ knobs: { ...knobs(), ownersWithoutPrivileges: state.ownersWithoutPrivileges.size } }, 'knobs set');
  };
  const counters = (): SimCounters => ({ crmWrites: { ...crmWrites }, changes: { ...s2s.changeCounts } });
  const resetStats = (): void => {
    stats.requests = 0;
    stats.batchParts = 0;
    for (const key of Object.keys(stats.byMethod)) delete stats.byMethod[key];
  };
  const reset = (): void => {
    engine.reset();
    state = seedDeployment({ seed, mailboxCount, orgName, scenario });
    replaceS2SState(s2s, seedS2S(s2sSeed()));
    crmWrites = {};
    faults = { ...initialFaults };
    engine.delayMs = faults.testDelayMs;
    faultRandom = seededRandom(seed ^ 0x5eed);
    idRandom = seededRandom(seed + 2);
    resetStats();
    logger.info('simulator reset');
  };
  /** Held-back answers end when the simulator closes (the answer is then never sent). */
  const closing = new AbortController();
  const hang = async (ms: number): Promise<boolean> => {
    try {
      await sleep(ms, undefined, { signal: closing.signal });
      return true;
    } catch {
      return false;
    }
  };
  const count = (method: string): void => {
    stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1;
  };

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    const method = req.method ?? 'GET';
    const route = `${method} ${pathname.replace(/\/+$/, '')}`;
    switch (route) {
      case 'GET /_sim/state/summary':
        return sendJson(res, 200, summarizeState(state, engine));
      case 'GET /_sim/stats':
        return sendJson(res, 200, stats);
      case 'GET /_sim/state':
        return sendJson(res, 200, { scenario, summary: summarizeState(state, engine), knobs: knobs(), counters: counters() });
      case 'GET /_sim/knobs':
        return sendJson(res, 200, knobs());
      case 'POST /_sim/knobs': {
        const body = await readJson(req, res);
        if (body === undefined) return;
        const parsed = knobsSchema.safeParse(body);
        if (!parsed.success) return badRequest(res, parsed.error);
        setKnobs(Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined)));
        return sendJson(res, 200, knobs());
      }
      case 'GET /_sim/faults':
        return sendJson(res, 200, faults);
      case 'POST /_sim/faults': {
        const body = await readJson(req, res);
        if (body === undefined) return;
        const parsed = faultsSchema.safeParse(body);
        if (!parsed.success) return badRequest(res, parsed.error);
        configure(Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined)));
        return sendJson(res, 200, faults);
      }
      case 'GET /_sim/s2s':
        return sendJson(res, 200, summarizeS2S(s2s, Date.now()));
      case 'POST /_sim/s2s/faults': {
        const body = await readJson(req, res);
        if (body === undefined) return;
        const parsed = s2sFaultsSchema.safeParse(body);
        if (!parsed.success) return badRequest(res, parsed.error);
        // configureS2S leaves out the fields given as undefined.
        configureS2S({ faults: (Array.isArray(parsed.data) ? parsed.data : [parsed.data]) as S2SFault[] });
        return sendJson(res, 200, summarizeS2S(s2s, Date.now()));
      }
      case 'POST /_sim/s2s/breakage': {
        const body = await readJson(req, res);
        if (body === undefined) return;
        const parsed = s2sBreakageSchema.safeParse(body);
        if (!parsed.success) return badRequest(res, parsed.error);
        configureS2S({ breakage: Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined)) });
        return sendJson(res, 200, s2s.breakage);
      }
      case 'POST /_sim/powershell': {
        const body = await readJson(req, res);
        if (body === undefined) return;
        const parsed = powershellRequestSchema.safeParse(body);
        if (!parsed.success) return badRequest(res, parsed.error);
        const started = Date.now();
        count('powershell');
        const result = runSimulatedScript(s2s, parsed.data, started);
        logger.info({ script: parsed.data.script, computerName: parsed.data.params.ComputerName, ok: result.ok, ms: Date.now() - started }, 'powershell script simulated');
        if (result.ok && result.hangMs !== undefined && !(await hang(result.hangMs))) return;
        return result.ok ? sendJson(res, 200, { output: result.output }) : sendJson(res, 422, { error: { code: 'SCRIPT_FAILED', message: result.message } });
      }
      case 'POST /_sim/reset':
        reset();
        return sendJson(res, 200, summarizeState(state, engine));
      default:
        return sendJson(res, 404, { error: { code: 'SIM_NOT_FOUND', message: `No simulator admin route '${route}'.` } });
    }
  }

  async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL, path: { version: string; resource: string }): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    stats.requests++;
    count(method);
    const body = await readBody(req);
    if (faults.latencyMs > 0) await sleep(faults.latencyMs);
    if (faults.failNext > 0 || (faults.failRate > 0 && faultRandom.next() < faults.failRate)) {
      if (faults.failNext > 0) faults.failNext--;
      return send(res, errorResponse(new CrmError(503, CrmErrorCode.unavailable, 'The server is busy and could not process the request (simulated 503). Try again later.')));
    }
    const request: ApiRequest = {
      method,
      resource: path.resource,
      query: url.searchParams,
      headers: headerMap(req),
      body,
      serviceRoot: serviceRootOf(orgUrl, path.version),
    };
    if (path.resource === '$batch') {
      return sendAfterHang(
        res,
        handleBatch(
          {
            api,
            orgUrl,
            orgName,
            onPart: (partMethod) => {
              stats.batchParts++;
              count(`batch:${partMethod}`);
            },
          },
          request,
        ),
      );
    }
    const tx = newTransaction();
    const response = handleApiRequest(api, request, tx);
    if (response.status < 400) commitTransaction(tx);
    else rollbackTransaction(tx);
    await sendAfterHang(res, response);
  }

  /** Sends the answer, after a `hangMs` fault's delay when the request had one (its change is made already). */
  async function sendAfterHang(res: ServerResponse, response: ApiResponse): Promise<void> {
    if (response.hangMs !== undefined) {
      logger.info({ hangMs: response.hangMs }, 'answer held back (hangMs fault)');
      if (!(await hang(response.hangMs))) return;
    }
    send(res, response);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://simulator');
    const pathname = url.pathname;
    if (pathname === '/_sim' || pathname.startsWith('/_sim/')) {
      await handleAdmin(req, res, pathname);
    } else {
      const path = matchApiPath(pathname, orgName);
      if (!path) {
        send(res, errorResponse(new CrmError(404, CrmErrorCode.resourceNotFound, `Resource not found for the segment '${pathname}'.`)));
      } else {
        await handleApi(req, res, url, path);
      }
    }
    logger.debug({ method: req.method, path: pathname, status: res.statusCode, ms: Date.now() - started }, 'request');
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const tooLarge = error instanceof BodyTooLarge;
      if (!tooLarge) logger.error({ err: error, method: req.method, url: req.url }, 'simulator request failed');
      if (!res.headersSent) {
        send(res, errorResponse(new CrmError(tooLarge ? 413 : 500, CrmErrorCode.unavailable, tooLarge ? 'The request body is too large.' : 'An unexpected error occurred in the simulator.')));
      } else {
        res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const baseUrl = `http://${urlHost}:${address.port}`;
  orgUrl = `${baseUrl}/${orgName}`;
  logger.info({ orgUrl, mailboxes: state.mailboxes.size }, 'CRM simulator listening');

  return {
    get orgUrl() {
      return orgUrl;
    },
    baseUrl,
    s2s,
    get state() {
      return state;
    },
    stats,
    engine,
    get faults() {
      return faults;
    },
    configure,
    configureS2S,
    scenario,
    get knobs() {
      return knobs();
    },
    setKnobs,
    counters,
    resetStats,
    reset,
    close: async () => {
      closing.abort();
      engine.stop();
      await new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      logger.info('CRM simulator closed');
    },
  };
}
