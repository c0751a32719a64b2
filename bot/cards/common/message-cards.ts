import { card, text, title, type AdaptiveCardJson } from './card-kit.ts';

/** Someone may not do what they asked; nothing was changed. */
export function refusalCard(reason: string): AdaptiveCardJson {
  return card([title('Not allowed', 'Attention'), text(reason), text('Nothing was changed.', { subtle: true })]);
}

/** Something failed; `message` already says what to do (see userMessage). */
export function errorCard(heading: string, message: string): AdaptiveCardJson {
  return card([title(heading, 'Attention'), text(message)]);
}
