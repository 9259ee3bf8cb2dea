import Bowser from 'bowser';

/** What kind of device a session was started from, as far as its user agent tells. */
export type DeviceType = 'desktop' | 'mobile' | 'tablet' | 'tv' | 'bot' | 'unknown';

/** A session's device, parsed from the user agent at login. */
export interface DeviceInfo {
  /** Short and for people: "Firefox on Linux", "Safari on iOS", "curl". */
  label: string;
  /** The browser or client name ("Firefox", "Microsoft Edge", "curl"), when known. */
  browser?: string | undefined;
  /** The operating system ("Linux", "macOS", "iOS", "Android"), when known. */
  os?: string | undefined;
  type: DeviceType;
}

const TYPES: ReadonlySet<string> = new Set(['desktop', 'mobile', 'tablet', 'tv', 'bot']);
const PART = 32;
// What the store keeps instead of the user agent: "browser|os|type", printable ASCII only.
const STORED =
  /^([\x20-\x7B\x7D\x7E]{0,32})\|([\x20-\x7B\x7D\x7E]{0,32})\|(desktop|mobile|tablet|tv|bot|)$/;

/** A name safe to store and show: printable ASCII without the separator, at most 32 characters. */
function part(value: string): string {
  return value
    .replace(/[^\x20-\x7E]|\|/g, '')
    .trim()
    .slice(0, PART);
}

/**
 * The short form of a user agent that the session store keeps in its place:
 * "Firefox|Linux|desktop" (about 20 bytes instead of 70-250). A client that is no browser keeps
 * its product name ("curl/8.4.0" → "curl"). Empty for an empty user agent.
 */
export function deviceCode(userAgent: string): string {
  if (userAgent === '') return '';
  const known = parsed.get(userAgent);
  if (known !== undefined) return known;
  const code = parseDevice(userAgent);
  // Most logins come from a few hundred user agents: parse each once (bowser runs ~100 regexes).
  if (parsed.size >= PARSED_MAX) parsed.clear();
  parsed.set(userAgent, code);
  return code;
}

const PARSED_MAX = 1000;
const parsed = new Map<string, string>();

function parseDevice(userAgent: string): string {
  const parser = Bowser.getParser(userAgent);
  let browser = part(parser.getBrowserName());
  const os = part(parser.getOSName());
  const type = parser.getPlatformType();
  if (browser === '' && os === '') browser = part(/^[^/\s;()]+/.exec(userAgent)?.[0] ?? '');
  return `${browser}|${os}|${TYPES.has(type) ? type : ''}`;
}

/**
 * The device of a stored session: from the short form, or for a session recorded before the
 * short form existed, parsed from its raw user agent.
 */
export function describeDevice(stored: string): DeviceInfo | undefined {
  if (stored === '') return undefined;
  const match = STORED.exec(stored) ?? STORED.exec(deviceCode(stored));
  if (!match) return undefined;
  const [, browser = '', os = '', type = ''] = match;
  const label = browser && os ? `${browser} on ${os}` : browser || os || 'Unknown device';
  const info: DeviceInfo = { label, type: (type || 'unknown') as DeviceType };
  if (browser) info.browser = browser;
  if (os) info.os = os;
  return info;
}
