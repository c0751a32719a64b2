import type { BotServices } from '../bot-services.ts';
import type { FinalCards } from './final-cards.ts';

/** What a report handler works with: the bot's services and the final-card poster. */
export interface ReportContext {
  services: BotServices;
  final: FinalCards;
}
