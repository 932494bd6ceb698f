// Type-checks every dashboard JSON file against @grafana/schema's Dashboard type: each file
// becomes an object literal assigned to a `Dashboard` constant, so TypeScript checks the value
// types (string unions, numbers) and flags unknown properties (excess-property checks), then
// `tsc --noEmit` runs. Usage: node check.mjs DASHBOARD_DIR. Exit status 1 on any type error.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = process.argv[2];
if (!dir) throw new Error('usage: node check.mjs DASHBOARD_DIR');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) throw new Error(`no dashboards in ${dir}`);

// Inside node_modules so that '@grafana/schema' resolves; removed afterwards.
const work = fs.mkdtempSync(path.join(here, 'node_modules', '.check-'));
try {
  const lines = ["import type { Dashboard } from '@grafana/schema';"];
  files.forEach((file, i) => {
    const json = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    lines.push(`// ${file}`);
    lines.push(`export const dashboard${i}: Dashboard = ${JSON.stringify(json, null, 1)};`);
  });
  fs.writeFileSync(path.join(work, 'dashboards.ts'), lines.join('\n') + '\n');
  fs.writeFileSync(path.join(work, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext',
      target: 'es2020', skipLibCheck: true,
    },
    files: ['dashboards.ts'],
  }));
  const tsc = path.join(here, 'node_modules', '.bin', 'tsc');
  try {
    execFileSync(tsc, ['-p', work], { stdio: 'inherit' });
  } catch {
    console.error(`dashboards do not type-check (files in order: ${files.join(', ')})`);
    process.exitCode = 1;
  }
  if (!process.exitCode) console.log(`${files.length} dashboards type-check as @grafana/schema Dashboard`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
