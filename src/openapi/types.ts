import type { WebOptions } from '../config/web.js';

/** A JSON value, as an OpenAPI document is made of. */
export type JsonValue =
  string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** An OpenAPI 3.1 document: plain JSON, ready for `JSON.stringify` or a YAML dumper. */
export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description?: string | undefined };
  servers?: { url: string; description?: string | undefined }[] | undefined;
  paths: { [path: string]: { [method: string]: JsonValue } };
  components: { [section: string]: { [name: string]: JsonValue } };
  [extension: `x-${string}`]: JsonValue;
}

/** The helpers behind the session routes, which a strategy may lack (the routes answer 501). */
export type SessionHelper = 'listSessions' | 'revokeAllSessions' | 'revokeSession';

/** What the document needs from the instance. */
export interface OpenApiSource {
  web: WebOptions;
  accessTokenTtl: number;
  /** The registered strategies' names, and the default one's. */
  strategies: readonly string[];
  defaultStrategy: string;
  /** Whether the strategy named `strategy` has `helper`. */
  supports(strategy: string, helper: SessionHelper): boolean;
}
