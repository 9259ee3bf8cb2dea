import type { AuthError } from '../errors.js';
import type { AuthUser } from '../tokens/claims.js';

/** `ctx.state` after `getToken` / `getData`: the user is there only when the token was good. */
export interface AuthState {
  token?: string | undefined;
  user?: AuthUser | undefined;
  /** Why `getData` left `user` undefined although a token was sent. */
  authError?: AuthError | undefined;
}

/** `ctx.state` after `requireAuth`: the user is always there. */
export interface AuthenticatedState {
  token: string;
  user: AuthUser;
}

export interface AuthMiddlewareOptions {
  /** A registered strategy name. @default the registry's default (`redis`) */
  strategy?: string | undefined;
  /** Check the session is still live in the store (session strategies). @default the instance's `checkSession` */
  checkSession?: boolean | undefined;
  /**
   * With cookie delivery: demand CSRF proof on unsafe methods when the token came from the cookie.
   * @default the instance's `csrf.requireAuth` (true)
   */
  csrf?: boolean | undefined;
}
