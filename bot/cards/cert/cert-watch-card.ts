import type { CertSummary } from '../../../jobs/cert-types.ts';
import { bullets, card, clip, facts, text, title, verbs, type AdaptiveCardJson, type CardAction, type CardElement } from '../common/card-kit.ts';

/**
 * The certificate expiry watch's cards: the rotation-due card (a threshold was crossed), its expired
 * and not-registered variants, and the confirmation `cert watch here` answers with. The button
 * carries only the watch run's id; the click starts a rotation as if the clicker typed `cert rotate`.
 */
export const startRotationVerb = verbs.startRotation;

/** What happens when the certificate expires (the same words on every card). */
export const EXPIRY_CONSEQUENCE = 'server-side sync stops authenticating to Exchange Online for every mailbox';

export interface CertWatchCardInput {
  deployment: string;
  /** The watch run whose result this card reports (the button's data). */
  runId: string;
}

export interface RotationDueInput extends CertWatchCardInput {
  cert: CertSummary;
  daysLeft: number;
  /** The threshold announced (the lowest one crossed). */
  threshold: number;
}

/** A threshold was crossed: the certificate expires in `daysLeft` days. */
export function rotationDueCard(input: RotationDueInput): AdaptiveCardJson {
  const { cert, daysLeft } = input;
  const when = daysLeft === 0 ? 'today' : daysLeft === 1 ? 'in 1 day' : `in ${daysLeft} days`;
  return card(
    [
      title(`S2S certificate expires ${when}: rotation due`, daysLeft <= 7 ? 'Attention' : 'Warning'),
      text(`Deployment **${clip(input.deployment, 40)}**. The certificate Dynamics 365 signs its Exchange Online tokens with reaches the ${input.threshold}-day warning.`),
      certFacts(cert, daysLeft),
      text(`When it expires, ${EXPIRY_CONSEQUENCE}.`, { weight: 'Bolder' }),
      ...whatToDo(),
    ],
    [startRotationAction(input.runId)],
  );
}

/** The registered certificate has expired: mail is already failing. */
export function certExpiredCard(input: CertWatchCardInput & { cert: CertSummary; daysLeft: number }): AdaptiveCardJson {
  const ago = input.daysLeft === -1 ? '1 day ago' : `${-input.daysLeft} days ago`;
  return card(
    [
      title(`S2S certificate EXPIRED ${ago}: mail sync is failing`, 'Attention'),
      text(`Deployment **${clip(input.deployment, 40)}**. The certificate Dynamics 365 signs its Exchange Online tokens with has expired, so ${EXPIRY_CONSEQUENCE}: no mailbox sends or receives through server-side sync until a new certificate is in place.`),
      certFacts(input.cert, input.daysLeft),
      ...whatToDo(),
    ],
    [startRotationAction(input.runId)],
  );
}

/** CRM has no S2S token issuer certificate registered: server-side sync cannot authenticate at all. */
export function certNotRegisteredCard(input: CertWatchCardInput): AdaptiveCardJson {
  return card(
    [
      title('No S2S certificate is registered', 'Attention'),
      text(`Deployment **${clip(input.deployment, 40)}**. CRM has no certificate registered as S2S token issuer, so ${EXPIRY_CONSEQUENCE}.`),
      ...whatToDo(),
    ],
    [startRotationAction(input.runId)],
  );
}

export interface CannotCheckInput extends CertWatchCardInput {
  /** Failed checks in a row. */
  failures: number;
  /** The last failure. */
  error: { code: string; message: string; hint?: string | undefined };
}

