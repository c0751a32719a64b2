/**
 * `npm run bench`: the whole product (real bot, real agent, Redis, the CRM simulator over HTTP)
 * on 5,000 mailboxes with 20 ms of simulated latency per CRM request, beside a serial
 * one-request-per-mailbox baseline measured in the same run against the same simulator; then a
 * certificate rotation on the same size of deployment (PowerShell stand-in, Graph simulator); then
 * the whole set-up runbook (`run setup`) on a fresh deployment of that size, and its second run.
 *
 * Options (environment): BENCH_MAILBOXES (5000), BENCH_LATENCY_MS (20), BENCH_TEST_DELAY_MS (3000,
 * how long the simulated CRM takes to test one mailbox), BENCH_OUT (a JSON file for the figures).
 */
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { EmailRouterAccessApproval as A } from '../jobs/crm-values.ts';
import type { CrmSimulator } from '../sim/crm-simulator.ts';
import { cardOf, cardText } from '../test/support/fake-connector.ts';
import { APPROVER, OPERATOR, startFullStack, type FullStack } from '../test/support/full-stack.ts';

const mailboxes = Number(process.env['BENCH_MAILBOXES'] ?? 5000);
const latencyMs = Number(process.env['BENCH_LATENCY_MS'] ?? 20);
const testDelayMs = Number(process.env['BENCH_TEST_DELAY_MS'] ?? 3000);

interface Figures {
  seconds: number;
  crmRequests: number;
  batchParts: number;
  teamsPosts: number;
  teamsUpdates: number;
  mailboxes: number;
}

const headers = {
  'OData-Version': '4.0',
  'OData-MaxVersion': '4.0',
  Accept: 'application/json',
  'Content-Type': 'application/json',
};

function api(sim: CrmSimulator, path: string): string {
  return `${sim.orgUrl}/api/data/v9.0/${path}`;
}

async function getJson<T>(url: string, extra: Record<string, string> = {}): Promise<T> {
  const res = await fetch(url, { headers: { ...headers, ...extra } });
  if (!res.ok) throw new Error(`GET ${url} → ${res.status}`);
  return (await res.json()) as T;
}

/** Reads ids the way a simple script would: one paged query. */
async function readIds(sim: CrmSimulator, filter: string): Promise<string[]> {
  const ids: string[] = [];
  let url: string | undefined = api(sim, `mailboxes?$select=mailboxid&$filter=${encodeURIComponent(filter)}`);
  while (url) {
    const page: { value: { mailboxid: string }[]; '@odata.nextLink'?: string } = await getJson(url, { Prefer: 'odata.maxpagesize=5000' });
    ids.push(...page.value.map((m) => m.mailboxid));
    url = page['@odata.nextLink'];
  }
  return ids;
}

async function patch(sim: CrmSimulator, id: string, body: object): Promise<void> {
  const res = await fetch(api(sim, `mailboxes(${id})`), { method: 'PATCH', headers: { ...headers, 'If-Match': '*' }, body: JSON.stringify(body) });
  await res.arrayBuffer();
}

/** Baseline: approve with one PATCH per mailbox, one after the other. */
async function baselineApprove(sim: CrmSimulator): Promise<Figures> {
  sim.reset();
  sim.configure({ latencyMs });
  const start = performance.now();
  const ids = await readIds(sim, 'statecode eq 0 and (emailrouteraccessapproval eq 0 or emailrouteraccessapproval eq 2)');
  for (const id of ids) await patch(sim, id, { emailrouteraccessapproval: A.Approved });
  return { seconds: (performance.now() - start) / 1000, crmRequests: sim.stats.requests, batchParts: 0, teamsPosts: 0, teamsUpdates: 0, mailboxes: ids.length };
}

