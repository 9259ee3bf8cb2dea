import type { AuthError } from '../errors.js';
import type { AuthUser } from '../tokens/claims.js';

/** `ctx.state` after `getToken` / `getData`: the user is there only when the token was good. */
export interface AuthState {
  token?: string;
  user?: AuthUser;
  /** Why `getData` left `user` undefined although a token was sent. */
  authError?: AuthError;
}

/** `ctx.state` after `requireAuth`: the user is always there. */
export interface AuthenticatedState {
  token: string;
  user: AuthUser;
}

export interface AuthMiddlewareOptions {
  /** A registered strategy name. @default the registry's default (`redis`) */
  strategy?: string;
  /** Check the session is still live in the store (session strategies). @default the instance's `checkSession` */
  checkSession?: boolean;
  /**
   * With cookie delivery: demand CSRF proof on unsafe methods when the token came from the cookie.
   * @default the instance's `csrf.requireAuth` (true)
   */
  csrf?: boolean;
}
