/**
 * `tsx bench/profile-summary.ts <file.cpuprofile | bench/.tmp/profiles/<target>> [top]`: self time
 * per function and per package, from the profiles `BENCH_PROFILE=1 npm run bench` writes (one per
 * measured run; a folder sums its target's rounds).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

export function summarize(files: string[], top = 15): string {
  const self = new Map<string, number>();
  const packages = new Map<string, number>();
  let total = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    profile.samples.forEach((id, i) => {
      const dt = profile.timeDeltas[i] ?? 0;
      const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
      // Time waiting between runs says nothing about the request path.
      if (functionName === '(idle)') return;
      const where = url
        .replace(/^file:\/\//, '')
        .replace(/.*node_modules\//, '')
        .replace(/.*\/(src|bench)\//, '$1/');
      const name =
        `${functionName || '(anonymous)'} ${where ? `${where}:${lineNumber + 1}` : ''}`.trim();
      self.set(name, (self.get(name) ?? 0) + dt);
      const pkg = !url
        ? functionName
        : url.startsWith('node:')
          ? 'node internals'
          : (/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? where.split('/')[0]!);
      packages.set(pkg, (packages.get(pkg) ?? 0) + dt);
      total += dt;
    });
  }
  const pct = (t: number) => `${((100 * t) / total).toFixed(1).padStart(5)} %`;
  const rows = (map: Map<string, number>) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, t]) => `${pct(t)}  ${name}`);
  return [
    `self time by package (${(total / 1e6).toFixed(1)} s busy):`,
    ...rows(packages),
    '',
    'self time by function:',
    ...rows(self),
  ].join('\n');
}

/** A profile, or every profile in a folder (a target's rounds). */
function profiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(path, f));
}

if (process.argv[2])
  process.stdout.write(`${summarize(profiles(process.argv[2]), Number(process.argv[3] ?? 15))}\n`);
