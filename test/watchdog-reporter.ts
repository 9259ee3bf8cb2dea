import type { Reporter, TestCase, TestModule } from 'vitest/node';

const QUIET_MS = 3 * 60_000;

/**
 * A run that hangs should say where. When no test file has ended for three minutes, this prints
 * what is still running: each file with its current test and for how long, or that the global
 * setup (the Redis servers and the Cluster) has not finished. Silent on a run that keeps moving.
 */
export default class WatchdogReporter implements Reporter {
  private readonly running = new Map<TestModule, { since: number; test?: TestCase; at?: number }>();
  private lastProgress = Date.now();
  private started = false;
  private timer: NodeJS.Timeout | undefined;

  onTestRunStart(): void {
    this.lastProgress = Date.now();
    this.timer = setInterval(() => this.check(), 60_000);
    this.timer.unref();
  }

  onTestModuleStart(module: TestModule): void {
    this.started = true;
    this.running.set(module, { since: Date.now() });
  }

  onTestCaseReady(test: TestCase): void {
    const entry = this.running.get(test.module);
    if (entry) Object.assign(entry, { test, at: Date.now() });
  }

  onTestModuleEnd(module: TestModule): void {
    this.running.delete(module);
    this.lastProgress = Date.now();
  }

  onTestRunEnd(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const now = Date.now();
    if (now - this.lastProgress < QUIET_MS) return;
    const secs = (ms: number) => `${Math.round(ms / 1000)} s`;
    const lines = [...this.running].map(([module, { since, test, at }]) => {
      const where = test ? ` › ${test.fullName} (${secs(now - at!)})` : ' (collecting)';
      return `  ${module.project.name}: ${module.moduleId}, ${secs(now - since)}${where}`;
    });
    if (!this.started) lines.push('  the global setup has not finished');
    process.stdout.write(
      `\nwatchdog: no test file ended in the last ${secs(now - this.lastProgress)}; running:\n${lines.join('\n')}\n`,
    );
  }
}
