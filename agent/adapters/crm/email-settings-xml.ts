/**
 * The organization's `defaultemailsettings` XML (d365-contract.md):
 * `<EmailSettings><IncomingEmailDeliveryMethod>n</IncomingEmailDeliveryMethod>…</EmailSettings>`.
 * The runbook changes only the three delivery-method values: every other element, attribute and
 * whitespace of the existing XML stays as CRM wrote it.
 */
export interface EmailDeliveryDefaults {
  incoming: number;
  outgoing: number;
  act: number;
}

const elements = {
  incoming: 'IncomingEmailDeliveryMethod',
  outgoing: 'OutgoingEmailDeliveryMethod',
  act: 'ACTDeliveryMethod',
} as const satisfies Record<keyof EmailDeliveryDefaults, string>;

const keys = Object.keys(elements) as (keyof EmailDeliveryDefaults)[];

function elementPattern(name: string): RegExp {
  // <Name>value</Name> or <Name/> (names are fixed identifiers, never input).
  return new RegExp(`<${name}(\\s[^>]*)?(?:/>|>([^<]*)</${name}\\s*>)`);
}

/** The three values as the XML has them (undefined: the element is missing or not a number). */
export function readEmailDeliveryDefaults(xml: string | null | undefined): Partial<EmailDeliveryDefaults> {
  const found: Partial<EmailDeliveryDefaults> = {};
  if (!xml) return found;
  for (const key of keys) {
    const m = elementPattern(elements[key]).exec(xml);
    const text = m?.[2]?.trim();
    if (text !== undefined && /^\d+$/.test(text)) found[key] = Number(text);
  }
  return found;
}

/**
 * The XML with the three values set: each existing element's value replaced in place, a missing
 * element added before `</EmailSettings>` (a missing or empty document becomes a new one).
 */
export function writeEmailDeliveryDefaults(xml: string | null | undefined, values: EmailDeliveryDefaults): string {
  let text = xml?.trim() ? xml : '<EmailSettings></EmailSettings>';
  const missing: string[] = [];
  for (const key of keys) {
    const name = elements[key];
    const pattern = elementPattern(name);
    const element = `<${name}>${values[key]}</${name}>`;
    if (pattern.test(text)) text = text.replace(pattern, (_match, attributes: string | undefined) => `<${name}${attributes ?? ''}>${values[key]}</${name}>`);
    else missing.push(element);
  }
  if (missing.length === 0) return text;
  const close = text.lastIndexOf('</EmailSettings>');
  if (close >= 0) return `${text.slice(0, close)}${missing.join('')}${text.slice(close)}`;
  const selfClosing = /<EmailSettings(\s[^>]*)?\/>/.exec(text);
  if (selfClosing) return text.replace(selfClosing[0], `<EmailSettings${selfClosing[1] ?? ''}>${missing.join('')}</EmailSettings>`);
  // Not an EmailSettings document at all: CRM would not have written it; start a proper one.
  return `<EmailSettings>${keys.map((k) => `<${elements[k]}>${values[k]}</${elements[k]}>`).join('')}</EmailSettings>`;
}
