import { setTimeout as sleep } from 'node:timers/promises';
import { type Issued, issuedFrom, liveJti, type LoadOptions, type Sent, send } from './load.js';
import type { Auth } from '../../src/index.js';
import type { TestRedis } from './auth.js';

export type Op = 'login' | 'me' | 'refresh' | 'logout';

export interface OpReply extends Sent {
  op: Op;
}

/** The same bounds as the plain load: clients, per-request bound, request and time caps. */
export type FailoverLoadOptions = LoadOptions;

/**
 * Virtual clients, each with its own user, looping login → (me | refresh | logout | login)… against
 * an `idApp`. It records what the app answered as done, for the audit: refresh tokens it answered
 * as rotated (a 200 to /refresh) and sessions it answered as ended (a 204 to /logout, a 401
 * `refresh_reused`). A 503 keeps the tokens and retries shortly after.
 */
export class FailoverLoad {
  readonly replies: OpReply[] = [];
  readonly issued: Issued[] = [];
  /** Refresh tokens the app answered as rotated: each must stay refused forever. */
  readonly rotated: Issued[] = [];
  /** Sessions the app answered as ended: each must stay ended forever. */
  readonly ended: { sub: string; sid: string; at: number }[] = [];
  /** Which client sent each reply. */
  readonly clientOf = new Map<OpReply, number>();
  /** When this process ran late while the load ran (see {@link StallRecorder}). */
  readonly stalls = new StallRecorder();
  private stopped = false;
  private readonly running: Promise<void>[];
  private readonly started = Date.now();

  constructor(
    private readonly base: string,
    private readonly userOf: (client: number) => string,
    private readonly options: FailoverLoadOptions,
  ) {
    this.running = Array.from({ length: options.clients }, (_, i) => this.client(i));
  }

  private get done(): boolean {
    return (
      this.stopped ||
      this.replies.length >= this.options.maxRequests ||
      Date.now() - this.started > this.options.maxMs
    );
  }

  /** Requests answered with a status, per operation. */
  count(op: Op, status: number): number {
    return this.replies.filter((r) => r.op === op && r.status === status).length;
  }

  private async client(i: number): Promise<void> {
    let held: { access: string; refresh: Issued } | undefined;
    const bound = this.options.boundMs;
    while (!this.done) {
      const dice = Math.random();
      const op: Op =
        held === undefined || dice < 0.1
          ? 'login'
          : dice < 0.4
            ? 'me'
            : dice < 0.85
              ? 'refresh'
              : 'logout';
      let reply: Sent;
      if (op === 'login') {
        reply = await send(this.base, '/login', { body: { id: this.userOf(i) } }, bound);
      } else if (op === 'me') {
        reply = await send(this.base, '/me', { token: held!.access }, bound);
      } else {
        held!.refresh.presented = true;
        reply = await send(
          this.base,
          `/${op}`,
          { body: { refresh_token: held!.refresh.token } },
          bound,
        );
      }
      const recorded = { ...reply, op };
      this.replies.push(recorded);
      this.clientOf.set(recorded, i);
      const answeredAt = reply.sentAt + reply.ms;
      if (reply.status === 200 && op !== 'me') {
        if (op === 'refresh') this.rotated.push(held!.refresh);
        const issued = issuedFrom(reply.body.refresh_token, i, reply.sentAt, answeredAt);
        this.issued.push(issued);
        held = { access: reply.body.access_token, refresh: issued };
      } else if (reply.status === 204 && op === 'logout') {
        this.ended.push({ sub: held!.refresh.sub, sid: held!.refresh.sid, at: answeredAt });
        held = undefined;
      } else if (reply.status === 401) {
        if (reply.body?.error === 'refresh_reused')
          this.ended.push({ sub: held!.refresh.sub, sid: held!.refresh.sid, at: answeredAt });
        held = undefined;
      } else if (reply.status === 503) {
        await sleep(20);
      }
      await sleep(5 + Math.random() * 15);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
    this.stalls.stop();
  }
}

/** A stretch of wall-clock time in which this process's event loop did not run. */
export interface Stall {
  from: number;
  to: number;
}

/**
 * Records when this process's event loop ran at least `minMs` late (a machine that did not run
 * it, a long garbage collection). The app, its store client and the load's clients share the
 * loop, so a reply measured across such a stretch is late by it whatever the app did: the
 * library's own timers fire late too. Stalls are reported with each test's line, so a test
 * process that blocks itself still shows.
 */
export class StallRecorder {
  readonly stalls: Stall[] = [];
  private last = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly tickMs = 10,
    private readonly minMs = 50,
  ) {
    this.timer = setInterval(() => {
      const now = Date.now();
      const late = now - this.last - this.tickMs;
      if (late >= this.minMs) this.stalls.push({ from: now - late, to: now });
      this.last = now;
    }, this.tickMs);
    this.timer.unref();
  }