/** Baseline: Test & Enable by scheduling one mailbox at a time, then polling and reading traces one mailbox at a time. */
async function baselineTest(sim: CrmSimulator): Promise<Figures> {
  sim.reset();
  sim.configure({ latencyMs, testDelayMs });
  const start = performance.now();
  const ids = await readIds(sim, 'statecode eq 0');
  const scheduledAt = new Date(Date.now() - 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  for (const id of ids) await patch(sim, id, { testemailconfigurationscheduled: true });
  let waiting = ids;
  const failed: string[] = [];
  while (waiting.length > 0) {
    const still: string[] = [];
    for (const id of waiting) {
      const m = await getJson<{ testemailconfigurationscheduled: boolean; incomingemailstatus: number; outgoingemailstatus: number; testmailboxaccesscompletedon: string | null }>(
        api(sim, `mailboxes(${id})?$select=testemailconfigurationscheduled,incomingemailstatus,outgoingemailstatus,testmailboxaccesscompletedon`),
      );
      if (m.testemailconfigurationscheduled || !m.testmailboxaccesscompletedon || m.testmailboxaccesscompletedon < scheduledAt) still.push(id);
      else if (m.incomingemailstatus !== 1 || m.outgoingemailstatus !== 1) failed.push(id);
    }
    waiting = still;
    if (waiting.length > 0) await sleep(1000);
  }
  for (const id of failed) {
    await getJson(api(sim, `tracelogs?$select=text&$filter=${encodeURIComponent(`_regardingobjectid_value eq ${id}`)}`));
  }
  return { seconds: (performance.now() - start) / 1000, crmRequests: sim.stats.requests, batchParts: 0, teamsPosts: 0, teamsUpdates: 0, mailboxes: ids.length };
}

function runIdOf(text: string): string {
  const m = /Run \| ([a-z0-9]{8,32})/.exec(text);
  if (!m?.[1]) throw new Error(`no run id in the card: ${text}`);
  return m[1];
}

/** The product: one command, one click, until the results card is in the thread. */
async function product(stack: FullStack, command: string, approver: typeof APPROVER): Promise<Figures & { planSeconds: number; results: string }> {
  const { sim, connector } = stack;
  sim.resetStats();
  const postsBefore = connector.posts().length;
  const updatesBefore = connector.updates().length;
  const planStart = performance.now();
  const planning = await stack.say(OPERATOR, command);
  const plan = await stack.waitForCard(planning.activityId, (t) => t.includes('Mailboxes matching'), 'the plan card', 120_000);
  const planSeconds = (performance.now() - planStart) / 1000;
  const planRequests = sim.stats.requests;
  const start = performance.now();
  const click = await stack.click(approver, 'run.approve', runIdOf(plan), planning.activityId);
  if (click.status !== 200) throw new Error(`the click answered ${click.status}`);
  const isResults = (i: number) => {
    const p = connector.posts()[i];
    return p !== undefined && cardText(cardOf(p)).includes('Results');
  };
  await connector.waitFor(() => connector.posts().some((_, i) => i >= postsBefore && isResults(i)), 'the results card', 30 * 60_000);
  const seconds = (performance.now() - start) / 1000;
  const resultsPost = connector.posts().find((_, i) => i >= postsBefore && isResults(i));
  // Let the last run-card update land before counting.
  await sleep(2500);
  return {
    seconds,
    planSeconds,
    crmRequests: sim.stats.requests - planRequests,
    batchParts: sim.stats.batchParts,
    teamsPosts: connector.posts().length - postsBefore,
    teamsUpdates: connector.updates().length - updatesBefore,
    mailboxes: 0,
    results: resultsPost ? cardText(cardOf(resultsPost)) : '',
  };
}

/** Certificate rotation: `cert rotate`, a second person's click, until the results card (the nine steps, 10 verification mailboxes). */
async function rotation(): Promise<{ seconds: number; planSeconds: number; powershellScripts: number; graphRequests: number; crmRequests: number; teamsPosts: number; teamsUpdates: number; outcome: string }> {
  const stack = await startFullStack({
    certs: true,
    sim: { mailboxCount: mailboxes, latencyMs, testDelayMs },
    agentEnv: { TEST_POLL_INTERVAL_MS: '1000', PROGRESS_INTERVAL_MS: '2000' },
    botEnv: { CARD_UPDATE_INTERVAL_MS: '2000' },
  });
  try {
    const { sim, connector, graph } = stack;
    const planStart = performance.now();
    const planning = await stack.say(OPERATOR, 'cert rotate');
    const plan = await stack.waitForCard(planning.activityId, (t) => t.includes('Needs an approver other than'), 'the rotation plan card', 120_000);
    const planSeconds = (performance.now() - planStart) / 1000;
    sim.resetStats();
    graph?.resetStats();
    const postsBefore = connector.posts().length;
    const updatesBefore = connector.updates().length;
    const start = performance.now();
    const click = await stack.click(APPROVER, 'run.approve', runIdOf(plan), planning.activityId);
    if (click.status !== 200) throw new Error(`the click answered ${click.status}`);
    const isResults = (text: string) => text.includes('Results: certificate rotation');
    await connector.waitFor(() => connector.posts().slice(postsBefore).some((p) => isResults(cardText(cardOf(p)))), 'the rotation results card', 10 * 60_000);
    const seconds = (performance.now() - start) / 1000;
    await sleep(2500);
    const final = cardText(cardOf(connector.updates(planning.activityId).at(-1)));
    return {
      seconds,
      planSeconds,
      powershellScripts: sim.stats.byMethod['powershell'] ?? 0,
      graphRequests: graph?.stats.requests ?? 0,
      crmRequests: sim.stats.requests,
      teamsPosts: connector.posts().length - postsBefore,
      teamsUpdates: connector.updates().length - updatesBefore,
      outcome: final.includes('Rotated:') ? 'rotated' : 'not rotated',
    };
  } finally {
    await stack.close();
  }
}

/**
 * The set-up runbook on a fresh deployment: `run setup`, the requester's checklist, a second
 * person's approval, until the results card (14 steps, every mailbox configured, approved and
 * tested); then `run setup` again until its "nothing to change" card.
 */
async function runbook(): Promise<{ seconds: number; planSeconds: number; againSeconds: number; steps: number; changed: number; tested: number; succeeded: number; powershellScripts: number; graphRequests: number; crmRequests: number; batchParts: number; teamsPosts: number; teamsUpdates: number }> {
  const stack = await startFullStack({
    certs: true,
    sim: { mailboxCount: mailboxes, latencyMs, testDelayMs, scenario: 'fresh' },
    agentEnv: { TEST_POLL_INTERVAL_MS: '1000', PROGRESS_INTERVAL_MS: '2000' },
    botEnv: { CARD_UPDATE_INTERVAL_MS: '2000' },
  });
  try {
    const { sim, connector, graph } = stack;
    const planStart = performance.now();
    const planning = await stack.say(OPERATOR, 'run setup');
    const plan = await stack.waitForCard(planning.activityId, (t) => t.includes('Confirm checklist'), 'the runbook plan card', 300_000);
    const planSeconds = (performance.now() - planStart) / 1000;
    const runId = runIdOf(plan);
    const confirmed = await stack.click(OPERATOR, 'setup.confirm-checklist', runId, planning.activityId, {
      'checklist-hybrid-connector': 'true',
      'checklist-exchange-enabled': 'true',
    });
    if (confirmed.status !== 200) throw new Error(`the checklist click answered ${confirmed.status}`);
    sim.resetStats();
    graph?.resetStats();
    const postsBefore = connector.posts().length;
    const updatesBefore = connector.updates().length;
    const start = performance.now();
    const click = await stack.click(APPROVER, 'run.approve', runId, planning.activityId);
    if (click.status !== 200) throw new Error(`the click answered ${click.status}`);
    const isResults = (text: string) => text.includes('Test & Enable report');
    await connector.waitFor(() => connector.posts().slice(postsBefore).some((p) => isResults(cardText(cardOf(p)))), 'the runbook results card', 30 * 60_000);
    const seconds = (performance.now() - start) / 1000;
    await sleep(2500);
    const results = cardText(cardOf(connector.posts().slice(postsBefore).find((p) => isResults(cardText(cardOf(p))))));
    const figures = {
      seconds,
      planSeconds,
      steps: (results.match(/✓/g) ?? []).length,
      changed: fact(results, 'Steps changed'),
      tested: fact(results, 'Mailboxes tested'),
      succeeded: fact(results, 'Succeeded'),
      powershellScripts: sim.stats.byMethod['powershell'] ?? 0,
      graphRequests: graph?.stats.requests ?? 0,
      crmRequests: sim.stats.requests,
      batchParts: sim.stats.batchParts,
      teamsPosts: connector.posts().length - postsBefore,
      teamsUpdates: connector.updates().length - updatesBefore,
    };
    const againStart = performance.now();
    const again = await stack.say(OPERATOR, 'run setup');
    await stack.waitForCard(again.activityId, (t) => t.includes('Nothing to change'), 'the nothing-to-change card', 300_000);
    return { ...figures, againSeconds: (performance.now() - againStart) / 1000 };
  } finally {
    await stack.close();
  }
}

function fact(text: string, label: string): number {
  const m = new RegExp(`${label} \\| (\\d+)`).exec(text);
  return m?.[1] ? Number(m[1]) : Number.NaN;
}

async function main(): Promise<void> {
  console.log(`bench: ${mailboxes} mailboxes, ${latencyMs} ms per CRM request, Test & Enable takes ${testDelayMs} ms per mailbox in the simulator`);
  const stack = await startFullStack({
    sim: { mailboxCount: mailboxes, latencyMs, testDelayMs },
    agentEnv: { TEST_POLL_INTERVAL_MS: '1000', PROGRESS_INTERVAL_MS: '2000' },
    botEnv: { CARD_UPDATE_INTERVAL_MS: '2000' },
  });
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 250);
  try {
    const approve = await product(stack, 'approve mailboxes', APPROVER);
    approve.mailboxes = fact(approve.results, 'Matched');
    console.log(`product approve: ${approve.mailboxes} mailboxes in ${approve.seconds.toFixed(1)} s (plan ${approve.planSeconds.toFixed(1)} s), ${approve.crmRequests} CRM requests (${approve.batchParts} batch parts), ${approve.teamsPosts} Teams posts, ${approve.teamsUpdates} card updates`);

    const test = await product(stack, 'test mailboxes all', OPERATOR);
    test.mailboxes = fact(test.results, 'Selected');
    console.log(`product test: ${test.mailboxes} mailboxes in ${test.seconds.toFixed(1)} s (plan ${test.planSeconds.toFixed(1)} s), ${test.crmRequests} CRM requests (${test.batchParts} batch parts), ${test.teamsPosts} Teams posts, ${test.teamsUpdates} card updates; succeeded ${fact(test.results, 'Succeeded')}, failed ${fact(test.results, 'Failed')}`);

    const baseApprove = await baselineApprove(stack.sim);
    console.log(`baseline approve: ${baseApprove.mailboxes} mailboxes in ${baseApprove.seconds.toFixed(1)} s, ${baseApprove.crmRequests} CRM requests`);
    const baseTest = await baselineTest(stack.sim);
    console.log(`baseline test: ${baseTest.mailboxes} mailboxes in ${baseTest.seconds.toFixed(1)} s, ${baseTest.crmRequests} CRM requests`);

    const rotate = await rotation();
    console.log(`product cert rotate: ${rotate.outcome} in ${rotate.seconds.toFixed(1)} s (plan ${rotate.planSeconds.toFixed(1)} s), ${rotate.powershellScripts} PowerShell scripts, ${rotate.graphRequests} Graph/login requests, ${rotate.crmRequests} CRM requests, ${rotate.teamsPosts} Teams posts, ${rotate.teamsUpdates} card updates`);

    const setup = await runbook();
    console.log(`product run setup (fresh, ${mailboxes} mailboxes): ${setup.steps} steps ✓, ${setup.changed} changed, ${setup.succeeded} of ${setup.tested} passed Test & Enable, in ${setup.seconds.toFixed(1)} s (plan ${setup.planSeconds.toFixed(1)} s); ${setup.crmRequests} CRM requests (${setup.batchParts} batch parts), ${setup.powershellScripts} PowerShell scripts, ${setup.graphRequests} Graph/login requests, ${setup.teamsPosts} Teams posts, ${setup.teamsUpdates} card updates; second run: nothing to change in ${setup.againSeconds.toFixed(1)} s`);

    const figures = {
      date: new Date().toISOString(),
      node: process.version,
      mailboxes,
      latencyMs,
      testDelayMs,
      approve: { product: approve, baseline: baseApprove },
      test: { product: test, baseline: baseTest },
      certRotate: rotate,
      runSetup: setup,
      peakRssMiB: Math.round(peakRss / 1024 / 1024),
    };
    console.log('\n| work | product | serial baseline | speed-up | CRM requests (product / baseline) | Teams posts + updates |');
    console.log('|---|---|---|---|---|---|');
    for (const [name, p, b] of [['approve', approve, baseApprove], ['Test & Enable', test, baseTest]] as const) {
      console.log(`| ${name} (${p.mailboxes}) | ${p.seconds.toFixed(1)} s | ${b.seconds.toFixed(1)} s | ${(b.seconds / p.seconds).toFixed(1)}× | ${p.crmRequests} / ${b.crmRequests} | ${p.teamsPosts} + ${p.teamsUpdates} |`);
    }
    console.log(`\npeak RSS of the process (bot + agent + simulator together): ${figures.peakRssMiB} MiB`);
    const out = process.env['BENCH_OUT'];
    if (out) await writeFile(out, `${JSON.stringify(figures, null, 2)}\n`);
  } finally {
    clearInterval(sampler);
    await stack.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
