/** A store call that did not settle within the store's timeout. */
export class StoreTimeoutError extends Error {
  constructor(backend: string, ms: number) {
    super(`${backend} did not answer within ${ms} ms`);
    this.name = 'StoreTimeoutError';
  }
}

/**
 * Bounds a store call in time: it rejects with StoreTimeoutError after `ms`, whatever the
 * client's own settings. A call that settles later is ignored (never an unhandled rejection).
 */
export function bounded<T>(call: Promise<T>, ms: number, backend: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeoutError(backend, ms)), ms);
  });
  call.catch(() => {});
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}
