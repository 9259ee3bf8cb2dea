import { type SpecData, Validator } from '@seriousme/openapi-schema-validator';
import { afterEach, describe, expect, it } from 'vitest';
import { type Auth, AuthConfigError, createAuth, type OpenApiDocument } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { call, serve } from '../helpers/http.js';
import { webApp } from '../helpers/web.js';

/** auth.openapi(): a valid OpenAPI 3.1 document that describes exactly the routes auth.routes() serves. */

let auth: Auth | undefined;
afterEach(async () => {
  await auth?.close();
  auth = undefined;
});

async function expectValid(document: OpenApiDocument): Promise<void> {
  const validator = new Validator();
  // A round trip through JSON: what a client downloads.
  const result = await validator.validate(JSON.parse(JSON.stringify(document)) as SpecData);
  expect(result.errors ?? []).toEqual([]);
  expect(result.valid).toBe(true);
  expect(validator.version).toBe('3.1');
  // Every $ref points at something.
  expect(() => validator.resolveRefs()).not.toThrow();
}

/** `METHOD /path` of every route the router really serves, with :params as {params}. */
function served(router: ReturnType<Auth['routes']>): string[] {
  const routes: string[] = [];
  for (const layer of router.stack) {
    for (const method of layer.methods) {
      if (method === 'HEAD') continue;
      routes.push(`${method} ${String(layer.path).replace(/:([A-Za-z]+)/g, '{$1}')}`);
    }
  }
  return routes.sort();
}

function documented(document: OpenApiDocument): string[] {
  return Object.entries(document.paths)
    .flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
}

