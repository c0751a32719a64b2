/**
 * Small builders for Adaptive Card 1.5 JSON. Cards are plain data: easy to test, no templating.
 */
export interface AdaptiveCardJson {
  type: 'AdaptiveCard';
  $schema: string;
  version: '1.5';
  body: CardElement[];
  actions?: CardAction[];
  msteams?: { width: 'Full' };
  [key: string]: unknown;
}

export type CardElement = Record<string, unknown> & { type: string };
export type CardAction = Record<string, unknown> & { type: 'Action.Execute' };

/** Teams' smallest limit on some paths; keep every card under it. */
export const MAX_CARD_BYTES = 28 * 1024;

export const verbs = {
  approve: 'run.approve',
  reject: 'run.reject',
  /** A halted rotation: run it again as attempt n + 1 (approvers). */
  resume: 'cert.resume',
  /** A halted rotation: ask for a rollback (operators, approvers); posts the rollback plan card. */
  rollback: 'cert.rollback',
  /** A halted rotation that did not change CRM's registration: give it up (approvers), freeing the way for another. */
  abandon: 'cert.abandon',
  /** The rotation-due card: as if the clicker typed `cert rotate`. */
  startRotation: 'cert.start-rotation',
  /** A halted runbook run: Retry step (approvers), i.e. resume as attempt n + 1 (same handler as a rotation's Resume). */
  retryStep: 'cert.resume',
  /** Stop a run: a plan not yet approved, a halted runbook run, or a running one before its next step (requester, approvers). */
  cancel: 'run.cancel',
  /** The `run setup` plan card: the requester confirms the checklist items no machine can check (both toggles on). */
  confirmChecklist: 'setup.confirm-checklist',
  /** A Test & Enable results card with ACT "configured with another org": plan `sync this org only` for that group (bot/primary-org-click.ts). */
  primaryOrg: 'mailboxes.primary-org',
} as const;
export type Verb = (typeof verbs)[keyof typeof verbs];

export function card(body: CardElement[], actions: CardAction[] = []): AdaptiveCardJson {
  const c: AdaptiveCardJson = {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: '1.5',
    body,
    msteams: { width: 'Full' },
  };
  if (actions.length > 0) c.actions = actions;
  return c;
}

export function title(text: string, color: 'Default' | 'Good' | 'Warning' | 'Attention' | 'Accent' = 'Default'): CardElement {
  return { type: 'TextBlock', text: clip(text, 200), size: 'Medium', weight: 'Bolder', wrap: true, color };
}

export function text(value: string, options: { subtle?: boolean; color?: string; size?: string; weight?: string } = {}): CardElement {
  const el: CardElement = { type: 'TextBlock', text: clip(value, 2000), wrap: true };
  if (options.subtle) el['isSubtle'] = true;
  if (options.color) el['color'] = options.color;
  if (options.size) el['size'] = options.size;
  if (options.weight) el['weight'] = options.weight;
  return el;
}

export function facts(entries: readonly (readonly [string, string | number])[]): CardElement {
  return { type: 'FactSet', facts: entries.map(([t, v]) => ({ title: clip(t, 80), value: clip(String(v), 400) })) };
}

export function bullets(items: readonly string[], max = 10): CardElement {
  const shown = items.slice(0, max).map((i) => `- ${clip(i, 320)}`);
  if (items.length > max) shown.push(`- … and ${items.length - max} more`);
  return text(shown.join('\n'));
}

export function container(items: CardElement[], style?: 'emphasis' | 'good' | 'attention' | 'warning'): CardElement {
  const el: CardElement = { type: 'Container', items };
  if (style) el['style'] = style;
  return el;
}

/** A button whose data is only the run id: everything else is reloaded from Redis on click. */
export function executeAction(buttonTitle: string, verb: Verb, runId: string, style: 'positive' | 'destructive' | 'default' = 'default'): CardAction {
  return { type: 'Action.Execute', title: buttonTitle, verb, data: { runId }, style };
}

/** A toggle whose value comes back in the data of the card's Action.Execute ('true' / 'false'). */
export function toggle(id: string, toggleTitle: string, on = false): CardElement {
  return { type: 'Input.Toggle', id, title: clip(toggleTitle, 300), valueOn: 'true', valueOff: 'false', value: on ? 'true' : 'false', wrap: true };
}

/** Past this many lines, the rest of a code block goes into its last run (keeps the card small). */
export const MAX_CODE_RUNS = 120;

/**
 * Monospace text to copy exactly (a script): a RichTextBlock with one monospace TextRun per line.
 * A TextRun has no markdown, so `_`, `*`, `#`, `$` and line breaks show as written; nothing is
 * clipped (what is shown is what must be run: its source bounds its length, the AD FS script's
 * schema at 4000 characters). Past MAX_CODE_RUNS lines the rest share the last run, still whole.
 */
export function codeBlock(value: string): CardElement {
  const lines = value.replace(/(\r?\n)+$/, '').split(/\r?\n/);
  const runs = lines.length > MAX_CODE_RUNS ? [...lines.slice(0, MAX_CODE_RUNS - 1), lines.slice(MAX_CODE_RUNS - 1).join('\n')] : lines;
  return {
    type: 'RichTextBlock',
    inlines: runs.map((line, i) => ({ type: 'TextRun', text: i < runs.length - 1 ? `${line}\n` : line, fontType: 'Monospace', size: 'Small' })),
  };
}

/** Text from people or CRM shown on a card: no markdown surprises, bounded length. */
export function clip(value: string, max: number): string {
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

export function cardBytes(c: AdaptiveCardJson): number {
  return Buffer.byteLength(JSON.stringify(c), 'utf8');
}