/** Several checks in a row failed: the watch cannot tell when the certificate expires. No button. */
export function certWatchCannotCheckCard(input: CannotCheckInput): AdaptiveCardJson {
  const items: CardElement[] = [
    title('The certificate watch cannot check the S2S certificate', 'Warning'),
    text(`Deployment **${clip(input.deployment, 40)}**. The last ${input.failures} checks in a row failed, so the watch cannot tell when the certificate expires and would not warn before ${EXPIRY_CONSEQUENCE}.`),
    text(`Last error (${clip(input.error.code, 60)}): ${clip(input.error.message, 400)}`, { color: 'Attention' }),
  ];
  if (input.error.hint) items.push(text(`What to do about it: ${clip(input.error.hint, 400)}`));
  items.push(
    text('What to do', { weight: 'Bolder' }),
    bullets([
      'Type `@setup cert status`: it shows what the agent sees (CRM\'s registered certificate, each server, Entra ID) and every problem with its fix.',
      'Check the on-premises agent is running and connected (`@setup status` shows when it last reported), and its certificate settings: ASYNC_SERVERS, ASYNC_SERVICE_ACCOUNT, POWERSHELL, GRAPH_TENANT_ID, GRAPH_CLIENT_ID and its Graph credential.',
      'The watch keeps checking on its schedule; this card comes at most once a day until a check succeeds.',
    ]),
    text(`Watch check run ${input.runId}.`, { subtle: true }),
  );
  return card(items);
}

export interface CertWatchSetInput {
  deployment: string;
  thresholds: readonly number[];
  cron: string;
}

/** `cert watch here`: this conversation now gets the rotation-due cards. */
export function certWatchSetCard(input: CertWatchSetInput): AdaptiveCardJson {
  return card([
    title('Certificate expiry watch set', 'Good'),
    text(`This conversation gets the rotation-due cards of the S2S certificate of deployment **${clip(input.deployment, 40)}**.`),
    facts([
      ['Checks', describeSchedule(input.cron)],
      ['Warnings at', `${input.thresholds.join(', ')} days before expiry (once each)`],
      ['Also', 'when the certificate has expired or none is registered (once a day)'],
    ]),
    text('A check runs now.', { subtle: true }),
  ]);
}

/** "every day at 07:00 UTC" for the usual patterns; the pattern itself otherwise. */
export function describeSchedule(cron: string): string {
  const fields = cron.trim().split(/\s+/);
  if (fields.length === 5) {
    const [minute, hour, dom, month, dow] = fields as [string, string, string, string, string];
    if (/^\d{1,2}$/.test(minute) && /^\d{1,2}$/.test(hour) && dom === '*' && month === '*') {
      const at = `${hour.padStart(2, '0')}:${minute.padStart(2, '0')} UTC`;
      if (dow === '*') return `every day at ${at}`;
      if (dow === '1-5') return `every weekday (Monday to Friday) at ${at}`;
      const day = /^[0-7]$/.test(dow) ? weekdays[Number(dow) % 7] : undefined;
      if (day) return `every ${day} at ${at}`;
    }
  }
  return `on the schedule \`${clip(cron, 120)}\` (cron, UTC)`;
}

const weekdays = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;

function certFacts(cert: CertSummary, daysLeft: number): CardElement {
  return facts([
    ['Subject', cert.subject],
    ['Thumbprint', cert.thumbprint],
    ['Expires', `${cert.notAfter.slice(0, 10)} (${cert.notAfter.slice(11, 16)} UTC)`],
    ['Days left', daysLeft < 0 ? `expired ${-daysLeft} day(s) ago` : String(daysLeft)],
  ]);
}

function whatToDo(): CardElement[] {
  return [
    text('What to do', { weight: 'Bolder' }),
    bullets([
      'Get a new certificate from a trusted CA (RSA, 2048 bits or more) as a PFX with its private key.',
      'Put the PFX in the agent\'s CERT_DIR (as CERT_NEW_PFX, or give its name to `@setup cert rotate <file.pfx>`).',
      'Click **Start rotation**: the plan card shows every step, and an approver other than you approves it.',
    ]),
  ];
}

function startRotationAction(runId: string): CardAction {
  return { type: 'Action.Execute', title: 'Start rotation', verb: startRotationVerb, data: { runId }, style: 'positive' };
}
