// Starts `camp lsp` (the command in the setting camp.server.command) for .camp files.
// The highlighting works without it: package.json contributes the TextMate grammar.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("camp").get("server.command", ["camp", "lsp"]);
  client = new LanguageClient(
    "camp",
    "camp language server",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "camp" }] },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
