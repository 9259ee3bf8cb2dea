import type { Context, Middleware } from 'koa';
import { AuthError } from '../errors.js';
import { loadKoaBody } from '../middleware/json-body.js';

/*
 * The request bodies of the ready-made routes: JSON only, parsed by koa-body with the same checks
 * whichever koa-body major is installed, and the shapes the login, refresh and logout routes
 * require of them. Kept apart from router.ts, which decides what each route does with a body.
 */

let sharedJsonBody: Middleware | undefined;

const PROTO_KEY = 'The request body has a "__proto__" key, which is refused.';
const NOT_AN_OBJECT = 'The request body is not a JSON object.';
/** Where koa-body 6 keeps the unparsed text (includeUnparsed): a property of the parsed body. */
const UNPARSED = Symbol.for('unparsedBody');

/**
 * Whether a parsed JSON value has an own `__proto__` key at any depth (JSON.parse makes it a
 * plain property, which a later merge into an object turns into its prototype). Walked without
 * recursion: a 16 KiB body can nest thousands of levels.
 */
function hasProtoKey(value: unknown): boolean {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (next === null || typeof next !== 'object') continue;
    if (Object.prototype.hasOwnProperty.call(next, '__proto__')) return true;
    for (const child of Object.values(next)) pending.push(child);
  }
  return false;
}

/**
 * The JSON body parser of every router, built on the first `auth.routes()` call. koa-body's
 * co-body refuses a `__proto__` key from 6.2.0 on (koa-body 7 and 8 require it); koa-body 6
 * accepts co-body 6.1, which does not: the parsed body is checked here too, whatever parsed it.
 *
 * An app-wide body parser mounted before the routes (`app.use(koaBody())`, @koa/bodyparser) has
 * read the request stream already, and a second read fails: its result is taken instead, held to
 * the same rules (16 KiB as received where that is known, else as parsed and written out again:
 * see receivedSize; one JSON object, no `__proto__` key). The 415 for other media types comes
 * before, in `jsonOnly`, whatever the app's parser accepts.
 */
export const jsonBodyParser = (): Middleware => {
  const parse = sharedParser();
  return (ctx, next) => {
    const checked = (body: unknown) => {
      if (hasProtoKey(body)) throw new AuthError('invalid_request', PROTO_KEY);
      // Every route's body is one object: an array is no request to refresh or log out, and read
      // as an empty body it would make `[{ "keep_current": true }]` end the caller's session too.
      if (Array.isArray(body)) throw new AuthError('invalid_request', NOT_AN_OBJECT);
      return next();
    };
    // No body at all (no length, or a Content-Length of 0): nothing to parse. An app-wide parser
    // may have read the empty stream already, and koa-body reading it again fails ("stream is not
    // readable"): a refresh by header or cookie must not turn into a 400 for want of a body.
    if (!hasBody(ctx)) return checked(keepUnparsedApart(ctx).body);
    if (!readAlready(ctx)) return parse(ctx, () => checked(keepUnparsedApart(ctx).body));
    const { body } = keepUnparsedApart(ctx);
    // A non-strict parser hands on `"text"`, `7` or `null` as they are.
    if (body === null || typeof body !== 'object')
      throw new AuthError('invalid_request', NOT_AN_OBJECT);
    const size = receivedSize(ctx);
    if ((size ?? writtenSize(body)) > JSON_LIMIT) throw tooLarge();
    // koa-body's (co-body's) answer to an empty body is {}, the same as to a sent `{}`: with no
    // size to tell them apart (chunked or compressed, no text kept), {} is taken for no body, so
    // an empty login is a 400 as it is without the app's parser (a sent {} holds no credentials).
    if (size === undefined && Object.keys(body).length === 0) parsedFromNothing.add(ctx.request);
    return checked(body);
  };
};

/**
 * The request's parsed body, with koa-body 6's unparsed text (kept on the parsed body, under a
 * symbol; 7 and later keep it on ctx.request.rawBody) moved to `rawBody`: the body login is
 * handed holds only what was sent.
 */
function keepUnparsedApart(ctx: Context): { body?: unknown; rawBody?: unknown } {
  const request = ctx.request as { body?: unknown; rawBody?: unknown };
  const { body } = request;
  if (body !== null && typeof body === 'object' && UNPARSED in body) {
    request.rawBody = (body as Record<symbol, unknown>)[UNPARSED];
    delete (body as Record<symbol, unknown>)[UNPARSED];
  }
  return request;
}

/** The routes' body limit (koa-body's jsonLimit below, and an app-wide parser's body by its size). */
const JSON_LIMIT = 16 * 1024;
const tooLarge = () => new AuthError('body_too_large', 'The request body is over 16 KiB.');

/**
 * How large the body an app-wide parser read was, decoded: its text when the parser kept it
 * (@koa/bodyparser always, koa-body with `includeUnparsed`), else the Content-Length of an
 * unencoded body. Undefined when neither tells: a chunked or compressed body of which only the
 * parsed value is left.
 */
