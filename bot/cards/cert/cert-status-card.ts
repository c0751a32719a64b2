import type { CertStatusResult } from '../../../jobs/cert-types.ts';
import type { Run } from '../../runs/run-model.ts';
import { bullets, card, container, facts, text, title, type AdaptiveCardJson, type CardElement } from '../common/card-kit.ts';
import { certFacts, day, keySpecText } from './cert-card-parts.ts';

/**
 * `cert status`: the certificate CRM has registered as S2S token issuer, the certificate on each
 * async server, the key credentials of the CRM service principal in Entra ID, the S2S settings,
 * whether they agree, and each disagreement with what to do.
 */
function head(run: Run): CardElement[] {
  return [title(`S2S certificate of deployment "${run.deployment}"`)];
}

export function certStatusCheckingCard(run: Run): AdaptiveCardJson {
  return card([...head(run), text('Checking… the on-premises agent is reading the certificate from CRM, the async servers and Entra ID.', { subtle: true })]);
}

function daysLeftText(daysLeft: number | null): string {
  if (daysLeft === null) return '';
  if (daysLeft < 0) return `expired ${-daysLeft} day${daysLeft === -1 ? '' : 's'} ago`;
  return `${daysLeft} day${daysLeft === 1 ? '' : 's'} left`;
}

export function certStatusCard(run: Run, result: CertStatusResult): AdaptiveCardJson {
  const body: CardElement[] = [...head(run)];
  const reg = result.registered;
  if (result.agree) {
    body.push(text(`They agree.${reg ? ` The certificate has ${daysLeftText(result.daysLeft)}.` : ''}`, { color: result.daysLeft !== null && result.daysLeft <= 30 ? 'Warning' : 'Good', weight: 'Bolder' }));
  } else {
    body.push(text('They do not agree: see what to do below.', { color: 'Attention', weight: 'Bolder' }));
  }

  body.push(text('Registered in CRM (S2S token issuer)', { weight: 'Bolder' }));
  if (reg) {
    body.push(certFacts(reg));
    if (result.daysLeft !== null) body.push(text(`Expires ${day(reg.notAfter)}: ${daysLeftText(result.daysLeft)}.`, { color: result.daysLeft < 0 ? 'Attention' : result.daysLeft <= 30 ? 'Warning' : 'Default' }));
  } else {
    body.push(text('No certificate is registered.', { color: 'Attention' }));
  }

  body.push(text('Async servers (LocalMachine\\My)', { weight: 'Bolder' }));
  if (result.servers.length === 0) body.push(text('No async server is configured (ASYNC_SERVERS).', { color: 'Warning' }));
  for (const s of result.servers.slice(0, 10)) {
    const services = s.services.map((x) => `${x.name} ${x.status}`).join(', ') || 'none found';
    const rows: [string, string][] = s.error
      ? [['Error', s.error]]
      : [
          ['Certificate', s.found ? 'found' : 'NOT FOUND'],
          ['KeySpec', keySpecText(s.keySpec)],
          ['Private key', s.hasPrivateKey ? (s.serviceAccountCanRead ? 'readable by the service account' : 'NOT readable by the service account') : 'missing'],
          ['Services', services],
        ];
    if (s.duplicateSubject) rows.push(['Note', 'another certificate has the same subject']);
    body.push(container([text(s.server, { weight: 'Bolder' }), facts(rows)], 'emphasis'));
  }
  if (result.servers.length > 10) body.push(text(`… and ${result.servers.length - 10} more servers.`, { subtle: true }));

  body.push(text('Entra ID: key credentials of the CRM service principal', { weight: 'Bolder' }));
  if (!result.entra) {
    body.push(text('Could not be read (see the findings).', { color: 'Warning' }));
  } else {
    const creds = result.entra.keyCredentials;
    if (creds.length === 0) body.push(text('No key credential.', { color: 'Attention' }));
    const lines = creds.slice(0, 10).map((k) => {
      const dates = `${k.startDateTime ? day(k.startDateTime) : '?'} to ${k.endDateTime ? day(k.endDateTime) : '?'}`;
      const registered = reg && k.thumbprint === reg.thumbprint ? ' (the registered one)' : '';
      return `${k.thumbprint ?? k.keyId}: ${dates}${registered}`;
    });
    if (creds.length > 10) lines.push(`… and ${creds.length - 10} more`);
    if (lines.length > 0) body.push(text(lines.map((l) => `- ${l}`).join('\n')));
    if (!result.entra.spnPresent) body.push(text('The service principal names lack the CRM app id.', { color: 'Attention' }));
  }

  body.push(text('S2S server settings', { weight: 'Bolder' }), facts([
    ['Principal', result.serverSettings.principalId ?? 'not set'],
    ['Metadata URL', result.serverSettings.metadataUrl ?? 'not set'],
  ]));

  if (result.findings.length > 0) {
    body.push(text('What to do', { weight: 'Bolder' }));
    for (const f of result.findings.slice(0, 10)) {
      body.push(container([text(f.message, { color: 'Attention', weight: 'Bolder' }), text(`Fix: ${f.fix}`)], 'attention'));
    }
    if (result.findings.length > 10) body.push(bullets([`${result.findings.length - 10} more findings: see the agent's log.`]));
  }
  return card(body);
}

export function certStatusFailedCard(run: Run): AdaptiveCardJson {
  const e = run.error;
  const body = [...head(run), text(`Could not read the certificate state${e ? `: ${e.message}` : '.'}`, { color: 'Attention', weight: 'Bolder' })];
  if (e?.hint) body.push(text(`What to do: ${e.hint}`));
  body.push(text('Nothing was changed.', { subtle: true }));
  return card(body);
}
