import { AuthConfigError } from '../errors.js';
import { bool, onlyKnown, plainObject, shown, warnOnce } from './validate.js';

/** Where login and refresh put the tokens: the JSON body, HttpOnly cookies, or both. */
export type TokenDelivery = 'json' | 'cookie' | 'both';
/** Where the middlewares look for an access token, in order. */
export type TokenSource = 'header' | 'cookie';

export interface CookieOptions {
  /** `Secure` attribute. Turn off only for plain-http development; warns under NODE_ENV=production. @default true */
  secure?: boolean | undefined;
  /** `SameSite` attribute. `'none'` warns under NODE_ENV=production. @default 'lax' */
  sameSite?: 'lax' | 'strict' | 'none' | undefined;
  /** Add the `__Host-` (Path=/ cookies) and `__Secure-` (refresh cookie) name prefixes when `secure`. @default true */
  prefix?: boolean | undefined;
  /** Cookie names before the prefix. @default { access: 'access_token', refresh: 'refresh_token', csrf: 'csrf_token' } */
  names?:
    | { access?: string | undefined; refresh?: string | undefined; csrf?: string | undefined }
    | undefined;
}

export interface CsrfOptions {
  /** The request header carrying the CSRF proof. @default 'x-csrf-token' */
  header?: string | undefined;
  /** Origins allowed besides the request's own (e.g. `https://app.example.com`). @default [] */
  allowedOrigins?: string[] | undefined;
  /**
   * Whether `requireAuth` and `getData` demand CSRF proof on unsafe methods (POST, PUT, PATCH,
   * DELETE) when the access token came from the cookie. @default true
   */
  requireAuth?: boolean | undefined;
}

/** The web options as validated once by createAuth. */
export interface WebOptions {
  tokenDelivery: TokenDelivery;
  tokenSources: readonly TokenSource[];
  cookies: {
    secure: boolean;
    sameSite: 'Lax' | 'Strict' | 'None';
    /** Final names, prefixes included. */
    names: { access: string; refresh: string; csrf: string };
  };
  csrf: { header: string; allowedOrigins: ReadonlySet<string>; requireAuth: boolean };
}

/** Whether tokens go out in cookies (`'cookie'` or `'both'`): cookie reading and CSRF proof on. */
export function usesCookies(web: Pick<WebOptions, 'tokenDelivery'>): boolean {
  return web.tokenDelivery !== 'json';
}

export interface WebOptionsInput {
  tokenDelivery?: TokenDelivery | undefined;
  tokenSources?: TokenSource[] | undefined;
  cookies?: CookieOptions | undefined;
  csrf?: CsrfOptions | undefined;
}

// RFC 6265 cookie-name token characters.
const COOKIE_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,64}$/;
const HEADER_NAME = /^[A-Za-z0-9-]{1,64}$/;
const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None' } as const;

// The known keys of each nested option; `satisfies` keeps each list complete.
const COOKIE_OPTIONS = {
  secure: true,
  sameSite: true,
  prefix: true,
  names: true,
} as const satisfies Record<keyof CookieOptions, true>;
const COOKIE_NAMES = {
  access: true,
  refresh: true,
  csrf: true,
} as const satisfies Record<keyof NonNullable<CookieOptions['names']>, true>;
const CSRF_OPTIONS = {
  header: true,
  allowedOrigins: true,
  requireAuth: true,
} as const satisfies Record<keyof CsrfOptions, true>;

function cookieName(name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !COOKIE_NAME.test(value) || /^__(host|secure)-/i.test(value)) {
    throw new AuthConfigError(
      name,
      'must be a cookie name (letters, digits, -, _, …) without a __Host-/__Secure- prefix (added when `secure`)',
    );
  }
  return value;
}