function receivedSize(ctx: Context): number | undefined {
  const { rawBody } = ctx.request as { rawBody?: unknown };
  if (typeof rawBody === 'string') return Buffer.byteLength(rawBody);
  const length = ctx.get('content-length');
  const encoding = ctx.get('content-encoding');
  if (length !== '' && (encoding === '' || encoding === 'identity')) return Number(length);
  return undefined;
}

/**
 * The parsed value written out again as JSON: what the routes' hooks are handed, when the bytes
 * received are not known (no more work than the parsing the app already paid).
 */
function writtenSize(body: object): number {
  try {
    return Buffer.byteLength(JSON.stringify(body));
  } catch {
    // A cycle or a BigInt: no JSON object a request could have sent.
    throw new AuthError('invalid_request', NOT_AN_OBJECT);
  }
}

/** Requests whose body an app-wide parser read as {} with nothing to show more was sent. */
const parsedFromNothing = new WeakSet<object>();

/**
 * Whether a middleware before the routes has read the whole request stream and left the body it
 * parsed on `ctx.request.body`. A stream read to its end by a middleware that left no body cannot
 * be read again: that is the app's mistake, said as such (a 500 with the way out, never a 400
 * blaming the client). A stream the client cut off has not ended: koa-body fails on it as ever.
 */
function readAlready(ctx: Context): boolean {
  if (!ctx.req.readableEnded) return false;
  if ((ctx.request as { body?: unknown }).body !== undefined) return true;
  throw new Error(
    'koa-jwt-redis: the request body was read before auth.routes() by a middleware that left no ctx.request.body; mount auth.routes() before it',
  );
}

const sharedParser = (): Middleware =>
  (sharedJsonBody ??= loadKoaBody()({
    json: true,
    urlencoded: false,
    multipart: false,
    text: false,
    jsonLimit: JSON_LIMIT,
    // The raw text too (ctx.request.rawBody): an empty chunked body parses to {}, yet is no object.
    includeUnparsed: true,
    onError: (error) => {
      const { status } = error as { status?: unknown };
      if (status === 413) throw tooLarge();
      // A Content-Encoding the parser cannot decode: the body is unreadable, not bad JSON.
      if (status === 415)
        throw new AuthError(
          'unsupported_media_type',
          'Send the body as JSON, uncompressed or with a Content-Encoding of gzip, deflate or br.',
          { headers: { Accept: 'application/json', 'Cache-Control': 'no-store' } },
        );
      // co-body refuses an object with a "__proto__" key (against prototype poisoning).
      if (/forbidden prototype property/.test((error as Error).message))
        throw new AuthError('invalid_request', PROTO_KEY);
      // co-body's strict mode refuses a body whose first character opens no object or array
      // (null, 7, "text", or text that is no JSON at all): no JSON object either way.
      if (/only supports object and array/.test((error as Error).message))
        throw new AuthError('invalid_request', NOT_AN_OBJECT);
      throw new AuthError('invalid_request', 'The request body is not valid JSON.');
    },
  }));

/** Whether the request has a body at all (a chunked one, or a non-zero Content-Length). */
const hasBody = (ctx: Context): boolean =>
  ctx.get('transfer-encoding') !== '' || Number(ctx.get('content-length')) > 0;

/**
 * The routes read JSON only: a form, text or a body without a content type is refused with 415
 * instead of reaching `login` as an empty object (which would look like wrong credentials). Not
 * parsing forms also keeps the one request a cross-site page can post without a preflight out.
 */
export const jsonOnly: Middleware = (ctx, next) => {
  if (hasBody(ctx) && !ctx.is('application/json')) {
    throw new AuthError(
      'unsupported_media_type',
      'Send the body as JSON with `Content-Type: application/json`.',
      { headers: { Accept: 'application/json', 'Cache-Control': 'no-store' } },
    );
  }
  return next();
};

/** The login body: a JSON object (the router cannot know the fields; your `login` checks them). */
export function requireLoginBody(ctx: Context): void {
  const body = ctx.request.body as unknown;
  if (
    !hasBody(ctx) ||
    (ctx.request as { rawBody?: unknown }).rawBody === '' ||
    parsedFromNothing.has(ctx.request) ||
    body === null ||
    typeof body !== 'object'
  )
    throw new AuthError('invalid_request', 'Send the credentials as a JSON object.');
}

/** `refresh_token` from the JSON body: undefined when absent, 400 when not a string or empty. */
export function bodyRefreshToken(ctx: Context): string | undefined {
  const body = ctx.request.body as unknown;
  if (body === null || typeof body !== 'object') return undefined;
  const token = (body as { refresh_token?: unknown }).refresh_token;
  if (token === undefined) return undefined;
  if (typeof token !== 'string')
    throw new AuthError('invalid_request', '`refresh_token` must be a string.');
  if (token.length === 0) throw new AuthError('invalid_request', '`refresh_token` is empty.');
  return token;
}
