import Router from '@koa/router';
import Koa from 'koa';
import type { Auth, RoutesOptions } from '../../src/index.js';

/** The users the web tests log in as; a real app checks a password hash. */
export const USERS = new Map([
  ['alice', { id: 1, name: 'alice', password: 'wonderland' }],
  ['bob', { id: 2, name: 'bob', password: 'builder' }],
]);

export function checkPassword(body: unknown): { id: number; name: string } | null {
  const { username, password } = (body ?? {}) as { username?: unknown; password?: unknown };
  const user = typeof username === 'string' ? USERS.get(username) : undefined;
  return user && user.password === password ? { id: user.id, name: user.name } : null;
}

/** A Koa app with auth.routes() and a few app routes behind requireAuth / getData. */
export function webApp(auth: Auth, options: Partial<RoutesOptions> = {}): Koa {
  const app = new Koa();
  const router = auth.routes({ login: (ctx) => checkPassword(ctx.request.body), ...options });
  app.use(router.routes()).use(router.allowedMethods());
  const api = new Router();
  api.get('/me', auth.requireAuth(), (ctx) => {
    ctx.body = ctx.state.user;
  });
  api.post('/notes', auth.requireAuth(), (ctx) => {
    ctx.body = { saved: true };
  });
  api.post('/notes-unchecked', auth.requireAuth({ csrf: false }), (ctx) => {
    ctx.body = { saved: true };
  });
  // authorize() after getData(): the reason getData recorded decides the answer (csrf_failed is 403).
  api.post('/authorized-note', auth.getData(), auth.authorize({ check: () => true }), (ctx) => {
    ctx.body = { saved: true };
  });
  api.post('/whoami', auth.getData(), (ctx) => {
    ctx.body = { user: ctx.state.user?.sub ?? null, error: ctx.state.authError?.code ?? null };
  });
  app.use(api.routes());
  return app;
}

/** Set-Cookie lines of a reply, by cookie name. */
export function setCookies(
  headers: Headers,
): Map<string, { value: string; attributes: string[]; raw: string }> {
  const out = new Map<string, { value: string; attributes: string[]; raw: string }>();
  for (const raw of headers.getSetCookie()) {
    const [pair, ...attributes] = raw.split(';').map((s) => s.trim());
    const eq = pair!.indexOf('=');
    // The first of a name: the refresh cookie comes at its refresh route's Path first, then at the
    // logout route's (refreshPaths lists both; a test of the second reads getSetCookie()).
    const name = pair!.slice(0, eq);
    if (!out.has(name)) out.set(name, { value: pair!.slice(eq + 1), attributes, raw });
  }
  return out;
}

/** A minimal cookie jar: remembers values (ignoring Path) and forgets cookies set with Max-Age=0. */
export class Jar {
  readonly values = new Map<string, string>();

  take(headers: Headers): void {
    for (const [name, { value, attributes }] of setCookies(headers)) {
      if (attributes.includes('Max-Age=0')) this.values.delete(name);
      else this.values.set(name, value);
    }
  }

  header(only?: string[]): string {
    return [...this.values]
      .filter(([name]) => !only || only.includes(name))
      .map(([name, value]) => `${name}=${value}`)
      .join('; ');
  }
}