  /** How much of [from, to] this process spent stalled. */
  within(from: number, to: number): number {
    let ms = 0;
    for (const s of this.stalls) ms += Math.max(0, Math.min(to, s.to) - Math.max(from, s.from));
    return ms;
  }

  /** For a test's report line: how many stalls, and the longest. */
  toString(): string {
    const longest = Math.max(0, ...this.stalls.map((s) => s.to - s.from));
    return `${this.stalls.length} stalls of this process >= ${this.minMs} ms (longest ${longest} ms)`;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * Logs every client's user in, refreshes and logs out once, one at a time, before the load: the
 * scripts are then loaded on every node and the code paths compiled, so the load measures the
 * failover, not a cold start.
 */
export async function warmUp(base: string, users: string[]): Promise<void> {
  for (const id of users) {
    const login = await send(base, '/login', { body: { id } }, 5000);
    if (login.status !== 200) throw new Error(`warm-up login of ${id}: ${login.status}`);
    const refresh = await send(
      base,
      '/refresh',
      { body: { refresh_token: login.body.refresh_token } },
      5000,
    );
    if (refresh.status !== 200) throw new Error(`warm-up refresh of ${id}: ${refresh.status}`);
    await send(base, '/logout', { body: { refresh_token: refresh.body.refresh_token } }, 5000);
  }
}

/**
 * What a failover undid, read from Redis directly (from the current master): refresh tokens the app
 * answered as rotated that are live again, and sessions it answered as ended that are live again.
 */
export async function resurrections(
  admin: TestRedis,
  prefix: string,
  load: FailoverLoad,
): Promise<string[]> {
  const found: string[] = [];
  for (const t of load.rotated) {
    if ((await liveJti(admin, prefix, t.sub, t.sid)) === t.jti)
      found.push(
        `rotated refresh token of ${t.sub}/${t.sid} (answered at ${t.receivedAt}) is live again`,
      );
  }
  for (const e of load.ended) {
    if ((await liveJti(admin, prefix, e.sub, e.sid)) !== undefined)
      found.push(`session ${e.sub}/${e.sid} ended at ${e.at} is live again`);
  }
  return found;
}

/** The status an `idApp`'s `/me` at `base` answers for `accessToken`. */
export async function meStatus(base: string, accessToken: string): Promise<number> {
  const { status } = await fetch(`${base}/me`, {
    headers: { authorization: `Bearer ${accessToken}` },
  });
  return status;
}

/**
 * A revocation this app cannot see: `other` (another instance of the app, on the other side of
 * a split) ends `userId`'s one session, then this app's `/me` at `base` is asked with the
 * session's access token every 50 ms until it refuses it. Returns how long that took after the
 * revocation resolved and how many answers still accepted the token (503s are neither).
 */
export async function refusedAfterRevocation(
  other: Auth,
  userId: string,
  base: string,
  accessToken: string,
): Promise<{ ms: number; accepted: number }> {
  const ended = await other.revokeAllSessions(userId);
  if (ended !== 1) throw new Error(`revokeAllSessions(${userId}) ended ${ended} sessions, not 1`);
  const revokedAt = Date.now();
  let accepted = 0;
  while (Date.now() - revokedAt < 60_000) {
    const status = await meStatus(base, accessToken);
    if (status === 401) return { ms: Date.now() - revokedAt, accepted };
    if (status === 200) accepted++;
    await sleep(50);
  }
  throw new Error(`the revoked session was still not refused 60 s later (${accepted} accepted)`);
}

/**
 * The failures of the answers' contract in a load's replies: a status outside
 * 200/204/401/409/503, a hang, a wait past `maxMs` (less the time the load saw this process
 * stalled meanwhile), a 503 without store_unavailable.
 */
export function contractBreaches(load: FailoverLoad, maxMs: number): string[] {
  const bad: string[] = [];
  for (const r of load.replies) {
    const where = `${r.op} sent at ${r.sentAt}`;
    if (r.failure !== undefined) bad.push(`${where}: ${r.failure}`);
    else if (![200, 204, 401, 409, 503].includes(r.status))
      bad.push(`${where}: status ${r.status}`);
    else if (r.status === 503 && r.body?.error !== 'store_unavailable')
      bad.push(`${where}: 503 ${JSON.stringify(r.body)}`);
    // Time this process did not run is not the app's: its answer could not be sent, or read.
    const stalled = load.stalls.within(r.sentAt, r.sentAt + r.ms);
    if (r.ms - stalled > maxMs)
      bad.push(
        `${where}: answered in ${r.ms} ms${stalled ? ` (${stalled} ms of it with this process stalled)` : ''}`,
      );
  }
  return bad;
}

/** Counts of each op and status, for failure messages and the report. */
export function opCounts(replies: OpReply[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of replies) {
    const key = r.failure ? `${r.op} failed` : `${r.op} ${r.status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