describe('auth.openapi()', () => {
  for (const tokenDelivery of ['json', 'cookie', 'both'] as const) {
    it(`is a valid OpenAPI 3.1 document in ${tokenDelivery} delivery, listing exactly the routes served`, async () => {
      auth = createAuth({ secret: SECRET, tokenDelivery });
      const document = auth.openapi();
      expect(document.openapi).toBe('3.1.0');
      await expectValid(document);
      expect(documented(document)).toEqual(served(auth.routes({ login: () => null })));
    });
  }

  it('is checked by a validator that does refuse a broken document', async () => {
    auth = createAuth({ secret: SECRET });
    const broken = JSON.parse(JSON.stringify(auth.openapi())) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    delete (broken.paths['/auth/login']!.post!.responses['200'] as { description?: string })
      .description;
    const result = await new Validator().validate(broken as unknown as SpecData);
    expect(result.valid).toBe(false);
  });

  it('follows the prefix, info, servers and login schema given', async () => {
    auth = createAuth({ secret: SECRET });
    const document = auth.openapi({
      prefix: '/api/v1/session',
      info: { title: 'Acme auth', version: '2.3.0' },
      servers: [{ url: 'https://api.example.com' }],
      loginSchema: {
        type: 'object',
        properties: { email: { type: 'string', format: 'email' }, code: { type: 'string' } },
        required: ['email', 'code'],
      },
    });
    await expectValid(document);
    expect(documented(document)).toEqual(
      served(auth.routes({ login: () => null, prefix: '/api/v1/session' })),
    );
    expect(document.info).toEqual({ title: 'Acme auth', version: '2.3.0' });
    expect(document.servers).toEqual([{ url: 'https://api.example.com' }]);
    expect(document.components.schemas!.LoginRequest).toMatchObject({
      required: ['email', 'code'],
    });
    // The root prefix too.
    expect(Object.keys(auth.openapi({ prefix: '' }).paths)).toContain('/login');
  });

  it('in json delivery: the bearer pair, no cookies, no CSRF header', () => {
    auth = createAuth({ secret: SECRET, accessTokenTtl: 300 });
    const document = auth.openapi();
    const text = JSON.stringify(document);
    expect(text).not.toContain('Set-Cookie');
    expect(text).not.toContain('x-csrf-token');
    expect(Object.keys(document.components.securitySchemes!)).toEqual(['bearerAuth']);
    const login = document.paths['/auth/login']!.post as {
      responses: Record<string, { content: Record<string, { schema: unknown }> }>;
    };
    expect(login.responses['200']!.content['application/json']!.schema).toEqual({
      $ref: '#/components/schemas/TokenPair',
    });
    expect(text).toContain('"examples":[300]');
  });

  it('in cookie delivery: the configured cookie names and CSRF header, cookie auth as an alternative', () => {
    auth = createAuth({
      secret: SECRET,
      tokenDelivery: 'cookie',
      cookies: { names: { access: 'at', refresh: 'rt', csrf: 'xsrf' } },
      csrf: { header: 'x-xsrf' },
    });
    const document = auth.openapi();
    expect(document.components.securitySchemes!.accessCookie).toMatchObject({
      type: 'apiKey',
      in: 'cookie',
      name: '__Host-at',
    });
    expect(document.components.parameters!.CsrfHeader).toMatchObject({
      name: 'x-xsrf',
      in: 'header',
    });
    expect(document.components.parameters!.RefreshCookie).toMatchObject({
      name: '__Secure-rt',
      in: 'cookie',
    });
    const sessions = document.paths['/auth/sessions']!.get as { security: unknown };
    expect(sessions.security).toEqual([{ bearerAuth: [] }, { accessCookie: [] }]);
    const login = document.paths['/auth/login']!.post as {
      responses: Record<
        string,
        { headers?: Record<string, unknown>; content: Record<string, { schema: unknown }> }
      >;
    };
    expect(login.responses['200']!.headers).toHaveProperty('Set-Cookie');
    expect(login.responses['200']!.content['application/json']!.schema).toEqual({
      $ref: '#/components/schemas/CookieTokens',
    });
    expect(login.responses).toHaveProperty('403');
  });

  it('documents the error codes each route can answer with', () => {
    auth = createAuth({ secret: SECRET });
    const text = JSON.stringify(auth.openapi().paths['/auth/login']);
    for (const code of [
      'invalid_request',
      'body_too_large',
      'unsupported_media_type',
      'invalid_credentials',
      'rate_limited',
    ])
      expect(text).toContain(code);
  });

  it('leaves out info and servers members given as undefined (the document is plain JSON)', () => {
    auth = createAuth({ secret: SECRET });
    const document = auth.openapi({
      info: { title: 'T', version: '1', description: undefined },
      servers: [{ url: 'https://api.example.test', description: undefined }],
    });
    expect(document.info).toStrictEqual({ title: 'T', version: '1' });
    expect(document.servers).toStrictEqual([{ url: 'https://api.example.test' }]);
  });

  it('documents no 409 refresh_conflict, which the built-in strategies never send', () => {
    auth = createAuth({ secret: SECRET, refreshGracePeriod: 10 });
    for (const strategy of ['redis', 'jwt', 'session']) {
      const refresh = auth.openapi({ strategy }).paths['/auth/refresh']!.post as {
        responses: Record<string, unknown>;
      };
      expect(Object.keys(refresh.responses), strategy).not.toContain('409');
      expect(JSON.stringify(refresh), strategy).not.toContain('refresh_conflict');
    }
    // Nor as a value of the shared Error schema.
    expect(JSON.stringify(auth.openapi().components)).not.toContain('refresh_conflict');
  });

  it('refuses bad options with a sentence naming them', () => {
    auth = createAuth({ secret: SECRET });
    expect(() => auth!.openapi({ prefix: 'auth/' })).toThrow(/prefix/);
    expect(() => auth!.openapi({ info: { title: 1 } as never })).toThrow(/info/);
    expect(() => auth!.openapi({ servers: [{}] as never })).toThrow(/servers/);
    expect(() => auth!.openapi({ loginSchema: [] as never })).toThrow(/loginSchema/);
    expect(() => auth!.openapi({ prefx: '/auth' } as never)).toThrow(
      /`openapi.prefx`: is not an option/,
    );
    expect(() => auth!.openapi({ strategy: 'nope' })).toThrow(/`openapi.strategy`: must name/);
    // Called as the app starts, like every factory: the start-up error class.
    expect(() => auth!.openapi({ prefix: 'auth/' })).toThrow(AuthConfigError);
    expect(() => auth!.openapi(null as never)).toThrow(AuthConfigError);
    // A schema that is no JSON deep down: the document would not be plain JSON.
    const cycle: Record<string, unknown> = { type: 'object' };
    cycle.self = cycle;
    for (const loginSchema of [
      { type: 'object', f: () => 1 },
      { type: 'object', properties: { a: { minimum: Number.NaN } } },
      { type: 'object', when: new Date(0) },
      cycle,
    ])
      expect(() => auth!.openapi({ loginSchema: loginSchema as never })).toThrow(/loginSchema/);
  });

  it("copies the login schema: a later change to the caller's object leaves the document as it was", () => {
    auth = createAuth({ secret: SECRET });
    const loginSchema = { type: 'object', properties: { email: { type: 'string' } } };
    const document = auth.openapi({ loginSchema });
    loginSchema.properties.email.type = 'number';
    expect(document.components.schemas!.LoginRequest).toEqual({
      type: 'object',
      properties: { email: { type: 'string' } },
    });
    // A property named __proto__ (as JSON.parse makes one) is kept as a property, and an object
    // without a prototype is JSON too.
    const parsed = JSON.parse(
      '{"type":"object","properties":{"__proto__":{"type":"string"}}}',
    ) as Record<string, never>;
    const properties = auth.openapi({ loginSchema: parsed }).components.schemas!.LoginRequest as {
      properties: object;
    };
    expect(Object.keys(properties.properties)).toEqual(['__proto__']);
    const bare = Object.assign(Object.create(null) as object, { type: 'object' });
    expect(auth.openapi({ loginSchema: bare as never }).components.schemas!.LoginRequest).toEqual({
      type: 'object',
    });
  });

  it('documents the session routes of the stateless strategy as the 501 they answer', async () => {
    auth = createAuth({ secret: SECRET, strategy: 'jwt' });
    const statusesOf = (document: OpenApiDocument, path: string, method: string) =>
      Object.keys(
        (document.paths[path]![method] as { responses: Record<string, unknown> }).responses,
      ).filter((status) => status.startsWith('2') || status === '501');
    const routes: [string, string, string][] = [
      ['/auth/sessions', 'get', 'GET'],
      ['/auth/logout-all', 'post', 'POST'],
      ['/auth/sessions/{id}', 'delete', 'DELETE'],
    ];
    const stateless = auth.openapi();
    await expectValid(stateless);
    for (const [path, method] of routes) {
      expect(statusesOf(stateless, path, method), path).toEqual(['501']);
      // Nor the answers of a route that is served: no store is asked, no session looked up.
      const responses = (stateless.paths[path]![method] as { responses: object }).responses;
      expect(Object.keys(responses), path).not.toContain('503');
      expect(Object.keys(responses), path).not.toContain('404');
    }
    // What the routes really answer.
    const server = await serve(webApp(auth));
    try {
      const login = await call(server.url, '/auth/login', {
        body: { username: 'alice', password: 'wonderland' },
      });
      const token = login.body.access_token as string;
      for (const [path, , method] of routes) {
        const reply = await call(server.url, path.replace('{id}', 'x'), { method, token });
        expect([reply.status, reply.body.error], path).toEqual([501, 'strategy_unsupported']);
      }
    } finally {
      await server.close();
    }
    // The default strategy, named: its success responses, and no 501.
    const stateful = auth.openapi({ strategy: 'redis' });
    expect(statusesOf(stateful, '/auth/sessions', 'get')).toEqual(['200']);
    expect(statusesOf(stateful, '/auth/logout-all', 'post')).toEqual(['200']);
    expect(statusesOf(stateful, '/auth/sessions/{id}', 'delete')).toEqual(['204']);
  });
});
