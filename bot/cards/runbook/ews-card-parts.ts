import { CONFIRM_APP_ID, type EwsAccessReport } from '../../../jobs/ews-access.ts';
import { clip, container, text, type CardElement } from '../common/card-kit.ts';

/**
 * The "EWS in Exchange Online" section of the status, preflight and plan cards: whether Exchange
 * Online lets CRM's server-side sync use EWS, the mailboxes with EWS disabled, the days left until
 * 1 April 2027 and what to do. Green only when Exchange allows CRM and no mailbox is blocked.
 */
const verdictLines: Readonly<Record<EwsAccessReport['verdict'], { line: string; color: string; style: 'good' | 'attention' | 'warning' }>> = {
  allowed: { line: 'Exchange Online allows EWS for CRM', color: 'Good', style: 'good' },
  blocked: { line: 'EWS is blocked for CRM in Exchange Online: server-side sync fails until it is allowed', color: 'Attention', style: 'attention' },
  'shut-down': { line: 'EWS in Exchange Online is switched off for good: server-side sync to Exchange Online cannot work', color: 'Attention', style: 'attention' },
  unknown: { line: 'EWS access in Exchange Online could not be checked', color: 'Warning', style: 'warning' },
};

/** Whether the report lets a card be green: allowed, and no mailbox of the selection blocked. */
export function ewsAllGood(report: EwsAccessReport): boolean {
  return report.verdict === 'allowed' && report.mailboxesDisabled === 0 && report.olderPolicyApplies !== true;
}

export function ewsSection(report: EwsAccessReport): CardElement[] {
  // Allowed for the organization, but some mailboxes blocked one by one, or the older user-agent policy on top: a warning, not green.
  const partly = report.verdict === 'allowed' && !ewsAllGood(report);
  const verdict = partly
    ? {
        line: report.mailboxesDisabled > 0
          ? `${verdictLines.allowed.line}, but ${report.mailboxesDisabled} mailbox${report.mailboxesDisabled === 1 ? ' has' : 'es have'} EWS disabled`
          : `${verdictLines.allowed.line}, but the older EwsApplicationAccessPolicy may still refuse it`,
        color: 'Warning',
        style: 'warning' as const,
      }
    : verdictLines[report.verdict];
  const items: CardElement[] = [
    text('EWS in Exchange Online', { weight: 'Bolder' }),
    text(verdict.line, { color: verdict.color, weight: 'Bolder' }),
    text(report.verdict === 'shut-down' ? 'Switched off since 1 April 2027.' : `${report.daysLeft} day${report.daysLeft === 1 ? '' : 's'} left until EWS in Exchange Online is switched off for good (1 April 2027).`, { color: report.verdict === 'shut-down' || report.daysLeft <= 30 ? 'Attention' : 'Warning' }),
    text(clip(report.detail, 600)),
  ];
  if (report.mailboxesDisabled > 0) items.push(text(`Mailboxes with EwsEnabled False: ${report.disabledSample.join(', ')}${report.mailboxesDisabled > report.disabledSample.length ? ` and ${report.mailboxesDisabled - report.disabledSample.length} more` : ''}`));
  if (report.fix) items.push(text(`What to do: ${clip(report.fix, 1200)}`));
  items.push(text(`App ID checked: ${report.appId || 'not configured'}. ${CONFIRM_APP_ID}`, { subtle: true }));
  return [container(items, verdict.style)];
}
