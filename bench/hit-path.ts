/**
 * The session-cached GET /me path alone, in one process, without HTTP: requireAuth()'s answer
 * memo against the floor (a Map lookup by the raw header and a copy of the claims), both over the
 * same distinct tokens with a fresh header string per call, as a request parser makes. It sets
 * apart what the middleware costs from what the HTTP runs add and from their noise.
 */
import { setImmediate as turn } from 'node:timers/promises';
import type { Next } from 'koa';
import { createAuth } from 'koa-jwt-redis';
import { median } from './median.js';
import { SECRET } from './secret.js';

/** The small working set: this many tokens stay in the CPU's caches between their turns. */
export const SMALL_WORKING_SET = 200;

export interface HitPathResult {
  label: string;
  /** Median over rounds of the ns per call, every token in turn. */
  nsPerCall: number;
  /** The same over a small working set: the first `small` tokens, in turn, as many calls. */
  nsPerCallSmall: number;
}

/** What the middlewares read of a request here: the header and the state. */
interface FakeContext {
  method: string;
  headers: { authorization?: string };
  state: Record<string, unknown>;
}

type Step = (ctx: FakeContext, next: Next) => unknown;

export async function hitPathBench(
  redisUrl: string,
  users: number,
  rounds = 7,
  small = SMALL_WORKING_SET,
): Promise<HitPathResult[]> {
  const auth = createAuth({
    secret: SECRET,
    redis: redisUrl,
    keyPrefix: 'bench:hit-path:',
    accessTokenTtl: 7200,
    refreshTokenTtl: 10_800,
    sessionCache: true,
    // As the HTTP target: every token fits in the young generation (half the size).
    verifyCacheSize: 50_000,
  });
  try {
    const headers: string[] = [];
    for (let i = 0; i < users; i += 1000) {
      const pairs = await Promise.all(
        Array.from({ length: Math.min(1000, users - i) }, (_, j) =>
          auth.generateTokens({ id: `hit-${i + j}` }, { ip: '127.0.0.1', userAgent: 'bench' }),
        ),
      );
      for (const pair of pairs) headers.push(`Bearer ${pair.access_token}`);
    }
    const claims = new Map(
      headers.map((header) => {
        const payload = header.slice(7).split('.')[1]!;
        return [header, JSON.parse(Buffer.from(payload, 'base64url').toString()) as object];
      }),
    );
    const contexts: FakeContext[] = headers.map((authorization) => ({
      method: 'GET',
      headers: { authorization },
      state: {},
    }));
    const next: Next = () => Promise.resolve();
    const requireAuth = auth.requireAuth() as unknown as Step;
    const steps: [string, Step][] = [
      [
        'a middleware that only reads the header and sets ctx.state.user (what any adds)',
        (ctx, nxt) => {
          ctx.state.user = { header: ctx.headers.authorization };
          return nxt();
        },
      ],
      [
        'floor: a Map lookup by the header and a copy of the claims',
        (ctx, nxt) => {
          const user = claims.get(ctx.headers.authorization ?? '');
          if (user === undefined) throw new Error('floor: unknown header');
          ctx.state.user = { ...user };
          return nxt();
        },
      ],
      ['requireAuth() with sessionCache, a repeat request (the answer memo)', requireAuth],
    ];
    // One pass of a call per token, cycling through the first `distinct` tokens: fresh, flat
    // header strings (as a request parser makes), a turn of the event loop every 500 calls (the
    // session cache's feed must be heard from, as between requests); only the calls count. Over
    // 200 tokens every entry stays in the CPU's caches; over all of them the entries come from
    // memory, as with 20,000 users taking turns.
    const pass = async (step: Step, distinct = contexts.length): Promise<number> => {
      let ns = 0n;
      for (let from = 0; from < contexts.length; from += 500) {
        const to = Math.min(contexts.length, from + 500);
        for (let i = from; i < to; i++) {
          const ctx = contexts[i]!;
          ctx.headers.authorization = Buffer.from(headers[i % distinct]!, 'latin1').toString(
            'latin1',
          );
          ctx.state = {};
        }
        const started = process.hrtime.bigint();
        for (let i = from; i < to; i++) {
          const answer = step(contexts[i]!, next);
          if (answer instanceof Promise) await answer;
        }
        ns += process.hrtime.bigint() - started;
        await turn();
      }
      return Number(ns) / contexts.length;
    };
    // The first passes read the sessions from Redis and fill the caches; they are not counted.
    for (const [, step] of steps) for (let i = 0; i < 3; i++) await pass(step);
    const times = steps.map((): number[] => []);
    const timesSmall = steps.map((): number[] => []);
    const fewer = Math.min(small, contexts.length);
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? [...steps.keys()] : [...steps.keys()].reverse();
      for (const i of order) {
        times[i]!.push(await pass(steps[i]![1]));
        timesSmall[i]!.push(await pass(steps[i]![1], fewer));
      }
    }
    for (const ctx of contexts)
      if ((ctx.state.user as { sub?: string } | undefined)?.sub === undefined)
        throw new Error('hit path: a request was not authenticated');
    return steps.map(([label], i) => ({
      label,
      nsPerCall: median(times[i]!),
      nsPerCallSmall: median(timesSmall[i]!),
    }));
  } finally {
    await auth.close();
  }
}
