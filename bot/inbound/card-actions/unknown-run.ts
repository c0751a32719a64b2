/** The answer to a click on a run that is unknown, expired, or does not take this verb. */
export const UNKNOWN_RUN = 'This run is unknown or too old (runs are kept 30 days). Run the command again.';
