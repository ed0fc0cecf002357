// Parse an AsyncAPI document with the official parser and report what it finds.
//
//   node tests/tools/asyncapi/validate.mjs docs/asyncapi.json
//
// Exit 0: no error-severity finding (warnings and hints are printed, not fatal: the parser's
// style rules are advice). Exit 1: at least one error, each printed with its JSON path.
// Exit 2: bad usage or an unreadable file. tests/unit/test_published_contracts.py runs it.
import { readFile } from 'node:fs/promises';
import { DiagnosticSeverity, Parser } from '@asyncapi/parser';

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

const [path, ...rest] = process.argv.slice(2);
if (!path || rest.length > 0) {
  console.error('usage: node validate.mjs DOCUMENT.json');
  process.exit(2);
}

let text;
try {
  text = await readFile(path, 'utf8');
} catch (err) {
  console.error(`cannot read ${path}: ${err.message}`);
  process.exit(2);
}

const { document, diagnostics } = await new Parser().parse(text, { source: path });
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
for (const d of diagnostics) {
  const where = d.path.length > 0 ? d.path.join('.') : '<root>';
  console.log(`${SEVERITY[d.severity] ?? d.severity}\t${d.code}\t${where}\t${d.message}`);
}
if (errors.length > 0 || document === undefined) {
  console.log(`${path}: ${errors.length} error(s); not a valid AsyncAPI document`);
  process.exit(1);
}
console.log(`${path}: valid AsyncAPI ${document.version()} (${diagnostics.length} other finding(s))`);
