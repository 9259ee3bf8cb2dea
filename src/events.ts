/** Audit events and their payloads. Ids are strings; ip and user agent when the call had a ctx. */
export interface AuthEventMap {
  login: { userId: string; sessionId?: string; ip?: string; userAgent?: string };
  /** `concurrent`: answered within `refreshGracePeriod` with the session's live refresh token. */
  /**
   * `auth.routes()` refused a login: wrong credentials, or the rate limiter said wait. `name` is
   * the user id or name tried (see RoutesOptions.loginName); count these to slow down guessing.
   */
  login_failed: {
    reason: 'invalid_credentials' | 'rate_limited';
    name?: string;
    ip?: string;
    userAgent?: string;
  };
  refresh: {
    userId: string;
    sessionId: string;
    concurrent?: true;
    ip?: string;
    userAgent?: string;
  };
  logout: { userId: string; sessionId: string };
  revoke_all: { userId: string; count: number };
  /** A rotated refresh token came back: token theft is suspected and its family was revoked. */
  refresh_reused: { userId: string; sessionId: string; ip?: string; userAgent?: string };
  store_unavailable: { operation: string; error: unknown };
}

export type AuthEventName = keyof AuthEventMap;
export type AuthEventListener<E extends AuthEventName> = (payload: AuthEventMap[E]) => void;

/**
 * A tiny typed emitter. A listener that throws (or rejects) never breaks the request that
 * emitted: its error becomes a process warning.
 */
export class AuthEvents {
  private readonly listeners = new Map<AuthEventName, Set<(payload: never) => void>>();

  on<E extends AuthEventName>(event: E, listener: AuthEventListener<E>): this {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return this;
  }

  off<E extends AuthEventName>(event: E, listener: AuthEventListener<E>): this {
    this.listeners.get(event)?.delete(listener as (payload: never) => void);
    return this;
  }

  emit<E extends AuthEventName>(event: E, payload: AuthEventMap[E]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of set) {
      try {
        const result: unknown = (listener as AuthEventListener<E>)(payload);
        if (result instanceof Promise) result.catch((error: unknown) => warnListener(event, error));
      } catch (error) {
        warnListener(event, error);
      }
    }
  }
}

function warnListener(event: string, error: unknown): void {
  process.emitWarning(
    `a "${event}" listener threw: ${error instanceof Error ? error.message : String(error)}`,
    {
      code: 'KOA_JWT_REDIS_LISTENER',
    },
  );
}
