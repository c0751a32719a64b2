import { z } from 'zod';
import { failureGroupSchema } from './failure-group.ts';
import { runbookOnlyStepIds, runbookStepTitles } from './step-ids.ts';

/**
 * The certificate part of the bot ↔ agent contract (issue 3): what the agent reports about the S2S
 * certificate, the steps of a rotation and of a rollback, and the results. The PFX, its password and
 * every other secret stay on the agent host: nothing here carries key material, only public facts
 * (thumbprints, subjects, dates).
 */

/** SHA-1 of the DER certificate, 40 upper-case hex digits (how Windows and CRM show it). */
export const thumbprintSchema = z.string().regex(/^[0-9A-F]{40}$/, 'is not a certificate thumbprint (40 upper-case hex digits)');

/**
 * A file name (not a path) of a PFX in the agent's CERT_DIR. Typed in Teams as
 * `@setup cert rotate <file>`; the agent refuses anything that is not a plain name in that folder.
 */
export const certFileNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(pfx|p12)$/i, 'is not a PFX file name (letters, digits, dot, dash, underscore; ending .pfx or .p12)');

/** Every requirement of procedure.md §1 the kit checks, with a stable code. */
export const certProblemCodeSchema = z.enum([
  'NOT_RSA',
  'KEY_TOO_SMALL',
  'WEAK_SIGNATURE',
  'NOT_YET_VALID',
  'EXPIRED',
  'EXPIRES_SOON',
  'NO_PRIVATE_KEY',
  'KEY_MISMATCH',
  'KEYSPEC_NOT_EXCHANGE',
  'KEY_USAGE_MISSING',
  'SELF_SIGNED',
]);
export type CertProblemCode = z.infer<typeof certProblemCodeSchema>;

export const certProblemSchema = z.object({
  code: certProblemCodeSchema,
  /** error: the rotation must not go on; warning: shown, does not block (SELF_SIGNED, EXPIRES_SOON on the current certificate). */
  severity: z.enum(['error', 'warning']),
  message: z.string().max(300),
  /** What to do about it. */
  fix: z.string().max(400),
}).strict();
export type CertProblem = z.infer<typeof certProblemSchema>;

/** KeySpec Windows gives the key: 1 AT_KEYEXCHANGE (what CRM needs), 2 AT_SIGNATURE, 0 CNG; null unknown (no PFX). */
export const keySpecSchema = z.union([z.literal(0), z.literal(1), z.literal(2)]).nullable();

/** The public facts of one certificate (and of its PFX, when read from one). */
export const certSummarySchema = z.object({
  thumbprint: thumbprintSchema,
  subject: z.string().max(400),
  issuer: z.string().max(400),
  serialNumber: z.string().max(80),
  notBefore: z.string().datetime(),
  notAfter: z.string().datetime(),
  keyAlgorithm: z.string().max(40),
  keySize: z.number().int().nonnegative(),
  signatureHash: z.string().max(40),
  keyUsage: z.array(z.string().max(40)).max(12),
  extendedKeyUsage: z.array(z.string().max(80)).max(12),
  selfSigned: z.boolean(),
  hasPrivateKey: z.boolean(),
  keySpec: keySpecSchema,
  problems: z.array(certProblemSchema).max(20),
}).strict();
export type CertSummary = z.infer<typeof certSummarySchema>;

/** One asynchronous-service server as `cert status` and the rotation plan see it. */
export const serverCertStateSchema = z.object({
  server: z.string().max(100),
  /** The certificate looked for (the registered one for `cert status`, the new one in a plan). */
  thumbprint: thumbprintSchema.nullable(),
  found: z.boolean(),
  keySpec: keySpecSchema,
  hasPrivateKey: z.boolean(),
  serviceAccountCanRead: z.boolean(),
  /** Another certificate in LocalMachine\My has the same subject (breaks the import: "private key not found"). */
  duplicateSubject: z.boolean(),
  services: z.array(z.object({ name: z.string().max(80), status: z.string().max(40) }).strict()).max(4),
  /** Set when the server could not be read (remoting refused, time-out). */
  error: z.string().max(400).optional(),
}).strict();
export type ServerCertState = z.infer<typeof serverCertStateSchema>;

