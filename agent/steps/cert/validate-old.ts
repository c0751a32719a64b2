import { SetupError } from '../../../core/setup-error.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { isCurrent, thumbprintOfDer, thumbprintOfKeyCredential } from '../../adapters/graph/key-credentials.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { StepOutcome } from '../runner.ts';
import { listServers, type CertRunEnv, type CertStep, type StepCert } from './common.ts';
import { grantKeyAccess } from './grant-key-access.ts';
import { machineCert } from './import.ts';
import { onServer } from './on-server.ts';
import { readRegistered } from './register-crm.ts';
import { OLD_DER_KEY } from './validate.ts';

const RESTORE_DER_KEY = 'restoreDerBase64';

/**
 * validate-old (the rollback's first step): CRM still signs with the failed or the restored
 * certificate (the state the rollback was approved for), and the old certificate is known, valid,
 * a key credential in Entra ID and on every server with its key; it goes to `facts.cert` for the
 * steps after. The check says only what the rollback would restore (there is no rollback plan job:
 * the bot's card shows the rotation's run).
 */
export function validateOldStep(certs: ReadyCerts, run: PayloadOf<'cert-rollback'>): CertStep<CertRunEnv> {
  return {
    id: 'validate-old',
    check(env) {
      return requireApprovedState(env.ctx, certs, run).then(() => ({ upToDate: false, detail: `would make ${run.restoreThumbprint} the S2S token issuer again` }));
    },
    async apply(env) {
      await requireApprovedState(env.ctx, certs, run);
      const ref = await validateOld(env.ctx, certs, run.restoreThumbprint, run.rotationRunId, env.recorded('validate-old')?.data?.[RESTORE_DER_KEY]);
      env.facts.cert = ref.cert;
      return { ...ref.outcome, wrote: ref.outcome.changed === true };
    },
  };
}

/**
 * CRM must still sign with the certificate the failed rotation registered (or, on a later attempt,
 * the restored one): otherwise someone changed the S2S certificate since the rollback was
 * approved, and registering the old one would undo that change. PLAN_CHANGED, nothing changed.
 */
async function requireApprovedState(ctx: JobContext, certs: ReadyCerts, payload: PayloadOf<'cert-rollback'>): Promise<void> {
  const registered = await readRegistered(ctx, certs);
  const now = registered?.thumbprint ?? null;
  if (now === payload.failedThumbprint || now === payload.restoreThumbprint) return;
  let described = 'no certificate';
  if (registered) {
    let subject = '';
    try {
      subject = ` (${certs.kit.summarizeDer(registered.derBase64, { now: ctx.now(), minDaysLeft: 0 }).subject.slice(0, 120)})`;
    } catch {
      // The thumbprint alone names it.
    }
    described = `the certificate ${registered.thumbprint}${subject}`;
  }
  throw new SetupError(
    'PLAN_CHANGED',
    `CRM signs with ${described} now, not the failed ${payload.failedThumbprint} nor the ${payload.restoreThumbprint} to restore: the rollback was approved for another state. Nothing was changed.`,
    { hint: 'Someone changed the S2S certificate since the rollback was approved: look at @setup cert status, and if the deployment still needs a change, rotate to the certificate it should use (@setup cert rotate <file>).' },
  );
}

/**
 * The old certificate's public DER: from this rollback's earlier attempt, the rotation's journal
 * (validate kept it), or its key credential in Entra; each checked against the approved thumbprint
 * (the thumbprint is the DER's SHA-1, so a wrong DER cannot pass). Then: not expired, still a valid
 * key credential in Entra, on every server with its key and KeySpec 1; where the service account's
 * Read on the key is not confirmed, it is granted (reported in the detail).
 */
