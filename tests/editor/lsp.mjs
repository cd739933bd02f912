// Drives yaml-language-server over stdio as an editor does (LSP JSON-RPC, Content-Length
// framing): initialize, the `yaml` settings, didOpen, publishDiagnostics, completion.
//
//   node lsp.mjs TOOLS < session.json
//
// TOOLS is the folder tests/editor/setup.sh installed. session.json:
// {"root": DIR, "documents": [{"path", "text", "completion": {"line", "character"} | null}]}
// (paths absolute; `text` is what the editor has open, so it need not be saved). Prints
// {"server": VERSION, "documents": [{"path", "diagnostics": [...], "completion": [...]}]}:
// the last diagnostics the server published for each document, and the completion items
// (label, kind, detail, documentation as text) at the position asked for.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const tools = process.argv[2];
const session = JSON.parse(readFileSync(0, "utf8"));
const serverDir = join(tools, "node_modules", "yaml-language-server");
const version = JSON.parse(readFileSync(join(serverDir, "package.json"), "utf8")).version;
const settings = {
  yaml: {
    validate: true,
    completion: true,
    hover: true,
    format: { enable: false },
    // Only the schema the document names: no download of the SchemaStore catalogue.
    schemaStore: { enable: false },
  },
};

const server = spawn(process.execPath, [join(serverDir, "bin", "yaml-language-server"), "--stdio"], {
  stdio: ["pipe", "pipe", "pipe"],
});
let stderr = "";
server.stderr.on("data", (d) => (stderr += d));
const deadline = setTimeout(() => {
  console.error(`timed out talking to yaml-language-server ${version}\n${stderr}`);
  process.exit(3);
}, 60_000);

function send(message) {
  const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", ...message }), "utf8");
  server.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
  server.stdin.write(body);
}

let nextId = 1;
const pending = new Map();
function request(method, params) {
  const id = nextId++;
  send({ id, method, params });
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject, method }));
}
const notify = (method, params) => send({ method, params });

const published = new Map(); // uri -> {diagnostics, at}
const waiters = [];
function onMessage(m) {
  if (m.id !== undefined && m.method === undefined) {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error) p.reject(new Error(`${p.method}: ${m.error.message}`));
    else p.resolve(m.result);
  } else if (m.id !== undefined) {
    // A request from the server.
    let result = null;
    if (m.method === "workspace/configuration") {
      result = m.params.items.map((i) => (i.section ? i.section.split(".").reduce((o, k) => o?.[k], settings) ?? null : settings));
    }
    send({ id: m.id, result });
  } else if (m.method === "textDocument/publishDiagnostics") {
    published.set(m.params.uri, { diagnostics: m.params.diagnostics, at: Date.now() });
    waiters.splice(0).forEach((w) => w());
  }
}

let buffer = Buffer.alloc(0);
server.stdout.on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  for (;;) {
    const end = buffer.indexOf("\r\n\r\n");
    if (end < 0) return;
    const length = Number(/Content-Length: (\d+)/i.exec(buffer.subarray(0, end).toString())[1]);
    if (buffer.length < end + 4 + length) return;
    onMessage(JSON.parse(buffer.subarray(end + 4, end + 4 + length).toString("utf8")));
    buffer = buffer.subarray(end + 4 + length);
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The diagnostics of `uri`, once the server has published them and then stayed quiet.
async function diagnosticsOf(uri) {
  while (!published.has(uri)) await new Promise((r) => waiters.push(r));
  while (Date.now() - published.get(uri).at < 400) await sleep(100);
  return published.get(uri).diagnostics;
}

const text = (doc) => (doc === undefined || doc === null ? null : typeof doc === "string" ? doc : doc.value);

const rootUri = pathToFileURL(session.root).href;
await request("initialize", {
  processId: process.pid,
  clientInfo: { name: "drover-editor-test" },
  rootUri,
  workspaceFolders: [{ uri: rootUri, name: "drover" }],
  capabilities: {
    workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: true } },
    textDocument: {
      synchronization: { dynamicRegistration: true },
      publishDiagnostics: { relatedInformation: true },
      completion: {
        completionItem: { snippetSupport: true, documentationFormat: ["markdown", "plaintext"] },
      },
      hover: { contentFormat: ["markdown", "plaintext"] },
    },
  },
});
notify("initialized", {});
notify("workspace/didChangeConfiguration", { settings });

const out = [];
for (const doc of session.documents) {
  const uri = pathToFileURL(doc.path).href;
  notify("textDocument/didOpen", { textDocument: { uri, languageId: "yaml", version: 1, text: doc.text } });
  const diagnostics = await diagnosticsOf(uri);
  let completion = null;
  if (doc.completion) {
    const result = await request("textDocument/completion", { textDocument: { uri }, position: doc.completion });
    const items = Array.isArray(result) ? result : result?.items ?? [];
    completion = items.map((i) => ({ label: i.label, kind: i.kind ?? null, detail: i.detail ?? null, documentation: text(i.documentation) }));
  }
  notify("textDocument/didClose", { textDocument: { uri } });
  out.push({ path: doc.path, diagnostics, completion });
}

await request("shutdown", null);
notify("exit", null);
clearTimeout(deadline);
process.stdout.write(JSON.stringify({ server: version, documents: out }));