/** A key credential of the CRM service principal (Graph keyCredentials, no key material). */
export const keyCredentialInfoSchema = z.object({
  keyId: z.string().max(64),
  /** Thumbprint from customKeyIdentifier, when it is one. */
  thumbprint: thumbprintSchema.nullable(),
  displayName: z.string().max(400).nullable(),
  usage: z.string().max(20),
  type: z.string().max(40),
  startDateTime: z.string().datetime().nullable(),
  endDateTime: z.string().datetime().nullable(),
}).strict();
export type KeyCredentialInfo = z.infer<typeof keyCredentialInfoSchema>;

export const entraStateSchema = z.object({
  servicePrincipalId: z.string().max(64),
  /** servicePrincipalNames contains the bare CRM appId. */
  spnPresent: z.boolean(),
  keyCredentials: z.array(keyCredentialInfoSchema).max(50),
}).strict();
export type EntraState = z.infer<typeof entraStateSchema>;

/** `Get-CrmCertificate` (S2STokenIssuer) as a summary; null when none is registered. */
export const registeredCertSchema = certSummarySchema.nullable();

export const certStatusResultSchema = z.object({
  type: z.literal('cert-status'),
  /** False when Get-CrmCertificate could not be read: `registered: null` then means "unknown", not "none". */
  registrationRead: z.boolean().default(true), // absent in an older agent's result: it was read
  registered: registeredCertSchema,
  servers: z.array(serverCertStateSchema).max(20),
  /** null when Graph could not be read (the reason is in `problems`). */
  entra: entraStateSchema.nullable(),
  /** S2S server settings as CRM has them. */
  serverSettings: z.object({ principalId: z.string().max(80).nullable(), metadataUrl: z.string().max(300).nullable() }).strict(),
  /** Registered, on every server with key access and KeySpec 1, and a valid key credential in Entra. */
  agree: z.boolean(),
  /** Whole days until the registered certificate expires (negative: expired); null when none is registered. */
  daysLeft: z.number().int().nullable(),
  /** Human-readable disagreements, each with what to do. */
  findings: z.array(z.object({ message: z.string().max(300), fix: z.string().max(400) }).strict()).max(30),
}).strict();
export type CertStatusResult = z.infer<typeof certStatusResultSchema>;

// ---- steps -------------------------------------------------------------------------------------

/** The rotation, in the order procedure.md §10 demands. Every step checks first, then changes. */
export const rotationStepIds = [
  'validate',
  'import',
  'grant-key-access',
  'register-crm',
  'entra-key-credential',
  's2s-settings',
  'restart-services',
  'verify',
  'retire-old',
] as const;
/** The rollback: the old certificate (still in the stores and in Entra) becomes the issuer again. */
export const rollbackStepIds = ['validate-old', 'register-crm', 'restart-services', 'verify', 'retire-failed'] as const;
export const certStepIdSchema = z.enum([...rotationStepIds, 'validate-old', 'retire-failed']);
export type CertStepId = z.infer<typeof certStepIdSchema>;
/** Every step id of every multi-step job: the certificate runs' and the runbook's (runbook-types.ts). */
export const stepIdSchema = z.enum([...rotationStepIds, 'validate-old', 'retire-failed', ...runbookOnlyStepIds]);
export type StepId = z.infer<typeof stepIdSchema>;
/** The most steps a multi-step job has (the runbook's 14, with room). */
export const MAX_STEPS = 20;

export const stepStateSchema = z.object({
  id: stepIdSchema,
  state: z.enum(['pending', 'running', 'done', 'skipped', 'failed']),
  /** What the step did or found ("imported on CRMAPP01, already on CRMAPP02", "already registered"). */
  detail: z.string().max(300).optional(),
}).strict();
export type StepState = z.infer<typeof stepStateSchema>;

/** Human titles of the steps (cards, README, logs). */
export const certStepTitles: Readonly<Record<CertStepId, string>> = {
  validate: 'Validate the new certificate',
  'validate-old': 'Check the old certificate is still in place',
  import: 'Import into LocalMachine\\My with KeySpec 1 on every async server',
  'grant-key-access': 'Grant the async service account Read on the private key',
  'register-crm': 'Register as S2S token issuer (Set-CrmCertificate)',
  'entra-key-credential': 'Add the key credential to the CRM service principal',
  's2s-settings': 'Ensure the S2S server settings',
  'restart-services': 'Restart MSCRMAsyncService and MSCRMAsyncService$maintenance',
  verify: 'Test & Enable the verification mailboxes',
  'retire-old': 'Retire the old key credential',
  'retire-failed': 'Remove the failed certificate\'s key credential',
};

