/**
 * Option values of the Dynamics 365 attributes this project reads and writes, exactly as listed in
 * shared/d365-contract.md. Kept in one place so the agent, the simulator and the cards agree.
 */
export const EmailRouterAccessApproval = { Empty: 0, Approved: 1, PendingApproval: 2, Rejected: 3 } as const;
export type EmailRouterAccessApproval = (typeof EmailRouterAccessApproval)[keyof typeof EmailRouterAccessApproval];

/** incomingemailstatus, outgoingemailstatus, actstatus, mailboxstatus. */
export const MailboxTestStatus = { NotRun: 0, Success: 1, Failure: 2 } as const;
export type MailboxTestStatus = (typeof MailboxTestStatus)[keyof typeof MailboxTestStatus];

export const IncomingDeliveryMethod = { None: 0, Outlook: 1, ServerSideSync: 2, ForwardMailbox: 3 } as const;
export const OutgoingDeliveryMethod = { None: 0, Outlook: 1, ServerSideSync: 2 } as const;
/** Numbered differently from the two above (contract: "numbered differently!"). */
export const ActDeliveryMethod = { Outlook: 0, ServerSideSync: 1, None: 2 } as const;

export const EmailServerType = { Exchange: 0, Other: 1, ExchangeHybrid: 2, ExchangeOnlineHybrid: 3 } as const;

export const StateCode = { Active: 0, Inactive: 1 } as const;

export const approvalLabels: Record<number, string> = {
  0: 'Empty',
  1: 'Approved',
  2: 'Pending Approval',
  3: 'Rejected',
};

export const testStatusLabels: Record<number, string> = { 0: 'Not Run', 1: 'Success', 2: 'Failure' };