function origin(name: string, value: unknown): string {
  // URL takes `*` in a host name: as a pattern, it would never equal a browser's Origin header.
  if (typeof value === 'string' && value.includes('*'))
    throw new AuthConfigError(
      name,
      `takes whole origins, not patterns (got ${shown(value)}): list each one, e.g. "https://app.example.com"`,
    );
  let parsed: URL | undefined;
  try {
    parsed = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    parsed = undefined;
  }
  if (
    !parsed ||
    (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') ||
    parsed.origin !== String(value).replace(/\/$/, '').toLowerCase()
  ) {
    throw new AuthConfigError(
      name,
      `must be an origin like "https://app.example.com" (scheme, host, optional port; got ${shown(value)})`,
    );
  }
  return parsed.origin;
}

/** Validates `tokenDelivery`, `tokenSources`, `cookies` and `csrf`; called once by createAuth. */
export function resolveWebOptions(input: WebOptionsInput): WebOptions {
  const tokenDelivery = input.tokenDelivery ?? 'json';
  if (tokenDelivery !== 'json' && tokenDelivery !== 'cookie' && tokenDelivery !== 'both') {
    throw new AuthConfigError(
      'tokenDelivery',
      `must be 'json', 'cookie' or 'both' (got ${shown(tokenDelivery)})`,
    );
  }
  const cookieMode = usesCookies({ tokenDelivery });
  const tokenSources = input.tokenSources ?? (cookieMode ? ['header', 'cookie'] : ['header']);
  if (
    !Array.isArray(tokenSources) ||
    tokenSources.length === 0 ||
    new Set(tokenSources).size !== tokenSources.length ||
    !tokenSources.every((s) => s === 'header' || s === 'cookie')
  ) {
    throw new AuthConfigError(
      'tokenSources',
      "must list 'header' and/or 'cookie' once each, in the order to look, e.g. ['header', 'cookie']",
    );
  }
  if (tokenSources.includes('cookie') && !cookieMode) {
    throw new AuthConfigError(
      'tokenSources',
      "reading the cookie needs tokenDelivery 'cookie' or 'both' (which also turns on CSRF protection)",
    );
  }

  const cookies = plainObject('cookies', input.cookies);
  onlyKnown('cookies', cookies, Object.keys(COOKIE_OPTIONS));
  const secure = bool('cookies.secure', cookies.secure, true);
  const sameSiteInput = cookies.sameSite ?? 'lax';
  if (typeof sameSiteInput !== 'string' || !(sameSiteInput in SAME_SITE)) {
    throw new AuthConfigError('cookies.sameSite', "must be 'lax', 'strict' or 'none'");
  }
  const sameSite = SAME_SITE[sameSiteInput as keyof typeof SAME_SITE];
  if (sameSite === 'None' && !secure)
    throw new AuthConfigError(
      'cookies.sameSite',
      "'none' needs `secure: true` (browsers drop such cookies)",
    );
  const prefixed = bool('cookies.prefix', cookies.prefix, true) && secure;
  const names = plainObject('cookies.names', cookies.names);
  onlyKnown('cookies.names', names, Object.keys(COOKIE_NAMES));
  const base = {
    access: cookieName('cookies.names.access', names.access, 'access_token'),
    refresh: cookieName('cookies.names.refresh', names.refresh, 'refresh_token'),
    csrf: cookieName('cookies.names.csrf', names.csrf, 'csrf_token'),
  };
  if (new Set(Object.values(base)).size !== 3)
    throw new AuthConfigError('cookies.names', 'must be three different names');

  const csrf = plainObject('csrf', input.csrf);
  onlyKnown('csrf', csrf, Object.keys(CSRF_OPTIONS));
  const header = csrf.header ?? 'x-csrf-token';
  if (
    typeof header !== 'string' ||
    !HEADER_NAME.test(header) ||
    ['authorization', 'cookie', 'origin', 'referer'].includes(header.toLowerCase())
  ) {
    throw new AuthConfigError('csrf.header', 'must be a custom header name such as "x-csrf-token"');
  }
  const allowed = csrf.allowedOrigins ?? [];
  if (!Array.isArray(allowed))
    throw new AuthConfigError('csrf.allowedOrigins', 'must be an array of origins');

  if (cookieMode && process.env.NODE_ENV === 'production' && (!secure || sameSite === 'None')) {
    warnOnce(
      'KOA_JWT_REDIS_INSECURE_COOKIE',
      `token cookies are ${!secure ? 'not Secure (sent over plain http)' : 'SameSite=None (sent on cross-site requests)'}; use the defaults (secure: true, sameSite: 'lax') in production.`,
    );
  }

  return {
    tokenDelivery,
    tokenSources: [...tokenSources],
    cookies: {
      secure,
      sameSite,
      names: {
        // __Host- needs Secure, Path=/ and no Domain; the refresh cookie has a narrower Path, so __Secure-.
        access: prefixed ? `__Host-${base.access}` : base.access,
        refresh: prefixed ? `__Secure-${base.refresh}` : base.refresh,
        csrf: prefixed ? `__Host-${base.csrf}` : base.csrf,
      },
    },
    csrf: {
      header: header.toLowerCase(),
      allowedOrigins: new Set(allowed.map((o, i) => origin(`csrf.allowedOrigins[${i}]`, o))),
      requireAuth: bool('csrf.requireAuth', csrf.requireAuth, true),
    },
  };
}
