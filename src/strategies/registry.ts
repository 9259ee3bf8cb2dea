import { shown } from '../config/validate.js';
import type { TokenService } from '../tokens/token-service.js';
import type { StrategyContext, StrategyFactory, TokenStrategy } from './types.js';

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Named token strategies of one Auth instance. Built in: `redis` (the default) and `jwt`.
 * A factory is called once with the instance's context, so custom strategies can reuse its keys
 * and store; `context.tokens` is bound to the strategy's name (see TokenService.forStrategy).
 */
export class StrategyRegistry {
  private readonly strategies = new Map<string, TokenStrategy>();
  private defaultName = '';

  constructor(private readonly context: StrategyContext) {}

  /** Adds a strategy (an object, or a factory given the instance's keys and store). A taken name throws. */
  register(name: string, strategy: TokenStrategy | StrategyFactory): this {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new TypeError(
        `koa-jwt-redis: a strategy name must be 1-64 letters, digits, "_", "." or "-" (got ${shown(name)})`,
      );
    }
    if (this.strategies.has(name)) {
      throw new TypeError(
        `koa-jwt-redis: a strategy named "${name}" is already registered; pick another name`,
      );
    }
    // Each factory gets the keys bound to its name: its tokens carry `stg: name`, and it refuses
    // every token that does not, so no strategy accepts another's tokens.
    const built =
      typeof strategy === 'function'
        ? strategy({ ...this.context, tokens: this.context.tokens.forStrategy(name) })
        : strategy;
    if (!built || typeof built.readToken !== 'function' || typeof built.writeToken !== 'function') {
      throw new TypeError(
        `koa-jwt-redis: strategy "${name}" must implement readToken(token, options) and writeToken(user, kind)`,
      );
    }
    this.strategies.set(name, built);
    if (!this.defaultName) this.defaultName = name;
    return this;
  }

  /** The strategy registered under `name`; throws when there is none. */
  get(name: string): TokenStrategy {
    if (typeof name !== 'string')
      throw new TypeError(`koa-jwt-redis: a strategy name must be a string (got ${shown(name)})`);
    const strategy = this.strategies.get(name);
    if (!strategy) {
      throw new TypeError(
        `koa-jwt-redis: no strategy named "${name}"; registered: ${this.names().join(', ')}`,
      );
    }
    return strategy;
  }

  /**
   * @internal Not part of the API: the keys bound to `name`, as its factory receives them
   * (`auth.routes()` reads an expired access token with them on logout).
   */
  tokensFor(name: string): TokenService {
    return this.context.tokens.forStrategy(name);
  }

  /** Makes `name` the strategy used when a middleware or helper names none. */
  setDefault(name: string): this {
    this.get(name);
    this.defaultName = name;
    return this;
  }

  get defaultStrategyName(): string {
    return this.defaultName;
  }

  names(): string[] {
    return [...this.strategies.keys()];
  }
}
