import { z } from 'zod';
import { SetupError } from '../../../core/setup-error.ts';

/** `{"error":{"code":"0x8004...","message":"..."}}`, the Web API's error body. */
const crmErrorBodySchema = z.object({
  error: z.object({ code: z.string().optional(), message: z.string().optional() }).passthrough(),
}).passthrough();

export interface CrmErrorInfo {
  code: string | undefined;
  message: string;
}

/** Reads CRM's error code and message from a response body (JSON text or parsed value). */
export function readCrmError(body: unknown, status: number): CrmErrorInfo {
  let value = body;
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    const text = body.toString();
    try {
      value = JSON.parse(text);
    } catch {
      return { code: undefined, message: text.trim().slice(0, 300) || `HTTP ${status}` };
    }
  }
  const parsed = crmErrorBodySchema.safeParse(value);
  if (!parsed.success) return { code: undefined, message: `HTTP ${status}` };
  return { code: parsed.data.error.code, message: parsed.data.error.message ?? `HTTP ${status}` };
}

export const crmAuthHint =
  'Check CRM_AUTH and, for NTLM, CRM_USERNAME, CRM_PASSWORD and CRM_DOMAIN; the account must be an enabled CRM user in this organization.';

/** The SetupError for a final (non-retried or retries exhausted) HTTP failure. */
export function crmHttpError(what: string, status: number, body: unknown, retryable: boolean): SetupError {
  const info = readCrmError(body, status);
  if (status === 401) {
    return new SetupError('CRM_AUTH_FAILED', `CRM refused the agent's credentials (401) for ${what}.`, {
      hint: crmAuthHint,
      details: { status, crmCode: info.code },
    });
  }
  const code = info.code ? ` ${info.code}` : '';
  return new SetupError('CRM_REQUEST_FAILED', `CRM answered ${status}${code} to ${what}: ${info.message}`, {
    retryable,
    ...(retryable ? { hint: 'CRM kept answering with server errors; check the CRM servers (event log, IIS, SQL Server) and run the command again.' } : {}),
    details: { status, crmCode: info.code, crmMessage: info.message },
  });
}
