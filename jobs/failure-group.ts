import { z } from 'zod';

/**
 * Failures grouped by cause, with the remediation from shared/d365-contract.md: the shape the
 * mailbox jobs (approve, test) and the certificate verification report their failures in.
 */
export const failureGroupSchema = z.object({
  cause: z.string().max(64),
  title: z.string().max(200),
  remediation: z.string().max(600),
  count: z.number().int().nonnegative(),
  sample: z.array(z.string().max(320)).max(10),
  /** One trace text as CRM wrote it, shortened (for the causes not recognised). */
  example: z.string().max(400).optional(),
}).strict();
export type FailureGroup = z.infer<typeof failureGroupSchema>;
