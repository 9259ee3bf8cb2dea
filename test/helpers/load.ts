import { SCAN_FIELDS } from '../../src/stores/lua.js';
import { coreExpiresAt, PRUNE_AT, unpackSession } from '../../src/stores/record-codec.js';
import { allKeys, type TestRedis } from './auth.js';
import Router from '@koa/router';
import Koa from 'koa';
import { koaBody } from 'koa-body';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Auth, AuthError, authErrors } from '../../src/index.js';
import { decodeSegment } from './forge.js';

/**
 * The app the reliability suites drive: like examples/basic, but `POST /login { id }` logs in any
 * user id, so each virtual client can own a user and the invariants stay per client.
 */
export function idApp(auth: Auth): Koa {
  const app = new Koa();
  const router = new Router();
  const json = koaBody({
    onError: (_error, ctx) => ctx.throw(400, 'The request body is not valid JSON.'),
  });
  const refreshTokenOf = (body: unknown): string => {
    const token = (body as { refresh_token?: unknown } | undefined)?.refresh_token;
    if (typeof token !== 'string')
      throw new AuthError('token_missing', 'Send { "refresh_token": "…" }.');
    return token;
  };
  app.use(authErrors());
  router.post('/login', json, async (ctx) => {
    const id = (ctx.request.body as { id?: unknown } | undefined)?.id;
    if (typeof id !== 'string' && typeof id !== 'number') {
      ctx.throw(400, 'Send { "id": … }.');
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await auth.generateTokens({ id }, { ctx });
  });
  router.post('/refresh', json, async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await auth.refreshTokens(refreshTokenOf(ctx.request.body), { ctx });
  });
  router.post('/logout', json, async (ctx) => {
    await auth.invalidateRefreshToken(refreshTokenOf(ctx.request.body));
    ctx.status = 204;
  });
  router.get('/public', auth.getData(), (ctx) => {
    ctx.body = { user: ctx.state.user?.sub ?? null, error: ctx.state.authError?.code ?? null };
  });
  router.get('/me', auth.requireAuth(), (ctx) => {
    ctx.body = ctx.state.user;
  });
  app.use(router.routes()).use(router.allowedMethods());
  return app;
}

