// Starts `wvflow lsp` for .wv files. The server does the work: diagnostics, hover, go to
// definition, references, completion, document symbols, formatting and rename.
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration('wvflow').get('path') || 'wvflow';
  client = new LanguageClient(
    'wvflow',
    'wvflow',
    { command, args: ['lsp'] },
    { documentSelector: [{ scheme: 'file', language: 'wvflow' }] },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
