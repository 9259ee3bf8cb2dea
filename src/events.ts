import { warn } from './config/validate.js';

/** Audit events and their payloads. Ids are strings; ip and user agent when the call had a ctx. */
export interface AuthEventMap {
  login: {
    userId: string;
    sessionId?: string | undefined;
    ip?: string | undefined;
    userAgent?: string | undefined;
  };
  /** `concurrent`: answered within `refreshGracePeriod` with the session's live refresh token. */
  /**
   * `auth.routes()` refused a login: wrong credentials, or the rate limiter said wait. `name` is
   * the user id or name tried (see RoutesOptions.loginName); count these to slow down guessing.
   */
  login_failed: {
    reason: 'invalid_credentials' | 'rate_limited';
    name?: string | undefined;
    ip?: string | undefined;
    userAgent?: string | undefined;
  };
  refresh: {
    userId: string;
    sessionId: string;
    concurrent?: true | undefined;
    ip?: string | undefined;
    userAgent?: string | undefined;
  };
  logout: { userId: string; sessionId: string };
  revoke_all: { userId: string; count: number };
  /** A rotated refresh token came back: token theft is suspected and its family was revoked. */
  refresh_reused: {
    userId: string;
    sessionId: string;
    ip?: string | undefined;
    userAgent?: string | undefined;
  };
  store_unavailable: { operation: string; error: unknown };
}

export type AuthEventName = keyof AuthEventMap;
export type AuthEventListener<E extends AuthEventName> = (payload: AuthEventMap[E]) => void;

type Listener = (payload: never) => unknown;

/**
 * The one typed event emitter of the library, for an instance's audit events and a verifier's
 * JWKS events alike. A listener that throws (or rejects) never breaks the request that emitted:
 * its error becomes a process warning.
 */
export class Emitter<M extends object> {
  private readonly listeners = new Map<keyof M, Set<Listener>>();

  on<E extends keyof M>(event: E, listener: (payload: M[E]) => void): this {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener);
    return this;
  }

  off<E extends keyof M>(event: E, listener: (payload: M[E]) => void): this {
    this.listeners.get(event)?.delete(listener as Listener);
    return this;
  }

  emit<E extends keyof M>(event: E, payload: M[E]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of set) {
      try {
        const result = (listener as (payload: M[E]) => unknown)(payload);
        if (result instanceof Promise)
          result.catch((error: unknown) => warnListener(String(event), error));
      } catch (error) {
        warnListener(String(event), error);
      }
    }
  }
}

/** The emitter of an Auth instance's audit events. */
export type AuthEvents = Emitter<AuthEventMap>;

function warnListener(event: string, error: unknown): void {
  warn(
    'KOA_JWT_REDIS_LISTENER',
    `a "${event}" listener threw: ${error instanceof Error ? error.message : String(error)}`,
  );
}