/** Human titles of every step (certificate runs and the runbook). */
export const stepTitles: Readonly<Record<StepId, string>> = { ...certStepTitles, ...runbookStepTitles };

// ---- payloads ----------------------------------------------------------------------------------

/** `cert rotate [file]`: read-only; the agent reads the PFX it was told about and plans. */
export const certPlanInputSchema = z.object({
  /** A PFX file name in CERT_DIR; absent: the agent's CERT_NEW_PFX. */
  file: certFileNameSchema.optional(),
}).strict();

/** What the approver saw, so the agent refuses a PFX that was swapped after the approval (PLAN_CHANGED). */
export const certRotateInputSchema = z.object({
  file: certFileNameSchema.optional(),
  newThumbprint: thumbprintSchema,
  /** The registered certificate at plan time (null: none was registered). */
  oldThumbprint: thumbprintSchema.nullable(),
  /** The second person who approved the plan (never the requester; the agent refuses otherwise). */
  approvedBy: z.string().max(64),
  /** 1 for the first run, +1 for every resume (the job id and replay guard include it). */
  attempt: z.number().int().min(1).max(50),
  /** Who clicked Resume (attempt > 1): continues what `approvedBy` approved. */
  resumedBy: z.string().max(64).optional(),
}).strict();

export const certRollbackInputSchema = z.object({
  /** The rotation run being rolled back. */
  rotationRunId: z.string().regex(/^[a-z0-9]{8,32}$/),
  /** The certificate to make the issuer again. */
  restoreThumbprint: thumbprintSchema,
  /** The certificate the failed rotation registered (its key credential is removed once the rollback is verified: retire-failed). */
  failedThumbprint: thumbprintSchema,
  approvedBy: z.string().max(64),
  attempt: z.number().int().min(1).max(50),
}).strict();

// ---- results -----------------------------------------------------------------------------------

const count = z.number().int().nonnegative();

export const certPlanResultSchema = z.object({
  type: z.literal('cert-plan'),
  file: certFileNameSchema,
  current: registeredCertSchema,
  next: certSummarySchema,
  servers: z.array(z.string().max(100)).max(20),
  serviceAccount: z.string().max(200),
  cloud: z.enum(['public', 'usgovhigh']),
  metadataUrl: z.string().max(300),
  /** 'all' or the size of the sample of mailboxes Test & Enable will verify. */
  verification: z.object({ mode: z.enum(['sample', 'all']), mailboxes: count }).strict(),
  retireOld: z.enum(['remove', 'keep-until-expiry']),
  /** Per step: what would change, or "already done". */
  steps: z.array(stepStateSchema).max(MAX_STEPS),
  /** True when the new certificate has an error-severity problem: the plan cannot be approved. */
  blocked: z.boolean(),
}).strict();
export type CertPlanResult = z.infer<typeof certPlanResultSchema>;

/** Verification Test & Enable counts, with failures grouped by cause (same shape as the test job's). */
export const verificationSchema = z.object({
  selected: count,
  succeeded: count,
  failed: count,
  noResult: count,
  failures: z.array(failureGroupSchema).max(20),
}).strict();
export type Verification = z.infer<typeof verificationSchema>;

export const certRotateResultSchema = z.object({
  type: z.literal('cert-rotate'),
  /** rotated: every step done and verified; verification-failed: halted after `verify`, rollback offered. */
  outcome: z.enum(['rotated', 'verification-failed']),
  newThumbprint: thumbprintSchema,
  oldThumbprint: thumbprintSchema.nullable(),
  steps: z.array(stepStateSchema).max(MAX_STEPS),
  verification: verificationSchema.nullable(),
  durationMs: count,
}).strict();
export type CertRotateResult = z.infer<typeof certRotateResultSchema>;

export const certRollbackResultSchema = z.object({
  type: z.literal('cert-rollback'),
  outcome: z.enum(['rolled-back', 'verification-failed']),
  restoredThumbprint: thumbprintSchema,
  steps: z.array(stepStateSchema).max(MAX_STEPS),
  verification: verificationSchema.nullable(),
  durationMs: count,
}).strict();
export type CertRollbackResult = z.infer<typeof certRollbackResultSchema>;
