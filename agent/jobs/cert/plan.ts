import { isSetupError } from '../../../core/setup-error.ts';
import { rotationStepIds, type CertPlanResult, type CertStepId, type StepState } from '../../../jobs/cert-types.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { checkEntra, checkSettings, describeEntra, importAction, joinDetail, listServers, machineCert, readRegistered, type MachineCert } from '../../steps/cert/checks.ts';
import { requireCerts, type ReadyCerts } from '../../runtime/cert-requirements.ts';
import { blockingProblems, describeCert, readNewCert } from './rotate.ts';
import { selectVerificationSet } from './verification.ts';
import type { JobContext } from '../../runtime/job-context.ts';

const clip = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const reason = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * `cert-plan` (`@setup cert rotate [file]`): reads the PFX from CERT_DIR and previews every step of
 * the rotation with the same checks the rotation runs: "would import on CRMAPP01, CRMAPP02",
 * "already done". Read-only. Blocked when the certificate has an error-severity problem or a step's
 * check already fails (another certificate with the same subject, a server or Entra that cannot be
 * read). A same-subject renewal (the usual CA renewal) is blocked at the import step: the
 * servers' stores are asked for the new certificate's subject before it is imported.
 */
export async function planRotation(payload: PayloadOf<'cert-plan'>, ctx: JobContext): Promise<CertPlanResult> {
  const certs = requireCerts(ctx, ['servers', 'pfx', 'graph']);
  const next = await readNewCert(ctx, certs, payload.file);
  const registered = await readRegistered(ctx, certs);
  const current = registered ? certs.kit.summarizeDer(registered.derBase64, { now: ctx.now(), minDaysLeft: certs.settings.CERT_MIN_DAYS_LEFT }) : null;
  const thumbprint = next.summary.thumbprint;
  const steps = new Map<CertStepId, StepState>();
  const set = (id: CertStepId, state: StepState['state'], detail: string) => steps.set(id, { id, state, detail: clip(detail) });

  const errors = blockingProblems(next.summary);
  if (errors.length > 0) set('validate', 'failed', `cannot rotate: ${errors.map((e) => e.message).join('; ')}`);
  else set('validate', 'pending', `would use ${describeCert(next.summary)}`);

  // Each server's store, read once: the import and key-access previews both come from it.
  const machines = new Map<string, MachineCert | Error>();
  for (const server of certs.servers) {
    machines.set(server, await machineCert(ctx, certs, server, { thumbprint, derBase64: next.derBase64 }).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))));
  }
  previewServers(certs, machines, set);

  if (registered?.thumbprint === thumbprint) set('register-crm', 'done', 'already registered');
  else set('register-crm', 'pending', `would register ${thumbprint}${registered ? ` (replacing ${registered.thumbprint})` : ''}`);

  try {
    const entra = await checkEntra(certs.graph(), ctx.now(), next);
    const nothing = !entra.plan.added && entra.plan.dropped === 0 && !entra.spnMissing;
    set('entra-key-credential', nothing ? 'done' : 'pending', nothing ? 'already done' : describeEntra(entra, true));
  } catch (error) {
    if (isSetupError(error) && error.code === 'CONFIG_MISSING') throw error;
    set('entra-key-credential', 'failed', `Entra ID cannot be read: ${reason(error)}`);
  }

  try {
    const settings = await checkSettings(ctx, certs);
    set('s2s-settings', settings.ok ? 'done' : 'pending', settings.ok ? 'already set' : `would set the authority principal and ${certs.metadataUrl}`);
  } catch (error) {
    set('s2s-settings', 'failed', `cannot be read: ${reason(error)}`);
  }

  set('restart-services', 'pending', `would restart on ${listServers(certs.servers)}`);

  const verifySetting = certs.settings.CERT_VERIFY_MAILBOXES;
  const verification = await selectVerificationSet(ctx, verifySetting);
  if (verification.rows.length === 0) set('verify', 'pending', 'no mailbox qualifies: nothing would be verified (the old key credential would then be kept)');
  else set('verify', 'pending', `would Test & Enable ${verification.rows.length} mailboxes${verification.mode === 'sample' ? ' whose last test succeeded' : ''}`);

  if (certs.settings.CERT_RETIRE_OLD === 'keep-until-expiry') set('retire-old', 'skipped', 'the old key credential is kept until it expires');
  else if (!registered || registered.thumbprint === thumbprint) set('retire-old', 'skipped', 'there is no old certificate');
  else set('retire-old', 'pending', `would remove the key credential of ${registered.thumbprint} once the verification passed`);

  const ordered = rotationStepIds.map((id) => steps.get(id) ?? { id, state: 'pending' as const });
  const result: CertPlanResult = {
    type: 'cert-plan',
    file: next.fileName,
    current,
    next: next.summary,
    servers: [...certs.servers],
    serviceAccount: certs.serviceAccount,
    cloud: certs.settings.CLOUD,
    metadataUrl: certs.metadataUrl,
    verification: { mode: verification.mode, mailboxes: verification.rows.length },
    retireOld: certs.settings.CERT_RETIRE_OLD,
    steps: ordered,
    blocked: errors.length > 0 || ordered.some((s) => s.state === 'failed'),
  };
  ctx.logger.info({ file: result.file, thumbprint, blocked: result.blocked }, 'certificate rotation planned');
  return result;
}

/** The import and key-access previews from each server's store. */
function previewServers(certs: ReadyCerts, machines: Map<string, MachineCert | Error>, set: (id: CertStepId, state: StepState['state'], detail: string) => void): void {
  const unreadable: string[] = [];
  const duplicate: string[] = [];
  const wouldImport: string[] = [];
  const imported: string[] = [];
  const wouldGrant: string[] = [];
  const readable: string[] = [];
  for (const server of certs.servers) {
    const m = machines.get(server);
    if (!m || m instanceof Error) {
      unreadable.push(`${server} (${m ? m.message.slice(0, 80) : 'no answer'})`);
      continue;
    }
    const action = importAction(m);
    if (action === 'refuse') duplicate.push(server);
    else if (action === 'import') wouldImport.push(server);
    else imported.push(server);
    if (m.found && m.serviceAccountCanRead) readable.push(server);
    else wouldGrant.push(server);
  }
  if (unreadable.length > 0 || duplicate.length > 0) {
    set(
      'import',
      'failed',
      joinDetail([
        duplicate.length > 0 &&
          `cannot rotate: another certificate has this subject. Set-CrmCertificate finds it by subject name: two with one subject break it ("private key not found"). Get the new one issued with another subject (e.g. the year in the CN); do not delete the old one (a rollback needs it). On ${listServers(duplicate)}`,
        unreadable.length > 0 && `cannot read ${unreadable.join(', ')}`,
      ]),
    );
  } else if (wouldImport.length === 0) set('import', 'done', `already on ${listServers(imported)}`);
  else set('import', 'pending', joinDetail([`would import on ${listServers(wouldImport)}`, imported.length > 0 && `already on ${listServers(imported)}`]));

  if (wouldGrant.length === 0 && unreadable.length === 0) set('grant-key-access', 'done', `${certs.serviceAccount} can already read the key on ${listServers(readable)}`);
  else set('grant-key-access', 'pending', joinDetail([wouldGrant.length > 0 && `would grant ${certs.serviceAccount} Read on ${listServers(wouldGrant)}`, readable.length > 0 && `already readable on ${listServers(readable)}`]));
}
