// Builds the console into dist/ (served by the api under /console): tsc compiles src/,
// the TypeScript client and uPlot are copied beside it, and the two bare imports are
// pointed at those files. No bundler: the browser loads ES modules of this origin.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const client = join(here, "..", "clients", "typescript");
const dist = join(here, "dist");

if (!existsSync(join(client, "dist", "src", "index.js"))) {
  execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: client, stdio: "inherit" });
  execFileSync("npm", ["run", "build"], { cwd: client, stdio: "inherit" });
}
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(here, "node_modules", "typescript", "bin", "tsc"), "-p", join(here, "tsconfig.json")], {
  stdio: "inherit",
});
cpSync(join(here, "static"), dist, { recursive: true });
cpSync(join(client, "dist", "src", "index.js"), join(dist, "registrar-client.js"));
mkdirSync(join(dist, "vendor"), { recursive: true });
for (const f of ["uPlot.esm.js", "uPlot.min.css"]) {
  cpSync(join(here, "node_modules", "uplot", "dist", f), join(dist, "vendor", f));
}
for (const f of readdirSync(dist).filter((f) => f.endsWith(".js"))) {
  const path = join(dist, f);
  const text = readFileSync(path, "utf8")
    .replaceAll('from "@registrar/client"', 'from "./registrar-client.js"')
    .replaceAll('from "uplot"', 'from "./vendor/uPlot.esm.js"');
  writeFileSync(path, text);
}
console.log(`console built into ${dist}`);
