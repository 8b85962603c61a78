// Copies the browser builds of the studio's npm dependencies into static/vendor/
// so the pages load them as plain ES modules: no bundler, no CDN.
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const staticDir = dirname(dirname(fileURLToPath(import.meta.url)));
const root = dirname(staticDir);
const vendor = join(staticDir, "vendor");

const files = [
  ["socket.io-client/dist/socket.io.esm.min.js", "socket.io.esm.min.js"],
  ["socket.io-client/dist/socket.io.esm.min.js.map", "socket.io.esm.min.js.map"],
  ["@dagrejs/dagre/dist/dagre.esm.js", "dagre.esm.js"],
  ["@dagrejs/dagre/dist/dagre.esm.js.map", "dagre.esm.js.map"],
  ["socket.io-client/LICENSE", "socket.io-client.LICENSE.txt"],
  ["@dagrejs/dagre/LICENSE", "dagre.LICENSE.txt"],
];

mkdirSync(vendor, { recursive: true });
let missing = 0;
for (const [from, to] of files) {
  const src = join(root, "node_modules", from);
  if (!existsSync(src)) {
    if (to.endsWith(".js")) {
      console.error(`pipeloom: missing ${src}; run \`npm install\` again`);
      missing += 1;
    }
    continue;
  }
  copyFileSync(src, join(vendor, to));
}
if (missing) process.exit(1);
console.log(`pipeloom: browser libraries copied to ${vendor}`);
