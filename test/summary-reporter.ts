import { appendFileSync, mkdirSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

/** Prints one plain closing line, `tests: N passed, N failed, N skipped`, that any CI log reader understands. */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      if (module.state() === 'failed' && module.children.size === 0) failed++;
    }
    const line = `tests: ${passed} passed, ${failed} failed, ${skipped} skipped`;
    process.stdout.write(`\n${line}\n`);
    // npm test runs vitest twice (a parallel pass, then the timing suites one file at a time);
    // .ci/run adds up the lines of both and prints the total as the very last line of the log.
    mkdirSync('.test-results', { recursive: true });
    appendFileSync('.test-results/summary.txt', `${line}\n`);
  }
}
