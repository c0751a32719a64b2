import { FakeCrm } from './fake-crm.ts';

export interface FakeMailbox {
  mailboxid: string;
  emailaddress: string;
  emailrouteraccessapproval: number;
  testemailconfigurationscheduled: boolean;
  incomingemailstatus: number;
  outgoingemailstatus: number;
  actstatus: number;
  testmailboxaccesscompletedon: string | null;
}

const idOf = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/**
 * A FakeCrm with approved mailboxes whose last test succeeded, and a Test & Enable that completes
 * at the next poll: success when `health()` says S2S works, else failure with its text as the trace.
 */
export function fakeMailCrm(count: number, health: () => { ok: true } | { ok: false; text: string }, now: () => number) {
  const mailboxes: FakeMailbox[] = Array.from({ length: count }, (_, i) => ({
    mailboxid: idOf(i + 1),
    emailaddress: `user${i + 1}@contoso.com`,
    emailrouteraccessapproval: 1,
    testemailconfigurationscheduled: false,
    incomingemailstatus: 1,
    outgoingemailstatus: 1,
    actstatus: 1,
    testmailboxaccesscompletedon: null,
  }));
  const traces: { tracelogid: string; text: string; _regardingobjectid_value: string; createdon: string; modifiedon: string }[] = [];
  const filters: string[] = [];
  const crm = new FakeCrm({
    date: () => new Date(now()),
    batchPart: (request) => {
      const id = /\(([^)]+)\)/.exec(request.path)?.[1];
      const box = mailboxes.find((m) => m.mailboxid === id);
      if (!box) return { status: 404, headers: {}, body: { error: { code: '0x80040217', message: 'Does not exist' } } };
      box.testemailconfigurationscheduled = true;
      return { status: 204, headers: {}, body: undefined };
    },
    get: (set, query) => {
      if (set === 'tracelogs') return [traces];
      if (query.filter !== undefined) filters.push(query.filter);
      if (query.select.includes('testemailconfigurationscheduled')) {
        const h = health();
        const at = new Date(now()).toISOString();
        for (const box of mailboxes.filter((m) => m.testemailconfigurationscheduled)) {
          const status = h.ok ? 1 : 2;
          Object.assign(box, { testemailconfigurationscheduled: false, incomingemailstatus: status, outgoingemailstatus: status, testmailboxaccesscompletedon: at });
          if (!h.ok) traces.push({ tracelogid: idOf(1000 + traces.length), text: h.text, _regardingobjectid_value: box.mailboxid, createdon: at, modifiedon: at });
        }
        return [mailboxes];
      }
      const ids = [...(query.filter ?? '').matchAll(/mailboxid eq ([0-9a-f-]{36})/g)].map((m) => m[1]);
      if (ids.length > 0) return [mailboxes.filter((m) => m.emailrouteraccessapproval === 1 && ids.includes(m.mailboxid))];
      const sample = query.filter?.includes('incomingemailstatus eq 1') ?? false;
      return [mailboxes.filter((m) => m.emailrouteraccessapproval === 1 && (!sample || (m.incomingemailstatus === 1 && m.outgoingemailstatus === 1)))];
    },
  });
  return { crm, mailboxes, filters };
}
