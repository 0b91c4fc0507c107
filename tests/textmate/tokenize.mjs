// Tokenizes files with VS Code's TextMate engine (vscode-textmate + Oniguruma) and the grammar
// given: node tokenize.mjs GRAMMAR.json FILE... prints {file: [[line, [[start, end, scopes]]]]}
// as JSON, positions in UTF-16 code units as editors count them.
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';
const require = createRequire(import.meta.url);
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const wasm = fs.readFileSync(path.join(path.dirname(require.resolve('vscode-oniguruma')), 'onig.wasm'));
await oniguruma.loadWASM(wasm.buffer);
const [grammarPath, ...files] = process.argv.slice(2);
const registry = new vsctm.Registry({
  onigLib: Promise.resolve({
    createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
    createOnigString: (s) => new oniguruma.OnigString(s),
  }),
  loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(grammarPath, 'utf8'), grammarPath),
});
const grammar = await registry.loadGrammar('source.wvflow');
const out = {};
for (const file of files) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  let state = vsctm.INITIAL;
  out[file] = lines.map((line) => {
    const result = grammar.tokenizeLine(line, state);
    state = result.ruleStack;
    return result.tokens.map((t) => [t.startIndex, t.endIndex, t.scopes]);
  });
}
process.stdout.write(JSON.stringify(out));
