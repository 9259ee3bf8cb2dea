/**
 * The real setImmediate, as it was when the library loaded: an app whose tests then fake the
 * timers (vitest's and jest's fake timers replace setImmediate, and node:timers' too) must not
 * find its session checks waiting for a fake clock.
 */
const schedule = setImmediate;

/**
 * Calls per command at most: a script call's arguments are spread onto the stack, and one call
 * holds Redis for as long as it runs. A fuller turn sends several commands.
 */
export const MAX_BATCH = 128;

interface Batch<I, R> {
  items: I[];
  resolves: ((value: R) => void)[];
  rejects: ((error: unknown) => void)[];
}

/**
 * Store calls gathered over one turn of the event loop and sent as one command. A client's cost
 * per command (its command object, promise, reply handling and timer) is most of what a session
 * check or a session write costs in the app's process: measured on the 2-core bench machine, 50
 * session checks read by one script took 3.9 µs of Node CPU each, 50 auto-pipelined HGETs 13.8 µs
 * each. A call waits for the rest of its turn, never for a timer: the batch goes out in the
 * turn's check phase (setImmediate), after every request that arrived with it.
 *
 * `many` answers each item's result, or an Error for an item that failed alone. A lone item goes
 * out through `one`, the plain command, with no batching script.
 */
export class TurnBatcher<I, R> {
  private pending: Batch<I, R> | undefined;

  constructor(
    private readonly one: (item: I) => Promise<R>,
    private readonly many: (items: I[]) => Promise<(R | Error)[]>,
  ) {}

  add(item: I): Promise<R> {
    let batch = this.pending;
    if (batch === undefined || batch.items.length >= MAX_BATCH) {
      if (batch !== undefined) this.send(batch);
      batch = { items: [], resolves: [], rejects: [] };
      this.pending = batch;
      schedule(this.flush, batch);
    }
    const { items, resolves, rejects } = batch;
    items.push(item);
    return new Promise((resolve, reject) => {
      resolves.push(resolve);
      rejects.push(reject);
    });
  }

  /** The turn's last batch goes out; one sent early because it was full is already gone. */
  private readonly flush = (batch: Batch<I, R>): void => {
    if (this.pending === batch) this.send(batch);
  };

  private send(batch: Batch<I, R>): void {
    this.pending = undefined;
    const { items, resolves, rejects } = batch;
    if (items.length === 1) {
      this.call(() => this.one(items[0]!)).then(resolves[0], rejects[0]);
      return;
    }
    this.call(() => this.many(items)).then(
      (results) => {
        for (let i = 0; i < resolves.length; i++) {
          const result = results[i];
          if (result instanceof Error) rejects[i]!(result);
          else if (result === undefined) rejects[i]!(new Error('the batch returned no result'));
          else resolves[i]!(result);
        }
      },
      (error: unknown) => {
        for (const reject of rejects) reject(error);
      },
    );
  }

  /** A command that throws instead of rejecting still rejects its batch. */
  private call<T>(command: () => Promise<T>): Promise<T> {
    try {
      return command();
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }
}
