import type { Redis } from 'ioredis';

/**
 * A MONITOR connection to `base`'s server, once it is monitoring. Not `base.monitor()`: ioredis
 * switches a connection to monitoring only after MONITOR's OK is handled, so a line Redis sends
 * right behind that OK (another client's command, such as a new client's INFO) finds no command
 * waiting, and `monitor()` rejects with "Command queue state error" (seen in CI). Such a line
 * comes from before monitoring began and no test needs it: here it is an ignored 'error'.
 */
export function monitorOf(base: Redis): Promise<Redis> {
  const monitor = base.duplicate({ monitor: true, lazyConnect: false });
  monitor.on('error', () => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      monitor.disconnect();
      reject(new Error('MONITOR did not start within 10 s'));
    }, 10_000);
    monitor.once('monitoring', () => {
      clearTimeout(timer);
      resolve(monitor);
    });
  });
}