async function validateOld(
  ctx: JobContext,
  certs: ReadyCerts,
  thumbprint: string,
  rotationRunId: string,
  earlierDer: string | undefined,
): Promise<{ cert: StepCert; outcome: StepOutcome }> {
  const matches = (der: string | undefined): der is string => der !== undefined && thumbprintOfDer(der) === thumbprint;
  const graph = certs.graph();
  const sp = await graph.getCrmServicePrincipal();
  const credential = sp.keyCredentials.find((k) => thumbprintOfKeyCredential(k) === thumbprint);

  let der = matches(earlierDer) ? earlierDer : undefined;
  if (!der) {
    const journaled = (await certs.journal.load(rotationRunId)).get('validate')?.data?.[OLD_DER_KEY];
    if (matches(journaled)) der = journaled;
  }
  if (!der && credential?.key && matches(credential.key)) der = credential.key;
  if (!der) {
    throw new SetupError('STEP_FAILED', `the certificate ${thumbprint} is known neither from the rotation's journal nor as a key credential in Entra ID.`, {
      hint: 'Register the old certificate by hand (Set-CrmCertificate with its .cer), restart the async services, or rotate to a new certificate instead.',
    });
  }
  const summary = certs.kit.summarizeDer(der, { now: ctx.now(), minDaysLeft: 0 });
  if (Date.parse(summary.notAfter) <= ctx.now()) {
    throw new SetupError('CERT_REQUIREMENTS', `the certificate ${thumbprint} expired on ${summary.notAfter.slice(0, 10)}; it cannot be restored.`, {
      hint: 'Rotate to a new, valid certificate instead (@setup cert rotate <file>).',
    });
  }
  if (!credential || !isCurrent(credential, ctx.now())) {
    throw new SetupError('STEP_FAILED', `the key credential of ${thumbprint} is ${credential ? 'no longer valid' : 'no longer'} on the CRM service principal in Entra ID, so restoring it would not authenticate.`, {
      hint: 'Add the old certificate back as a key credential of the Microsoft Dynamics CRM service principal (its public .cer, AsymmetricX509Cert, Verify), then run the rollback again; or rotate to a new certificate instead.',
    });
  }
  const cert: StepCert = { thumbprint, subject: summary.subject, derBase64: der, summary, pfx: null };
  const unreadable: string[] = [];
  for (const server of certs.servers) {
    await onServer(server, async () => {
      const m = await machineCert(ctx, certs, server, cert);
      const problem = !m.found
        ? 'is no longer in LocalMachine\\My'
        : !m.hasPrivateKey
          ? 'has no private key'
          : m.keySpec !== 1
            ? `has KeySpec ${m.keySpec ?? 'unknown'}, not 1 (AT_KEYEXCHANGE)`
            : undefined;
      if (problem) {
        throw new SetupError('STEP_FAILED', `the old certificate ${thumbprint} ${problem}.`, {
          hint: 'Import the old PFX again (certutil -importpfx <file> AT_KEYEXCHANGE) and grant the async service account Read on its key, then run the rollback again.',
        });
      }
      if (!m.serviceAccountCanRead) unreadable.push(server);
    });
  }
  // The key is there but the service account's Read on it is not confirmed: a rollback is what
  // restores mail, so grant it (the rotation's grant-key-access step) rather than refuse. Every
  // server was checked first: a server without the key refuses the rollback before anything changes.
  let grant: StepOutcome | undefined;
  if (unreadable.length > 0) {
    ctx.logger.warn({ servers: unreadable, thumbprint }, 'the service account\'s Read on the old certificate\'s key is not confirmed; granting it');
    grant = await grantKeyAccess(ctx, certs, cert);
  }
  const inPlace = `${summary.subject}, valid until ${summary.notAfter.slice(0, 10)}, in place on ${listServers(certs.servers)} and in Entra ID`;
  return {
    cert,
    outcome: {
      detail: grant ? `${grant.detail}; ${inPlace}` : inPlace,
      ...(grant?.changed ? { changed: true } : {}),
      data: { [RESTORE_DER_KEY]: der },
    },
  };
}
