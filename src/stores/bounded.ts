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
  // One promise and one timer per call: this runs on every store call of every request.
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreTimeoutError(backend, ms)), ms);
    call.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error as Error);
      },
    );
  });
}