export interface Sent {
  path: string;
  status: number;
  /** Set when the request did not answer within its bound (a hang) or failed at the socket. */
  failure?: string;
  sentAt: number;
  ms: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One HTTP request that must answer within `boundMs`: past it, it is aborted and reported as a hang. */
export async function send(
  base: string,
  path: string,
  options: { body?: unknown; token?: string },
  boundMs: number,
): Promise<Sent> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const sentAt = Date.now();
  try {
    const response = await fetch(base + path, {
      method: options.body === undefined ? 'GET' : 'POST',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.timeout(boundMs),
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    return { path, status: response.status, sentAt, ms: Date.now() - sentAt, body };
  } catch (error) {
    return {
      path,
      status: 0,
      failure: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      sentAt,
      ms: Date.now() - sentAt,
      body: undefined,
    };
  }
}

/** A refresh token some 200 response handed out, and what its client did with it afterwards. */
export interface Issued {
  token: string;
  client: number;
  sub: string;
  sid: string;
  jti: string;
  /** When the request that returned it was sent and answered. */
  sentAt: number;
  receivedAt: number;
  /** Its client sent it to /refresh afterwards (whatever the answer: a 503'd rotation may still have run). */
  presented: boolean;
}

export function issuedFrom(
  token: string,
  client: number,
  sentAt: number,
  receivedAt: number,
): Issued {
  const claims = decodeSegment(token, 1) as { sub: string; sid: string; jti: string };
  return {
    token,
    client,
    sub: claims.sub,
    sid: claims.sid,
    jti: claims.jti,
    sentAt,
    receivedAt,
    presented: false,
  };
}

export interface LoadOptions {
  clients: number;
  /** Per-request bound; a request still open past it counts as a hang. */
  boundMs: number;
  /** Hard cap on requests across all clients. */
  maxRequests: number;
  /** Hard cap on the run's duration. */
  maxMs: number;
}

/**
 * Virtual clients, each with its own user, looping login → (me | refresh | login)… against `base`:
 * a 401 drops the tokens and logs in again, a 503 keeps them and retries shortly after.
 * Everything sent and every refresh token received is recorded for the invariants.
 */
export class Load {
  readonly replies: Sent[] = [];
  readonly issued: Issued[] = [];
  /** Per client: when it last sent a request that got a 200. */
  readonly lastOkSentAt: number[];
  private stopped = false;
  private readonly running: Promise<void>[];
  private readonly started = Date.now();

  constructor(
    private readonly base: string,
    private readonly userOf: (client: number) => string,
    private readonly options: LoadOptions,
  ) {
    this.lastOkSentAt = Array.from({ length: options.clients }, () => 0);
    this.running = Array.from({ length: options.clients }, (_, i) => this.client(i));
  }

  private get done(): boolean {
    return (
      this.stopped ||
      this.replies.length >= this.options.maxRequests ||
      Date.now() - this.started > this.options.maxMs
    );
  }

  private async client(i: number): Promise<void> {
    let held: { access: string; refresh: Issued } | undefined;
    while (!this.done) {
      // Mostly session traffic, plus some fresh logins (a second device) so logins are in flight too.
      const dice = Math.random();
      const op = held === undefined || dice < 0.15 ? 'login' : dice < 0.55 ? 'me' : 'refresh';
      let reply: Sent;
      if (op === 'login') {
        reply = await send(
          this.base,
          '/login',
          { body: { id: this.userOf(i) } },
          this.options.boundMs,
        );
      } else if (op === 'me') {
        reply = await send(this.base, '/me', { token: held!.access }, this.options.boundMs);
      } else {
        held!.refresh.presented = true;
        reply = await send(
          this.base,
          '/refresh',
          { body: { refresh_token: held!.refresh.token } },
          this.options.boundMs,
        );
      }
      this.replies.push(reply);
      if (reply.status === 200) {
        this.lastOkSentAt[i] = reply.sentAt;
        if (op !== 'me') {
          const issued = issuedFrom(
            reply.body.refresh_token,
            i,
            reply.sentAt,
            reply.sentAt + reply.ms,
          );
          this.issued.push(issued);
          held = { access: reply.body.access_token, refresh: issued };
        }
      } else if (reply.status === 401) {
        held = undefined;
      } else if (reply.status === 503) {
        await sleep(20);
      }
      await sleep(5 + Math.random() * 15);
    }
  }

  /** Resolves once every client has had a 200 for a request sent after `since`. */
  async recovered(since: number, maxMs: number): Promise<boolean> {
    const deadline = Date.now() + maxMs;
    while (Date.now() < deadline && !this.done) {
      if (this.lastOkSentAt.every((t) => t > since)) return true;
      await sleep(50);
    }
    return this.lastOkSentAt.every((t) => t > since);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }
}

/** The family's live refresh-token UUID, read from Redis directly (undefined when the family is gone). */
export async function liveJti(
  client: TestRedis,
  prefix: string,
  sub: string,
  sid: string,
): Promise<string | undefined> {
  const core = await client.hgetBuffer(`${prefix}{u:${encodeURIComponent(sub)}}`, sid);
  return core === null ? undefined : unpackSession(sid, core, '')?.jti;
}

/**
 * Store invariants, read from Redis directly: every key under the prefix is a user's session hash
 * and expires (PTTL > 0); every family's record is unexpired and its metadata chunks
 * (`<sid>:<n>`) never outlive it; a hash keeps a prune time (PRUNE_AT) exactly when it is large
 * (SCAN_FIELDS fields or more, the mark counted), and that time is no later than any of its
 * families' expiries.
 */
export async function storeViolations(client: TestRedis, prefix: string): Promise<string[]> {
  const problems: string[] = [];
  const now = Date.now();
  for (const key of await allKeys(client, `${prefix}*`)) {
    const ttl = await client.pttl(key);
    if (!(ttl > 0)) problems.push(`${key} has PTTL ${ttl}`);
    if (!key.startsWith(`${prefix}{u:`) || !key.endsWith('}') || key.split('{').length !== 2)
      problems.push(`${key} is not a session key`);
    const { [PRUNE_AT]: pruneText, ...record } = await client.hgetallBuffer(key);
    const pruneAt = pruneText === undefined ? undefined : Number(pruneText.toString());
    if (pruneAt !== undefined && !Number.isSafeInteger(pruneAt))
      problems.push(`${key}: prune time ${pruneText} is not a time`);
    const fields = Object.keys(record).length + (pruneAt === undefined ? 0 : 1);
    if ((pruneAt !== undefined) !== fields >= SCAN_FIELDS)
      problems.push(`${key}: ${fields} fields, ${pruneAt === undefined ? 'no' : 'a'} prune time`);
    for (const [field, value] of Object.entries(record)) {
      const chunk = /^(.*):\d$/.exec(field);
      if (chunk) {
        if (record[chunk[1]!] === undefined)
          problems.push(`${key}: metadata ${field} outlived its family`);
        continue;
      }
      const expiresAt = coreExpiresAt(value);
      if (!(expiresAt > now)) problems.push(`${key}: family ${field} is stored but expired`);
      if (!(expiresAt <= now + ttl + 1000))
        problems.push(`${key}: family ${field} outlives its key`);
      if (pruneAt !== undefined && expiresAt < pruneAt)
        problems.push(`${key}: family ${field} expires before the hash's prune time`);
    }
  }
  return problems;
}

/** Counts of each status, for failure messages and the report. */
export function statusCounts(replies: Sent[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of replies) {
    const key = r.failure ? `failed(${r.failure})` : `${r.path} ${r.status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
